"""Our numbers against the paper's measured ones (a parity plot)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from workload_eval.paper import NUM_REQUESTS
from workload_eval.report import style


@style.styled
def figure_paper_vs_ours(
    comparison: pd.DataFrame, out_dir: str | Path, *, name: str = "paper_vs_ours"
) -> list[Path]:
    """Parity plot: our number against the paper's measured one, one panel per quantity."""
    if comparison is not None:  # log axes: a zero (no rate met the SLO) cannot be drawn
        comparison = comparison[(comparison["paper"] > 0) & (comparison["ours"] > 0)]
    if comparison is None or comparison.empty:
        return []
    groups = list(comparison.groupby(["quantity", "unit"], sort=True))
    fig, axes = plt.subplots(
        1, len(groups), figsize=(3.9 * len(groups), 3.9), constrained_layout=True, squeeze=False
    )
    order = style.workload_order(comparison["workload"].unique())
    markers = {n: m for n, m in zip(NUM_REQUESTS, "s^o", strict=True)}
    for ax, ((quantity, unit), g) in zip(axes.flat, groups, strict=True):
        for w in order:
            sub = g[g["workload"] == w]
            for n, part in sub.groupby(sub["num_requests"].fillna(0)):
                ax.scatter(
                    part["paper"],
                    part["ours"],
                    s=22,
                    color=style.workload_color(w),
                    edgecolor=style.EDGE,
                    linewidth=0.4,
                    marker=markers.get(int(n), "o"),
                    zorder=3,
                )
        lo = float(min(g["paper"].min(), g["ours"].min())) * 0.8
        hi = float(max(g["paper"].max(), g["ours"].max())) * 1.25
        xs = np.geomspace(lo, hi, 50)
        ax.plot(xs, xs, color="#444444", lw=1)
        ax.fill_between(xs, xs * 0.75, xs * 1.25, color="#999999", alpha=0.18, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            style.log_ticks_125(axis)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"Paper, measured ({unit})")
        ax.set_ylabel(f"Ours ({unit})")
        mean_err = float(g["error_pct"].abs().mean())
        label = f"{quantity[:1].upper()}{quantity[1:]} ({unit})"
        ax.set_title(f"{label}\nmean |error| {mean_err:.0f}%, {len(g)} pairs", fontsize=10)
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            color=style.workload_color(w),
            mec=style.EDGE,
            label=style.workload_label(w),
        )
        for w in order
    ]
    handles.append(Patch(color="#999999", alpha=0.3, label="±25%"))
    if comparison["num_requests"].notna().any():
        handles += [
            Line2D([], [], ls="", marker=m, color="white", mec=style.EDGE, label=f"N = {n}")
            for n, m in markers.items()
            if (comparison["num_requests"] == n).any()
        ]
    style.legend_below(fig, handles, ncols=min(len(handles), 8))
    return style.save(fig, out_dir, name)
