"""The report's measurement sections: time slices of the runs at capacity (with their
steady-state windows), intervals across seeds, and whether the comparison of the systems
in the results depends on the workload (rank reversals)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workload_eval.analysis.compare import SCENARIO, Comparison, compare
from workload_eval.analysis.seeds import across_seeds
from workload_eval.analysis.slices import SLICE_SECONDS, time_slices
from workload_eval.errors import UserError
from workload_eval.report import style
from workload_eval.report.figure_jobs import compare_job, slices_job
from workload_eval.report.figure_plan import PlannedFigure
from workload_eval.results import offline_points, online_points
from workload_eval.runner import load_run

# What the report compares by, in this order: the first that names two systems or more.
COMPARE_BY = ("engine", "model", "gpu", "policy", "kv_blocks")
SEED_PAGE_METRICS = ("request_throughput", "normalized_latency_p95", "ttft_p95", "tpot_mean")


@dataclass
class Sections:
    """Figures (to draw), page tables (id, title, caption, frame) and files."""

    figures: list[PlannedFigure] = field(default_factory=list)
    tables: list[tuple[str, str, str, pd.DataFrame]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def slice_runs(
    points: pd.DataFrame, capacity: pd.DataFrame, results_dir: Path, width: float
) -> dict[str, tuple[pd.DataFrame, str, tuple[float, float] | None]]:
    """Per workload, the online run closest below its capacity (first model, biggest KV):
    its time slices, a caption and its steady-state window."""
    online = online_points(points)
    runs: dict[str, tuple[pd.DataFrame, str, tuple[float, float] | None]] = {}
    if online.empty:
        return runs
    model = sorted(online["model"].unique(), key=style.model_sort_key)[0]
    rate_col = "max_rate" if "max_rate" in capacity else "capacity_rate"
    for w, g in online[online["model"] == model].groupby("workload"):
        g = g[g["kv_blocks"] == g["kv_blocks"].max()] if g["kv_blocks"].notna().any() else g
        cap = capacity[(capacity["workload"] == w) & (capacity["model"] == model)]
        limit = float(cap[rate_col].max()) if len(cap) and rate_col in cap else math.inf
        below = g[g["rate"] <= limit]
        row = (below if len(below) else g).sort_values("rate").iloc[-1 if len(below) else 0]
        try:
            run = load_run(results_dir / row["key"])
            sl = run.slices if run.slices is not None and _width(run.slices) == width else None
            if sl is None:
                sl = time_slices(run.records, width)
        except (UserError, KeyError, TypeError, ValueError):  # incomplete or damaged: none
            continue
        start, end = run.summary.get("steady.start_s"), run.summary.get("steady.end_s")
        window = (float(start), float(end)) if start is not None and end is not None else None
        kv = "" if pd.isna(row["kv_blocks"]) else f", {int(row['kv_blocks'])} blocks"
        runs[str(w)] = (sl, f"{style.model_label(model)}{kv}, {row['rate']:g} req/s", window)
    return runs


def _width(slices: pd.DataFrame) -> float | None:
    full = (slices["end"] - slices["start"]).to_numpy()
    return float(full[0]) if len(full) else None


def auto_compare(points: pd.DataFrame, capacity: pd.DataFrame) -> Comparison | None:
    """The systems of these results compared across workloads: by the first of
    COMPARE_BY with two values or more, on the capacity when searches ran (by the seeds'
    rule), else on offline throughput; None when there is nothing to compare."""
    candidates: list[tuple[pd.DataFrame, str, dict[str, str]]] = []
    if len(capacity) and "max_rate" in capacity:
        candidates.append(
            (capacity.rename(columns={"max_rate": "capacity_rate"}), "capacity_rate", {})
        )
    if len(offline_points(points)):
        candidates.append((points, "request_throughput", {"schedule": "offline"}))
    for table, metric, where in candidates:
        if table["workload"].nunique() < 2:
            continue
        for by in COMPARE_BY:
            if by in table and table[by].nunique() > 1:
                try:
                    return compare(table, by, metric, where=where)
                except UserError:
                    break
    return None


def measurement_sections(
    results_dir: Path,
    points: pd.DataFrame,
    capacity: pd.DataFrame,
    out: Path,
    *,
    slice_seconds: float = SLICE_SECONDS,
) -> Sections:
    """Every measurement section these results allow (figures planned under ``out/figures``)."""
    from workload_eval.storage import atomic_write_text

    sec = Sections()
    fig_dir = out / "figures"
    runs = slice_runs(points, capacity, results_dir, slice_seconds)
    if runs:
        sec.figures.append(
            PlannedFigure(
                "Time slices at capacity",
                f"The run at (or just below) each workload's capacity, per {slice_seconds:g} s "
                "window: completed requests per second, p95 TTFT and end-to-end latency of the "
                "requests completed in the window, running and waiting requests and KV use "
                "(averaged over the engine's steps, i.e. while it was busy, or over the "
                "server's samples). Shaded: "
                "the steady-state window (MSER-5 on the in-flight count, up to the last "
                "arrival).",
                slices_job(runs, fig_dir),
            )
        )
    seeds = across_seeds(points)
    if len(seeds):
        atomic_write_text(out / "seeds.csv", seeds.to_csv(index=False))
        sec.files.append(out / "seeds.csv")
        sec.tables.append(
            (
                "seeds",
                "Across seeds",
                "Configurations run under several seeds: the mean over seeds and its 95% "
                "Student-t interval (every metric in seeds.csv).",
                _seed_page(seeds),
            )
        )
    comp = auto_compare(points, capacity)
    if comp is not None:
        sec.figures.append(
            PlannedFigure(
                "Does the conclusion depend on the workload?",
                f"{comp.metric} per workload for each {comp.by} (whiskers: 95% intervals "
                f"where known; #n: rank), and each one's ratio to {comp.baseline}: a line "
                "crossing 1 between two workloads is a rank reversal "
                "(`workload-eval compare` for any other column or metric).",
                compare_job(comp, fig_dir, "workload_sensitivity"),
            )
        )
        for name, frame in (("compare_values", comp.values), ("compare_reversals", comp.reversals)):
            atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
            sec.files.append(out / f"{name}.csv")
        sec.tables.append(
            (
                "reversals",
                f"Rank reversals by {comp.by} ({comp.metric})",
                _reversal_caption(comp),
                comp.reversals if len(comp.reversals) else pd.DataFrame({SCENARIO: []}),
            )
        )
    return sec


def _seed_page(seeds: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("engine", "model", "gpu", "kv_blocks", "workload", "schedule", "rate")]
    page = seeds[[c for c in cols if c in seeds] + ["num_seeds"]].copy()
    for m in SEED_PAGE_METRICS:
        if m in seeds:
            low, high = seeds[f"{m}_seed_ci_low"], seeds[f"{m}_seed_ci_high"]
            page[m] = [
                f"{v:.4g} [{lo:.4g}, {hi:.4g}]" if pd.notna(lo) else f"{v:.4g}"
                for v, lo, hi in zip(seeds[m], low, high, strict=True)
            ]
    return page


def _reversal_caption(comp: Comparison) -> str:
    n, beyond = len(comp.reversals), len(comp.beyond_noise)
    if n == 0:
        return "Every workload ranks the systems the same way."
    return (
        f"{n} pair(s) of systems rank differently on two workloads; {beyond} beyond noise "
        "(the two systems' intervals do not overlap on either workload). Scenarios: "
        + json.dumps(list(comp.scenarios))
    )


__all__ = ["Sections", "auto_compare", "measurement_sections", "slice_runs"]
