"""The Jinja2 template of ``report.html`` (rendered with autoescaping: every value is text)."""

from __future__ import annotations

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}.meta{color:#666;font-size:.9em}figure{margin:1.5em 0}
figure img{max-width:100%;border:1px solid #eee}figcaption{color:#444;font-size:.9em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f4f4f6;position:sticky;top:0}td.t,th.t{text-align:left}
td.t{white-space:normal;overflow-wrap:anywhere;max-width:60em}
.scroll{max-height:36em;overflow:auto;border:1px solid #eee}
pre{background:#f7f7f9;padding:.8em;overflow:auto;font-size:.8em}
.bad{color:#b03a2e}.good{color:#1e8449}
blockquote{margin:.6em 0;padding:.2em .8em;border-left:4px solid #ccc;font-style:italic}
.verdict{font-weight:600}
</style></head><body>
<h1>{{ title }}</h1>
<p class="meta">Results: <code>{{ results_dir }}</code> · {{ n_points }} points ·
generated {{ generated }}{% if section %} · output lengths: {{ section.label }}{% endif %}</p>
<nav>{% if section %}<a href="#claims">The claims</a> · <a href="#agreement">Paper vs ours</a>
 · {% endif %}<a href="#figures">Figures</a> · <a href="#capacity">Capacity</a> ·
<a href="#points">All points</a> · <a href="#config">Configuration</a> ·
<a href="#software">Software</a></nav>

{% if section %}<h2 id="claims">The claims</h2>
<p>Each headline claim of the paper in its own words ({{ claims_source }}), the unit it is
measured in, the paper's numbers and ours ({{ section.label }}). Verdicts are computed from
these results; thresholds: {{ thresholds }} (<code>report/claims.py</code>).</p>
{% for claim in claim_rows %}<blockquote>“{{ claim.quote }}”</blockquote>
<table><thead><tr><th class="t">unit</th><th class="t">figure</th><th class="t">how</th>
<th>paper (stated)</th><th>paper (its tables)</th><th>ours</th><th class="t">ours per model</th>
<th class="t">verdict</th></tr></thead><tbody>
{% for c in claim.checks %}<tr><td class="t">{{ c.unit }}</td><td class="t">{{ c.figure }}</td>
<td class="t">{{ c.definition }}</td><td>{{ c.stated }}</td><td>{{ c.paper }}</td>
<td>{{ c.ours }}</td><td class="t">{{ c.per_model }}</td>
<td class="t verdict">{{ c.verdict }} in {{ c.unit }}</td></tr>
{% endfor %}</tbody></table>{% endfor %}

<h2 id="agreement">Paper vs ours, per figure</h2>
<p>Median and worst absolute error per figure of the paper, with the known cause of the
worst gap (full table: <a href="agreement.csv">agreement.csv</a>,
every pair: <a href="paper_comparison.csv">paper_comparison.csv</a>).
The paper's measurements: {{ paper_source }}. Error = (ours − paper) / paper.</p>
<ul>{% for line in agreement %}<li>{{ line }}</li>{% endfor %}</ul>
<p>{{ correction }}</p>
{% if stop_models %}<h3>The output lengths: one stop model per model and workload</h3>
<p>TOKENS per N from the paper's offline table; the early-stop share and length from its
light-load latency (<code>paper_eos.py</code>; <a href="stop_models.csv">stop_models.csv</a>).</p>
<div class="scroll">{{ table(stop_models) }}</div>{% endif %}
{% endif %}

<h2 id="figures">Figures</h2>
{% for f in figures %}<figure><img alt="{{ f.title }}" src="{{ f.uri }}">
<figcaption><b>{{ f.title }}.</b> {{ f.caption }}
(<a href="{{ f.pdf }}">PDF</a>)</figcaption></figure>
{% else %}<p>No figure could be drawn from these results.</p>{% endfor %}

{% if scaling %}<h2 id="memory">Memory scaling</h2>
<p>Per model and workload: the value at the largest KV size over the smallest (the paper
reports about 2.3× offline throughput for 4× the KV blocks).</p>
<div class="scroll">{{ table(scaling) }}</div>{% endif %}

{% if comparison %}<h2 id="paper">The paper's measurements beside ours</h2>
<p>Measured by the seed paper ({{ paper_source }}); ours from these results
({{ section.label if section else "" }}). Error = (ours − paper) / paper.</p>
{{ table(comparison_summary) }}
<div class="scroll">{{ table(comparison, errcol="error_pct") }}</div>
{% endif %}

{% for m in measurement %}<h2 id="{{ m.id }}">{{ m.title }}</h2>
<p>{{ m.caption }}</p>
{% if m.table.rows %}<div class="scroll">{{ table(m.table) }}</div>{% endif %}
{% endfor %}

<h2 id="capacity">Capacity under the SLO</h2>
{% if capacity.rows %}<p>By {{ capacity_rule }}.</p>
<div class="scroll">{{ table(capacity) }}</div>
{% else %}<p>No online (rate-driven) points.</p>{% endif %}

{% if cache %}<h2 id="prefix-cache">Prefix cache</h2>
<p>The hit rate each engine measured (prompt tokens found in its prefix cache) beside the
one the workload implies (an unbounded cache, vLLM's block rules); <i>reset</i> says whether
the cache was emptied before the run (<i>refused</i>/<i>failed</i>: earlier runs' blocks may
have made this one faster).</p>
<div class="scroll">{{ table(cache) }}</div>{% endif %}

<h2 id="points">All points</h2>
<p>Every column is in <a href="summary.csv">summary.csv</a>.</p>
<div class="scroll">{{ table(points) }}</div>

<h2 id="config">Configuration</h2>
{% if config.spec %}<h3>Experiment spec</h3><pre>{{ config.spec }}</pre>{% endif %}
<h3>Shared by every point</h3>
<table>{% for k, v in config.shared %}<tr><td class="t">{{ k }}</td><td class="t">{{ v }}</td>
</tr>{% endfor %}</table>
{% if config.varying %}<h3>Varying across points</h3>
<table>{% for k, v in config.varying %}<tr><td class="t">{{ k }}</td>
<td class="t">{{ v }}</td></tr>{% endfor %}</table>{% endif %}

<h2 id="software">Software</h2>
<table>{% for k, v in software.items() %}<tr><td class="t">{{ k }}</td><td class="t">{{ v }}
</td></tr>{% endfor %}</table>
</body></html>
"""

TABLE_MACRO = """{% macro table(t, errcol=None) -%}
<table><thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for r in t.rows %}<tr>{% for v in r %}<td{% if t.columns[loop.index0] == errcol %}
 class="{{ 'bad' if v and v.lstrip('-')|float > 25 else 'good' }}"{% endif %}>{{ v }}</td>
{%- endfor %}</tr>
{% endfor %}</tbody></table>
{%- endmacro %}"""
