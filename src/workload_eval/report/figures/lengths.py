"""Figure 1: the prompt and output lengths of each workload, from its stored requests."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pyarrow import ArrowException

from workload_eval.report import style
from workload_eval.results import offline_points


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
    style.legend_below(fig, axes[0].get_legend_handles_labels()[0], ncols=len(order))
    return style.save(fig, out_dir, name)
