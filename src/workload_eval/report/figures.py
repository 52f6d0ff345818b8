"""The paper's figures and the curves behind them, one function each, from stored results.

Every function takes tables built by :mod:`workload_eval.results` (or stored
Parquet files), writes ``<name>.png`` and ``<name>.pdf`` under ``out_dir`` and returns
the paths; with nothing to plot it writes nothing and returns ``[]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from pyarrow import ArrowException

from workload_eval.paper import KV_BLOCKS_MAX, NUM_REQUESTS, SLO_S_PER_TOKEN
from workload_eval.report import style
from workload_eval.results import offline_points, online_points

SLO_COLOR = "#c0392b"


# ---------------------------------------------------------------- Figure 1
def length_frames(
    results_dir: str | Path, points: pd.DataFrame, problems: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Per workload, the prompt/output lengths of its biggest stored offline point (a
    damaged requests table is skipped and named in ``problems``)."""
    frames: dict[str, pd.DataFrame] = {}
    off = offline_points(points)
    if off.empty:
        off = points
    for workload, g in off.groupby("workload"):
        g = g.assign(_m=g["model"].map(style.model_sort_key))
        best = g.sort_values(["num_requests_total", "_m"], ascending=[False, True]).iloc[0]
        path = Path(results_dir) / best["key"] / "requests.parquet"
        if not path.is_file():  # missing, or not a regular file (a pipe would block)
            continue
        try:
            req = pd.read_parquet(path, columns=["prompt_tokens", "expected_output_tokens"])
        except (OSError, ValueError, KeyError, ArrowException) as e:
            if problems is not None:
                problems.append(f"skipped {path}: cannot read it ({type(e).__name__})")
            continue
        req = req.apply(pd.to_numeric, errors="coerce").dropna()
        df = req.rename(
            columns={"prompt_tokens": "prompt_len", "expected_output_tokens": "output_len"}
        )
        df.attrs["model"] = best["model"]
        frames[str(workload)] = df
    return frames


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(np.asarray(values, float))
    return x, np.arange(1, len(x) + 1) / len(x)


@style.styled
def figure1_lengths(
    frames: dict[str, pd.DataFrame], out_dir: str | Path, name: str = "figure1_lengths"
) -> list[Path]:
    """Figure 1: CDFs of input and output lengths per workload (dot: the mean)."""
    frames = {k: frames[k] for k in style.workload_order(frames) if len(frames[k])}
    if not frames:
        return []
    models = sorted({str(f.attrs.get("model", "")) for f in frames.values()} - {""})
    title = (
        (
            "Request lengths ("
            + ", ".join(style.model_label(m) for m in models)
            + " tokenizer; dot = mean)"
        )
        if models
        else None
    )
    try:  # the workloads package's Figure 1 (the seed's style), when installed
        from workload_eval.workloads import plot_length_cdfs
    except ImportError:
        plot_length_cdfs = None
    if plot_length_cdfs is not None:
        out = Path(out_dir)
        paths = [out / f"{name}.png", out / f"{name}.pdf"]
        for p in paths:  # no title: the seed's legend sits where a title would go
            plot_length_cdfs(frames, p)
        return paths
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True, constrained_layout=True)
    order = style.workload_order(frames)
    for ax, col, label in zip(
        axes,
        ("prompt_len", "output_len"),
        ("Input length (tokens)", "Output length (tokens)"),
        strict=True,
    ):
        for w in order:
            x, y = _cdf(frames[w][col].clip(lower=1))
            color = style.workload_color(w, order)
            ax.plot(x, y, color=color, lw=2.2, label=style.workload_label(w))
            mean = float(np.mean(x))
            ax.plot(
                mean, float(np.mean(x <= mean)), "o", color=color, ms=5, mec=style.EDGE, mew=0.6
            )
        ax.axhline(0.5, color="#999999", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(label)
    axes[0].set_ylabel("Cumulative fraction of requests")
    axes[0].set_ylim(0, 1.02)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=len(order),
        frameon=False,
    )
    return style.save(fig, out_dir, name)


# ---------------------------------------------------------------- Figure 2
def _grouped_bars(
    ax, table: pd.DataFrame, value: str, models: list[str], workloads: list[str]
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


def _pick_kv(table: pd.DataFrame, kv_blocks: int | None) -> pd.DataFrame:
    """Rows at ``kv_blocks``; by default each model at its largest KV size (a model whose
    KV size is unknown, such as a server run without /metrics, keeps all its rows)."""
    if table.empty:
        return table
    if kv_blocks is not None:
        return table[table["kv_blocks"] == kv_blocks]
    biggest = table.groupby("model")["kv_blocks"].transform("max")
    return table[(table["kv_blocks"] == biggest) | biggest.isna()]


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
    table = _pick_kv(capacity, kv_blocks)
    if table.empty and kv_blocks is not None:
        table = _pick_kv(capacity, None)
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


def offline_table(points: pd.DataFrame, num_requests: int | None = 1000) -> pd.DataFrame:
    """Offline throughput per (model, kv_blocks, workload) at N requests (mean over seeds)."""
    off = offline_points(points)
    if off.empty:
        return off
    if num_requests is not None and (off["num_requests"] == num_requests).any():
        off = off[off["num_requests"] == num_requests]
    else:  # the biggest N stored
        off = off[
            off["num_requests"]
            == off.groupby(["model", "kv_blocks", "workload"])["num_requests"].transform("max")
        ]
    keys = ["model", "kv_blocks", "workload", "num_requests"]
    return off.groupby(keys)[["request_throughput", "token_throughput"]].mean().reset_index()


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
    picked = _pick_kv(table, kv_blocks)
    table = picked if not picked.empty else _pick_kv(table, None)
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


# ---------------------------------------------------------------- Figure 3
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
    ncols = 2 if len(workloads) > 1 else 1
    nrows = int(np.ceil(len(workloads) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 3.2 * nrows), constrained_layout=True, squeeze=False
    )
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
    for ax in list(axes.flat)[len(workloads) :]:
        ax.set_visible(False)
    handles = [
        Patch(
            facecolor=style.KV_BLUES[j % len(style.KV_BLUES)],
            edgecolor=style.EDGE,
            label=f"{kv} blocks ({kv / base:.3g}×)",
        )
        for j, kv in enumerate(kvs)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(kvs), frameon=False)
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


# ------------------------------------------------------- beyond the paper
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
    online = _pick_kv(online, kv_blocks)
    online = online[np.isfinite(pd.to_numeric(online[metric], errors="coerce"))]
    if online.empty:
        return []
    workloads = style.workload_order(online["workload"].unique())
    models = sorted(online["model"].unique(), key=style.model_sort_key)
    ncols = 2 if len(workloads) > 1 else 1
    nrows = int(np.ceil(len(workloads) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 3.2 * nrows), constrained_layout=True, squeeze=False
    )
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
            ax.axhline(slo, color=SLO_COLOR, ls="--", lw=1, label=f"SLO {slo:g}")
        _log_y(ax)
        ax.set_title(style.workload_label(w))
        ax.set_xlabel("Request rate (req/s)")
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.set_visible(False)
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend(
        [handles[lab] for lab in labels],
        labels,
        loc="outside lower center",
        ncols=min(len(labels), 5),
        frameon=False,
    )
    return style.save(fig, out_dir, name)


def _log_y(ax) -> None:
    """Log scale with plain tick labels (0.05, 0.1, 0.2), easier to read than 10^-1."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


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
    fig, axes = plt.subplots(
        3,
        len(order),
        figsize=(3.4 * len(order) + 0.6, 6.4),
        constrained_layout=True,
        squeeze=False,
        sharex="col",
    )
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
    fig.legend(
        handles=[
            Line2D([], [], color=style.EDGE, lw=1, label="running (batch size)"),
            Line2D([], [], color="#555555", lw=1, ls=":", label="waiting"),
        ],
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    return style.save(fig, out_dir, name)


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
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
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
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 8), frameon=False
    )
    return style.save(fig, out_dir, name)
