"""One look for every figure: the seed's workload colours, labels, hatches, and saving."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# The seed's display names (analysis.ipynb); other workloads get a title-cased name.
_WORKLOAD_LABELS = {
    "alpaca": "Alpaca",
    "cnn_dailymail": "CNN DailyMail",
    "dolly": "Dolly",
    "sharegpt": "ShareGPT",
    "sharegpt_chat": "ShareGPT chat",
}
# The seed's workload order in its figures (alphabetical); others follow, sorted.
_FALLBACK_COLORS = ["#8E6BB8", "#F29E4C", "#6C757D", "#4CB5F5", "#B5651D", "#2E8B57"]
# The seed's Figure 3 blues, from 1x to 4x KV blocks.
KV_BLUES = ["#cae6f4", "#9ad5f5", "#64c1f4", "#3fa7e7", "#1f78b4", "#08519c"]
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "++", "--"]
EDGE = "#141414"
SLO_COLOR = "#c0392b"  # the SLO line of every figure
P = ParamSpec("P")
R = TypeVar("R")
MODEL_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]

RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": ":",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "hatch.linewidth": 1.2,
    "hatch.color": EDGE,
    "svg.hashsalt": "workload-eval",
}


def _catalog_colors() -> dict[str, str]:
    try:
        from workload_eval.workloads.catalog import WORKLOADS
    except ImportError:  # the workloads package is optional for reading stored results
        return {}
    return {name: spec.color for name, spec in WORKLOADS.items() if spec.color}


def workload_color(name: str, order: list[str] | None = None) -> str:
    """The seed's colour for its workloads (from the catalog); a stable fallback otherwise."""
    colors = _catalog_colors()
    if name in colors:
        return colors[name]
    seed = {
        "alpaca": "#F8DE4B",
        "dolly": "#57B593",
        "cnn_dailymail": "#E16F65",
        "sharegpt": "#577FBC",
    }
    if name in seed:
        return seed[name]
    others = sorted(order or [name])
    idx = others.index(name) if name in others else 0
    return _FALLBACK_COLORS[idx % len(_FALLBACK_COLORS)]


def workload_label(name: str) -> str:
    return _WORKLOAD_LABELS.get(name, name.replace("_", " ").title() if name else "?")


def model_label(name: str) -> str:
    """``opt-13b`` -> ``OPT-13B``, ``llama-2-7b`` -> ``Llama-2-7B`` (the paper's spelling)."""
    if name.startswith("opt-"):
        return "OPT-" + name[4:].upper()
    if name.startswith("llama-"):
        return "Llama-" + name[6:].upper()
    return name


def model_sort_key(name: str) -> tuple[int, float, str]:
    """OPT before Llama-2, smaller before bigger, as the paper lists them."""
    family = 0 if name.startswith("opt") else 1 if name.startswith("llama") else 2
    size = name.rsplit("-", 1)[-1].lower().rstrip("b")
    try:
        params = float(size)
    except ValueError:
        params = 0.0
    return family, params, name


def workload_order(names: Iterable[str]) -> list[str]:
    seed = ["alpaca", "cnn_dailymail", "dolly", "sharegpt"]
    present = [n for n in seed if n in set(names)]
    return present + sorted(set(names) - set(seed))


def styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a figure function under the house style (fonts, spines, grid, hatches)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper


def workload_panels(count: int) -> tuple[Figure, np.ndarray]:
    """One panel per workload in two columns (one for a single workload), spares hidden."""
    ncols = 2 if count > 1 else 1
    nrows = int(np.ceil(count / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 3.2 * nrows), constrained_layout=True, squeeze=False
    )
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    return fig, axes


def run_columns(
    rows: int, count: int, *, column_width: float, height: float
) -> tuple[Figure, np.ndarray]:
    """One column per run, ``rows`` panels sharing the column's time axis."""
    return plt.subplots(
        rows,
        count,
        figsize=(column_width * count + 0.6, height),
        constrained_layout=True,
        squeeze=False,
        sharex="col",
    )


def legend_below(fig: Figure, handles: Sequence[Artist], *, ncols: int) -> None:
    """The figure's one legend, centred under its panels, without a frame."""
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def plain_log_labels(axis: Axis) -> None:
    """A log axis labelled with plain numbers (0.05, 0.1, 0.2), easier to read than 10^-1."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def log_ticks_125(axis: Axis) -> None:
    """A log axis with ticks at 1, 2 and 5 of each decade, labelled with plain numbers."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    plain_log_labels(axis)


PNG_DPI = 150  # the page's figures: sharp on a laptop screen, a few hundred kB each


def _lay_out_once(fig: Figure, dpi: float) -> None:
    """Solve the figure's layout once, as ``savefig`` does for the PNG, then drop the engine.

    The constrained layout is in figure units (a third of a figure's cost): the PNG's
    serves the PDF. And ``savefig`` with a layout engine draws the whole figure once more
    just to solve it, for each file; solved here, neither pays that pass. The same bytes as
    two ``savefig`` calls with the engine (every figure of the reproduced study, checked).
    """
    engine = fig.get_layout_engine()
    if engine is None:
        return
    own_dpi = fig.dpi
    fig.set_dpi(dpi)  # text is measured at the PNG's resolution, as savefig(dpi=) does
    try:
        for ax in fig.axes:  # what Figure.draw does before its layout
            ax.apply_aspect()
        engine.execute(fig)
    finally:
        fig.set_dpi(own_dpi)
    with plt.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)  # none at all: "none" leaves a placeholder savefig sees


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """PNG (for the page) and PDF (for a paper), written atomically enough: then closed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    _lay_out_once(fig, PNG_DPI)
    fig.savefig(paths[0], dpi=PNG_DPI, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(fig)
    return paths
