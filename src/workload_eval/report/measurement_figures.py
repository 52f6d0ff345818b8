"""Figures of the measurement analyses: a comparison across workloads (rank reversals) and
a run's time slices with its steady-state window."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from workload_eval.analysis.compare import SCENARIO, Comparison
from workload_eval.report import style

MAX_SCENARIOS = 6  # rows of the comparison figure; the CSV holds every scenario


def _system_color(i: int) -> str:
    return style.MODEL_COLORS[i % len(style.MODEL_COLORS)]


@style.styled
def figure_compare(comp: Comparison, out_dir: str | Path, *, name: str = "compare") -> list[Path]:
    """Per scenario: each system's metric per workload (bars, interval whiskers), and its
    ratio to the baseline system (a line crossing 1 between workloads is a reversal)."""
    values = comp.values
    if values.empty:
        return []
    scenarios = list(dict.fromkeys(values[SCENARIO]))[:MAX_SCENARIOS]
    workloads = style.workload_order(values["workload"].unique())
    fig, axes = plt.subplots(
        len(scenarios),
        2,
        figsize=(10.5, 3.1 * len(scenarios) + 0.6),
        constrained_layout=True,
        squeeze=False,
    )
    width = 0.8 / len(comp.systems)
    x = np.arange(len(workloads))
    for row, scenario in enumerate(scenarios):
        part = values[values[SCENARIO] == scenario].set_index(["workload", "system"])
        bars, ratio = axes[row]
        for i, system in enumerate(comp.systems):

            def get(col: str, s: str = system, p: pd.DataFrame = part) -> np.ndarray:
                return np.array([p[col].get((w, s), np.nan) for w in workloads], dtype=float)

            v, lo, hi = get("value"), get("ci_low"), get("ci_high")
            xs = x + (i - (len(comp.systems) - 1) / 2) * width
            bars.bar(
                xs,
                np.nan_to_num(v),
                width * 0.95,
                color=_system_color(i),
                edgecolor=style.EDGE,
                lw=0.5,
            )
            known = np.isfinite(lo) & np.isfinite(hi)
            if known.any():
                bars.errorbar(
                    xs[known],
                    v[known],
                    yerr=[v[known] - lo[known], hi[known] - v[known]],
                    fmt="none",
                    ecolor=style.EDGE,
                    elinewidth=0.9,
                    capsize=2.5,
                )
            top = np.where(np.isfinite(hi), np.fmax(v, hi), v)  # above the whisker
            for xi, yi, r in zip(xs, top, get("rank"), strict=True):
                if np.isfinite(yi):
                    bars.text(xi, yi, f"#{int(r)}", ha="center", va="bottom", fontsize=7)
            ratio.plot(
                x, get("ratio_to_baseline"), marker="o", ms=4, lw=1.4, color=_system_color(i)
            )
        ratio.axhline(1.0, color="#777777", ls="--", lw=1)
        labels = [style.workload_label(w) for w in workloads]
        for ax in (bars, ratio):
            ax.set_xticks(x, labels)
            ax.grid(axis="x", visible=False)
        bars.set_ylabel(comp.metric)
        ratio.set_ylabel(f"ratio to {comp.baseline}")
        bars.set_title(scenario, fontsize=9, loc="left")
        n = comp.reversals
        here = n[n[SCENARIO] == scenario] if not n.empty else n
        beyond = int((here["noise"] == "beyond noise").sum()) if len(here) else 0
        ratio.set_title(
            f"{len(here)} rank reversal(s), {beyond} beyond noise", fontsize=9, loc="left"
        )
    better = "higher" if comp.higher_is_better else "lower"
    fig.suptitle(
        f"{comp.metric} by {comp.by} across workloads ({better} is better; whiskers: "
        f"{comp.level:.0%} intervals; #n: rank)",
        fontsize=10,
    )
    handles = [
        Line2D([], [], color=_system_color(i), marker="s", ls="", label=f"{comp.by}={s}")
        for i, s in enumerate(comp.systems)
    ]
    style.legend_below(fig, handles, ncols=min(len(handles), 6))
    return style.save(fig, out_dir, name)


@style.styled
def figure_slices(
    runs: dict[str, tuple[pd.DataFrame, str, tuple[float, float] | None]],
    out_dir: str | Path,
    *,
    name: str = "time_slices",
) -> list[Path]:
    """Per run (a column): throughput, p95 latencies, running/waiting and KV use per time
    slice; the shaded band is the run's steady-state window."""
    runs = {k: v for k, v in runs.items() if len(v[0])}
    if not runs:
        return []
    order = style.workload_order(runs)
    fig, axes = style.run_columns(4, len(order), column_width=3.5, height=8.2)
    for j, w in enumerate(order):
        sl, caption, window = runs[w]
        mid = ((sl["start"] + sl["end"]) / 2).to_numpy()
        color = style.workload_color(w, order)
        col = axes[:, j]
        col[0].step(mid, sl["request_throughput"], where="mid", color=color, lw=1.4)
        col[1].plot(mid, sl["ttft_p95"], color=color, lw=1.2, marker=".", ms=3)
        col[1].plot(mid, sl["e2e_latency_p95"], color="#555555", lw=1.0, ls=":")
        col[2].step(mid, sl["running_mean"], where="mid", color=color, lw=1.2)
        col[2].step(mid, sl["waiting_mean"], where="mid", color="#555555", lw=1.0, ls=":")
        col[3].step(mid, 100 * sl["kv_usage_mean"], where="mid", color=color, lw=1.2)
        col[3].set_ylim(0, 105)
        if window is not None:
            for ax in col:
                ax.axvspan(window[0], window[1], color="#999999", alpha=0.12, lw=0)
        col[0].set_title(f"{style.workload_label(w)}\n{caption}", fontsize=9)
        col[-1].set_xlabel("Time (s)")
        col[1].set_yscale("log")
        style.plain_log_labels(col[1].yaxis)
    axes[0, 0].set_ylabel("Completed (req/s)")
    axes[1, 0].set_ylabel("p95 latency (s)")
    axes[2, 0].set_ylabel("Requests")
    axes[3, 0].set_ylabel("KV blocks used (%)")
    handles = [
        Line2D([], [], color=style.EDGE, lw=1.2, label="TTFT p95 / running"),
        Line2D([], [], color="#555555", lw=1, ls=":", label="E2E p95 / waiting"),
        plt.Rectangle((0, 0), 1, 1, color="#999999", alpha=0.25, label="steady state"),
    ]
    style.legend_below(fig, handles, ncols=3)
    return style.save(fig, out_dir, name)


__all__ = ["figure_compare", "figure_slices"]
