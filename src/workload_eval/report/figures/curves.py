"""Beyond the paper: a metric against the request rate, and runs over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from workload_eval.paper import SLO_S_PER_TOKEN
from workload_eval.report import style
from workload_eval.report.figures.tables import pick_kv
from workload_eval.results import online_points


@style.styled
def figure_metric_vs_rate(
    points: pd.DataFrame,
    out_dir: str | Path,
    *,
    metric: str = "normalized_latency_p95",
    ylabel: str = "p95 normalized latency (s/token)",
    slo: float | None = SLO_S_PER_TOKEN,
    kv_blocks: int | None = None,
    name: str = "latency_vs_rate",
) -> list[Path]:
    """A metric versus request rate, per workload; one line per model (its biggest KV)."""
    online = online_points(points)
    if online.empty or metric not in online or online[metric].isna().all():
        return []
    online = pick_kv(online, kv_blocks)
    online = online[np.isfinite(pd.to_numeric(online[metric], errors="coerce"))]
    if online.empty:
        return []
    workloads = style.workload_order(online["workload"].unique())
    models = sorted(online["model"].unique(), key=style.model_sort_key)
    fig, axes = style.workload_panels(len(workloads))
    markers = "osD^vP"
    for ax, w in zip(axes.flat, workloads, strict=False):
        sub = online[online["workload"] == w]
        for i, m in enumerate(models):
            g = sub[sub["model"] == m].groupby("rate")[metric].mean().dropna()
            if g.empty:
                continue
            kv = sub[sub["model"] == m]["kv_blocks"].max()
            kv_label = f"{int(kv)} blocks" if pd.notna(kv) else "KV size unknown"
            ax.plot(
                g.index,
                g.to_numpy(),
                marker=markers[i % len(markers)],
                ms=4,
                lw=1.4,
                color=style.MODEL_COLORS[i % len(style.MODEL_COLORS)],
                label=f"{style.model_label(m)} ({kv_label})",
            )
        if slo is not None:
            ax.axhline(slo, color=style.SLO_COLOR, ls="--", lw=1, label=f"SLO {slo:g}")
        ax.set_yscale("log")
        style.log_ticks_125(ax.yaxis)
        ax.set_title(style.workload_label(w))
        ax.set_xlabel("Request rate (req/s)")
        ax.set_ylabel(ylabel)
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    style.legend_below(fig, [handles[lab] for lab in labels], ncols=min(len(labels), 5))
    return style.save(fig, out_dir, name)


def _thin(df: pd.DataFrame, max_points: int = 4000) -> pd.DataFrame:
    step = max(1, len(df) // max_points)
    return df.iloc[::step]


@style.styled
def figure_timelines(
    runs: dict[str, tuple[pd.DataFrame, str]], out_dir: str | Path, *, name: str = "run_timelines"
) -> list[Path]:
    """KV usage, batch size and preemptions over time; one column per run (steps.parquet).

    ``runs`` maps a workload name to (its steps table, a caption such as model/KV/rate).
    """
    runs = {k: v for k, v in runs.items() if len(v[0])}
    if not runs:
        return []
    order = style.workload_order(runs)
    fig, axes = style.run_columns(3, len(order), column_width=3.4, height=6.4)
    for j, w in enumerate(order):
        steps, caption = runs[w]
        s = steps.sort_values("time")
        color = style.workload_color(w, order)
        t = s["time"].to_numpy()
        total = s["kv_blocks_total"].replace(0, np.nan)
        kv = _thin(pd.DataFrame({"t": t, "v": 100.0 * s["kv_blocks_used"] / total}))
        axes[0, j].plot(kv["t"], kv["v"], color=color, lw=0.8, drawstyle="steps-post")
        axes[0, j].set_ylim(0, 105)
        batch = _thin(pd.DataFrame({"t": t, "r": s["num_running"], "w": s["num_waiting"]}))
        axes[1, j].plot(batch["t"], batch["r"], color=color, lw=0.8, drawstyle="steps-post")
        axes[1, j].plot(
            batch["t"], batch["w"], color="#555555", lw=0.8, ls=":", drawstyle="steps-post"
        )
        pre = _thin(pd.DataFrame({"t": t, "p": s["num_preempted"].cumsum()}))
        axes[2, j].plot(pre["t"], pre["p"], color=color, lw=1.2, drawstyle="steps-post")
        axes[0, j].set_title(f"{style.workload_label(w)}\n{caption}", fontsize=9)
        axes[2, j].set_xlabel("Time (s)")
    axes[0, 0].set_ylabel("KV blocks used (%)")
    axes[1, 0].set_ylabel("Requests (batch size)")
    axes[2, 0].set_ylabel("Preemptions (cumulative)")
    handles = [
        Line2D([], [], color=style.EDGE, lw=1, label="running (batch size)"),
        Line2D([], [], color="#555555", lw=1, ls=":", label="waiting"),
    ]
    style.legend_below(fig, handles, ncols=2)
    return style.save(fig, out_dir, name)
