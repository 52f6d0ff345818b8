"""Which figures a report draws, with their titles and captions, as jobs to render
(:mod:`workload_eval.report.figure_pool` draws them, several at once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workload_eval.report import figures, style
from workload_eval.report.figure_jobs import FigureJob, lengths_job, timelines_job
from workload_eval.report.stored import timeline_runs


@dataclass
class PlannedFigure:
    """A figure of the page before it is drawn: it shows only if its job drew something."""

    title: str
    caption: str
    job: FigureJob


def plan_figures(
    results_dir: Path,
    points: pd.DataFrame,
    capacity: pd.DataFrame,
    fig_dir: Path,
    slo: float,
    *,
    lengths: str,
    rule: str,
    problems: list[str] | None = None,
) -> list[PlannedFigure]:
    """Every figure the stored results may allow, in the paper's order; every caption names
    the output lengths (``lengths``) and, for capacities, the rule that produced them."""
    problems = problems if problems is not None else []
    frames = figures.length_frames(results_dir, points, problems)
    tokenizers = sorted({style.model_label(str(f.attrs.get("model", ""))) for f in frames.values()})

    def job(kind: str, table: str, frame: pd.DataFrame, **options: str | float | None) -> FigureJob:
        return FigureJob(kind, fig_dir, {table: frame}, dict(options))

    ttft = {"metric": "ttft_p95", "ylabel": "p95 TTFT (s)", "slo": None, "name": "ttft_vs_rate"}
    return [
        PlannedFigure(
            "Figure 1 — request lengths",
            "CDFs of input and output lengths per workload (tokens, log scale; dot: the "
            f"mean), from the requests of the biggest offline run ({', '.join(tokenizers)} "
            f"tokenizer). Output lengths: {lengths}.",
            lengths_job(frames, fig_dir),
        ),
        PlannedFigure(
            "Figure 2a — capacity under the SLO",
            f"Highest Poisson request rate whose p95 normalized latency stays ≤ {slo:g} "
            f"s/token, by {rule}. Output lengths: {lengths}.",
            job("figure2a_capacity", "capacity", capacity, slo=slo),
        ),
        PlannedFigure(
            "Figure 2b — offline throughput",
            "All requests at t = 0; requests per second over [first arrival, last finish]. "
            f"Output lengths: {lengths}.",
            job("figure2b_throughput", "points", points),
        ),
        PlannedFigure(
            "Figure 3a — capacity vs KV-cache blocks",
            f"Max request rate under the SLO per KV size, models side by side, by {rule}. "
            f"Output lengths: {lengths}.",
            job("figure3a_capacity_vs_kv", "capacity", capacity),
        ),
        PlannedFigure(
            "Figure 3b — offline throughput vs KV-cache blocks",
            f"Offline request throughput per KV size, models side by side. Output lengths: "
            f"{lengths}.",
            job("figure3b_throughput_vs_kv", "points", points),
        ),
        PlannedFigure(
            "p95 normalized latency vs request rate",
            "The curves behind Figure 2a: every rate the capacity rule probed (log scale; "
            f"dashed: the SLO). Output lengths: {lengths}.",
            job("figure_metric_vs_rate", "points", points, slo=slo),
        ),
        PlannedFigure(
            "p95 time to first token vs request rate",
            f"TTFT measured from the intended arrival time (log scale). Output lengths: {lengths}.",
            job("figure_metric_vs_rate", "points", points, **ttft),
        ),
        PlannedFigure(
            "Closed loop: throughput and latency vs users",
            "Runs of --schedule concurrency: N users, each sending its next request when its "
            "previous one finished (plus think time); latency from each request's intended "
            "send time.",
            job("figure_closed_loop", "points", points),
        ),
        PlannedFigure(
            "One run over time",
            "KV-cache usage, running/waiting requests and cumulative preemptions, per "
            "engine step, for the run at (or just below) each workload's capacity. Output "
            f"lengths: {lengths}.",
            timelines_job(timeline_runs(points, capacity, results_dir, problems), fig_dir),
        ),
    ]


__all__ = ["PlannedFigure", "plan_figures"]
