"""The seed's Figure 1: CDFs of input and output lengths, log x axis, means marked.

Style follows the seed's analysis notebook (two panels, thick lines, a dot at the mean,
a dashed grey median line, y in percent) with its colours for its four workloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.workloads.catalog import WORKLOADS

LABELS = {
    "alpaca": "Alpaca",
    "cnn_dailymail": "CNN DailyMail",
    "dolly": "Dolly",
    "sharegpt": "ShareGPT",
    "sharegpt_chat": "ShareGPT chat",
    "azure_conv": "Azure conv",
    "azure_code": "Azure code",
    "mooncake": "Mooncake",
    "humaneval": "HumanEval",
    "lmsys_chat": "LMSYS chat",
    "arxiv_summarization": "arXiv summ.",
    "long_document": "Long document",
    "long_reasoning": "Long reasoning",
}
# Colours for workloads the seed did not plot (matplotlib's tab10 minus near-duplicates).
EXTRA_COLORS = (
    "#FF7F0E",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#9467BD",
    "#1F3B73",
    "#2CA02C",
)


def colors_for(names: list[str]) -> dict[str, str]:
    """The seed's colours for its workloads (and catalog colours); distinct others."""
    fixed = {n: WORKLOADS[n].color for n in names if n in WORKLOADS and WORKLOADS[n].color}
    spare = iter(c for c in EXTRA_COLORS if c not in fixed.values())
    return {n: fixed.get(n) or next(spare, "#333333") for n in names}


def cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and the fraction below each, as the seed's ``get_cdf``."""
    x = np.sort(np.asarray(values))
    return x, np.arange(len(x)) / float(len(x))


def mean_point(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The mean on the x axis and the CDF height of the first value >= it."""
    m = float(np.mean(x))
    return m, float(y[min(int(np.searchsorted(x, m)), len(y) - 1)])


def plot_length_cdfs(
    frames: dict[str, pd.DataFrame], out: str | Path, *, title: str | None = None
) -> None:
    """Write Figure 1 for ``{workload: df}`` to ``out`` (.png or .pdf)."""
    import matplotlib as mpl
    from matplotlib.figure import Figure  # no pyplot: leaves a notebook's backend alone

    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UserError(f"--out {out}: expected a .png, .pdf or .svg file name")
    if not frames:
        raise UserError("plot: no workload given")
    colors = colors_for(list(frames))
    with mpl.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        fig = Figure(figsize=(12.8, 4.8), layout="constrained")
        axs = fig.subplots(1, 2)
        for col, ax, xlabel in (
            (("prompt_len"), axs[0], "Input Length (token)"),
            (("output_len"), axs[1], "Output Length (token)"),
        ):
            hi = 1
            for name, df in frames.items():
                x, y = cdf(df[col].to_numpy())
                if len(x) == 0:
                    continue
                hi = max(hi, int(x[-1]))
                color = colors[name]
                ax.plot(
                    x,
                    y,
                    color=color,
                    linewidth=4,
                    label=LABELS.get(name, name) if ax is axs[0] else None,
                )
                ax.plot(*mean_point(x, y), marker="o", markersize=8, color=color)
            ax.set_xscale("log", base=10, subs=[])
            ticks = [10**k for k in range(int(np.ceil(np.log10(hi))) + 1)]
            ax.set_xticks(ticks)
            ax.set_xticklabels(["" if t == 1 else str(t) for t in ticks])
            ax.set_xlim(left=1)
            xmin, xmax = ax.get_xlim()
            ax.hlines(0.5, xmin, xmax, colors="#999999", ls="--", linewidth=2, alpha=0.8)
            ax.set_xlabel(xlabel, size=18)
            ax.tick_params(labelsize=16)
            ax.set_ylim(0, 1.02)
        axs[0].set_ylabel("Probability (%)", size=18)
        axs[0].set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
        axs[0].set_yticklabels(["0", "25", "50", "75", "100"])
        axs[1].set_yticks([])
        leg = fig.legend(
            loc="outside upper center",
            fontsize=16,
            ncols=min(len(frames), 6),
            handlelength=1.2,
            handletextpad=0.5,
            columnspacing=1,
            frameon=False,
        )
        for h in leg.legend_handles:
            h.set_linewidth(7.5)
        if title:
            fig.suptitle(title)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=150, bbox_inches="tight")
