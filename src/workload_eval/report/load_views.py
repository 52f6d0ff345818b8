"""The report's views of how load was applied: closed-loop curves and the prefix cache.

A closed loop (``--concurrency N``) is swept over N, not over a rate, so it gets its own
figure (throughput and p95 latency against users); runs with prefix caching get a table of
the hit rate the engine measured beside the one the workload implies, and whether the cache
was emptied before the run (a rerun into a warm cache is faster for no good reason).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter

from workload_eval.report import style

USERS = "schedule.concurrency"
CACHE_COLUMNS = (
    "key",
    "engine",
    "model",
    "workload",
    "schedule",
    "prefix_cache_hit_rate",
    "prefix_cache_hit_rate_implied",
    "prefix_cache_reset",
)


def closed_loop_points(points: pd.DataFrame) -> pd.DataFrame:
    """Points of the closed-loop schedule, with their number of users."""
    if USERS not in points:
        return points.iloc[0:0]
    return points[(points["schedule"] == "concurrency") & points[USERS].notna()]


@style.styled
def figure_closed_loop(
    points: pd.DataFrame, out_dir: str | Path, *, name: str = "closed_loop"
) -> list[Path]:
    """Request throughput and p95 end-to-end latency versus users, per workload; one line
    per engine and model."""
    loop = closed_loop_points(points)
    if loop.empty or loop["request_throughput"].isna().all():
        return []
    workloads = style.workload_order(loop["workload"].unique())
    fig, axes = plt.subplots(
        len(workloads), 2, figsize=(9.5, 3.0 * len(workloads)), squeeze=False,
        constrained_layout=True,
    )  # fmt: skip
    for row, w in zip(axes, workloads, strict=True):
        sub = loop[loop["workload"] == w]
        for i, ((engine, model), g) in enumerate(sub.groupby(["engine", "model"])):
            g = g.assign(users=pd.to_numeric(g[USERS])).groupby("users").mean(numeric_only=True)
            color = style.MODEL_COLORS[i % len(style.MODEL_COLORS)]
            label = f"{engine} · {style.model_label(str(model))}"
            row[0].plot(g.index, g["request_throughput"], marker="o", ms=4, color=color)
            row[1].plot(g.index, g["e2e_latency_p95"], marker="o", ms=4, color=color, label=label)
        row[0].set_ylabel("Requests/s")
        row[1].set_ylabel("p95 E2E latency (s)")
        for ax in row:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("Users (closed loop)")
        row[0].set_title(_short(style.workload_label(w)), loc="left")
        row[1].legend(frameon=False, fontsize=8)
    return style.save(fig, out_dir, name)


def _short(label: str, limit: int = 60) -> str:
    """An inline workload spec can be long: its start names it well enough on a figure."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def prefix_cache_table(points: pd.DataFrame) -> pd.DataFrame | None:
    """One row per run with prefix caching: measured hit rate, implied, and the reset."""
    if "prefix_cache_hit_rate_implied" not in points:
        return None
    rows = points[points["prefix_cache_hit_rate_implied"].notna()]
    if rows.empty:
        return None
    cols = [c for c in CACHE_COLUMNS if c in rows]
    return rows[cols].reset_index(drop=True)


__all__ = ["closed_loop_points", "figure_closed_loop", "prefix_cache_table"]
