"""Figures 2 and 3: capacity and offline throughput as bars per workload and model, at
one KV size (Figure 2) or across KV sizes (Figure 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from workload_eval.paper import KV_BLOCKS_MAX, NUM_REQUESTS
from workload_eval.report import style
from workload_eval.report.figures.tables import offline_table, pick_kv


def _grouped_bars(
    ax: Axes, table: pd.DataFrame, value: str, models: list[str], workloads: list[str]
) -> None:
    """Workloads on x, one bar per model: colour = workload (the seed's), hatch = model."""
    width = 0.8 / max(len(models), 1)
    top = float(table[value].max()) if len(table) else 1.0
    for i, m in enumerate(models):
        sub = table[table["model"] == m].set_index("workload")[value]
        xs = np.arange(len(workloads)) + (i - (len(models) - 1) / 2) * width
        vals = [float(sub.get(w, np.nan)) for w in workloads]
        colors = [style.workload_color(w, workloads) for w in workloads]
        ax.bar(
            xs,
            np.nan_to_num(vals),
            width * 0.95,
            color=colors,
            edgecolor=style.EDGE,
            linewidth=0.6,
            hatch=style.HATCHES[i % len(style.HATCHES)],
        )
        for x, v in zip(xs, vals, strict=True):
            if np.isfinite(v):
                ax.text(x, v + 0.01 * top, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(workloads)), [style.workload_label(w) for w in workloads])
    ax.grid(axis="x", visible=False)
    handles = [
        Patch(
            facecolor="white",
            edgecolor=style.EDGE,
            hatch=style.HATCHES[i % 8],
            label=style.model_label(m),
        )
        for i, m in enumerate(models)
    ]
    ax.legend(handles=handles, loc="upper right", frameon=False)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)


def _kv_note(table: pd.DataFrame) -> str:
    kvs = sorted({int(k) for k in table["kv_blocks"].dropna()})
    return f"{'/'.join(map(str, kvs))} KV blocks" if kvs else "KV size unknown"


@style.styled
def figure2a_capacity(
    capacity: pd.DataFrame,
    out_dir: str | Path,
    *,
    kv_blocks: int | None = KV_BLOCKS_MAX,
    name: str = "figure2a_capacity",
    slo: float | None = None,
) -> list[Path]:
    """Figure 2a: max request rate under the SLO per workload, one bar per model."""
    table = pick_kv(capacity, kv_blocks)
    if table.empty and kv_blocks is not None:
        table = pick_kv(capacity, None)
    if table.empty:
        return []
    models = sorted(table["model"].unique(), key=style.model_sort_key)
    workloads = style.workload_order(table["workload"].unique())
    fig, ax = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    _grouped_bars(ax, table, "max_rate", models, workloads)
    ax.set_ylabel("Max request rate under SLO (req/s)")
    slo = slo if slo is not None else float(table["slo"].iloc[0]) if "slo" in table else None
    what = f"p95 normalized latency ≤ {slo:g} s/token" if slo is not None else "SLO"
    ax.set_title(f"Online capacity ({what}; {_kv_note(table)})", fontsize=10)
    return style.save(fig, out_dir, name)


@style.styled
def figure2b_throughput(
    points: pd.DataFrame,
    out_dir: str | Path,
    *,
    kv_blocks: int | None = KV_BLOCKS_MAX,
    num_requests: int | None = max(NUM_REQUESTS),
    metric: str = "request_throughput",
    name: str = "figure2b_throughput",
) -> list[Path]:
    """Figure 2b: offline throughput per workload, one bar per model."""
    table = offline_table(points, num_requests)
    picked = pick_kv(table, kv_blocks)
    table = picked if not picked.empty else pick_kv(table, None)
    if table.empty:
        return []
    models = sorted(table["model"].unique(), key=style.model_sort_key)
    workloads = style.workload_order(table["workload"].unique())
    fig, ax = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    _grouped_bars(ax, table, metric, models, workloads)
    unit = "req/s" if metric == "request_throughput" else "tokens/s"
    ax.set_ylabel(f"Throughput ({unit})")
    n = sorted({int(v) for v in table["num_requests"]})
    ax.set_title(
        f"Offline throughput (N = {'/'.join(map(str, n))}; {_kv_note(table)})", fontsize=10
    )
    return style.save(fig, out_dir, name)


def _kv_levels(table: pd.DataFrame, levels: Sequence[int] | None) -> list[int]:
    if levels is not None:
        return sorted(int(v) for v in levels)
    per_model = [set(g["kv_blocks"].dropna().astype(int)) for _, g in table.groupby("model")]
    shared = set.intersection(*per_model) if per_model else set()
    return sorted(shared) if len(shared) >= 2 else sorted(set().union(*per_model))


@style.styled
def _figure_vs_kv(
    table: pd.DataFrame,
    value: str,
    ylabel: str,
    title: str,
    out_dir: str | Path,
    name: str,
    levels: Sequence[int] | None,
) -> list[Path]:
    """Per workload panel: models side by side, one bar per KV size (blues from 1x up)."""
    if table.empty:
        return []
    kvs = _kv_levels(table, levels)
    table = table[table["kv_blocks"].isin(kvs)]
    if table.empty or not kvs:
        return []
    workloads = style.workload_order(table["workload"].unique())
    models = sorted(table["model"].unique(), key=style.model_sort_key)
    fig, axes = style.workload_panels(len(workloads))
    width = 0.8 / len(kvs)
    base = kvs[0]
    for ax, w in zip(axes.flat, workloads, strict=False):
        sub = table[table["workload"] == w]
        for j, kv in enumerate(kvs):
            vals = [
                sub[(sub["model"] == m) & (sub["kv_blocks"] == kv)][value].mean() for m in models
            ]
            xs = np.arange(len(models)) + (j - (len(kvs) - 1) / 2) * width
            ax.bar(
                xs,
                np.nan_to_num(vals),
                width * 0.95,
                color=style.KV_BLUES[j % len(style.KV_BLUES)],
                edgecolor=style.EDGE,
                linewidth=0.5,
            )
        ax.set_xticks(np.arange(len(models)), [style.model_label(m) for m in models])
        ax.set_title(style.workload_label(w))
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(ylabel)
    handles = [
        Patch(
            facecolor=style.KV_BLUES[j % len(style.KV_BLUES)],
            edgecolor=style.EDGE,
            label=f"{kv} blocks ({kv / base:.3g}×)",
        )
        for j, kv in enumerate(kvs)
    ]
    style.legend_below(fig, handles, ncols=len(kvs))
    fig.suptitle(title, fontsize=11)
    return style.save(fig, out_dir, name)


def figure3a_capacity_vs_kv(
    capacity: pd.DataFrame,
    out_dir: str | Path,
    *,
    levels: Sequence[int] | None = None,
    name: str = "figure3a_capacity_vs_kv",
) -> list[Path]:
    """Figure 3a: max request rate under the SLO versus KV blocks, per workload."""
    return _figure_vs_kv(
        capacity,
        "max_rate",
        "Max request rate (req/s)",
        "Max request rate under SLO vs KV-cache blocks",
        out_dir,
        name,
        levels,
    )


def figure3b_throughput_vs_kv(
    points: pd.DataFrame,
    out_dir: str | Path,
    *,
    num_requests: int | None = 1000,
    levels: Sequence[int] | None = None,
    name: str = "figure3b_throughput_vs_kv",
) -> list[Path]:
    """Figure 3b: offline throughput versus KV blocks, per workload."""
    table = offline_table(points, num_requests)
    n = "/".join(str(int(v)) for v in sorted(table["num_requests"].unique())) if len(table) else "?"
    return _figure_vs_kv(
        table,
        "request_throughput",
        "Throughput (req/s)",
        f"Offline throughput (N = {n}) vs KV-cache blocks",
        out_dir,
        name,
        levels,
    )
