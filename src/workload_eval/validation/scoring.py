"""Simulated per-stage latency statistics, cells (measured vs predicted) and their error summary.

Statistics follow the corpus: over the successful requests of each stage, latency from the
request's send time; percentiles as numpy's default (linear), decode time per token =
sum(e2e - ttft) / sum(output tokens - 1). error = predicted / measured - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workload_eval.validation.corpus import METRICS, Experiment
from workload_eval.validation.measurement import add_path
from workload_eval.validation.streams import Stream

SCORED_STATUS = "ok"


@dataclass(frozen=True)
class Cell:
    """One experiment x stage x metric: what was measured and what a simulator predicted."""

    id: str
    stage: int
    metric: str
    measured: float | None
    predicted: float | None
    scored: bool  # counts in the summary: status ok, stage not overloaded, both values usable
    family: str = ""

    @property
    def error(self) -> float:
        if self.measured is None or self.predicted is None or self.measured <= 0:
            return math.nan
        return self.predicted / self.measured - 1


def stage_statistics(
    requests: pd.DataFrame, stream: Stream, measurement_point: str, num_stages: int
) -> list[dict[str, float]]:
    """Per target stage: the metric -> simulated value map (NaN where nothing finished)."""
    target = np.asarray(stream.target_stage, dtype=np.int64)
    keep = (requests["status"].to_numpy() == "ok") & ~np.asarray(stream.measured_failed, bool)
    arrival = requests["arrival_time"].to_numpy(float)
    ttft = requests["first_token_time"].to_numpy(float) - arrival
    e2e = requests["finish_time"].to_numpy(float) - arrival
    prompt = requests["prompt_tokens"].to_numpy(float)
    out = requests["generated_tokens"].to_numpy(float)
    ttft, e2e = add_path(measurement_point, ttft, e2e, prompt, out)
    stats: list[dict[str, float]] = []
    for k in range(num_stages):
        sel = keep & (target == k)
        row: dict[str, float] = {"count": float(sel.sum())}
        if sel.any():
            t, e = ttft[sel], e2e[sel]
            for name, values in (("ttft", t), ("e2e", e)):
                row[f"{name}_mean"] = float(values.mean())
                for q in (50, 90, 99):
                    row[f"{name}_p{q}"] = float(np.percentile(values, q))
            steps = float((out[sel] - 1).sum())
            row["decode_time_per_token_mean"] = (
                float((e - t).sum()) / steps if steps > 0 else math.nan
            )
        else:
            row.update({m: math.nan for m in METRICS})
        stats.append(row)
    return stats


def _usable(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def experiment_cells(
    exp: Experiment, predicted: list[dict[str, float]] | None, family: str
) -> list[Cell]:
    """Every (stage, metric) with a measured value; predicted None where not simulated."""
    cells: list[Cell] = []
    ok = exp.status == SCORED_STATUS
    for k, st in enumerate(exp.targets.stages):
        for metric in METRICS:
            measured = _usable(st.value(metric))
            if measured is None:
                continue
            pred = _usable(predicted[k].get(metric)) if predicted is not None else None
            scored = ok and not st.overloaded and measured > 0 and pred is not None
            cells.append(Cell(exp.id, k, metric, measured, pred, scored, family))
    return cells


def peer_cells(exp: Experiment, family: str) -> dict[str, list[Cell]]:
    """A peer's predictions as cells, on exactly the (stage, metric) pairs it reported."""
    out: dict[str, list[Cell]] = {}
    if not exp.peers:
        return out
    ok = exp.status == SCORED_STATUS
    for name, peer in exp.peers.items():
        cells: list[Cell] = []
        for ps in peer.stages:
            if not 0 <= ps.stage < len(exp.targets.stages):
                continue
            st = exp.targets.stages[ps.stage]
            for metric, value in ps.predictions().items():
                measured = _usable(st.value(metric))
                if measured is None:
                    continue
                scored = ok and not st.overloaded and measured > 0
                cells.append(Cell(exp.id, ps.stage, metric, measured, value, scored, family))
        out[name] = cells
    return out


def error_summary(cells: list[Cell]) -> dict[str, object]:
    """Median and mean absolute % error per metric and overall, over the scored cells."""
    scored = [c for c in cells if c.scored and math.isfinite(c.error)]

    def stats(errs: list[float]) -> dict[str, float | int]:
        a = np.abs(np.asarray(errs, dtype=float)) * 100
        if not len(a):
            return {"cells": 0, "median_abs_pct": math.nan, "mean_abs_pct": math.nan}
        return {
            "cells": len(a),
            "median_abs_pct": float(np.median(a)),
            "mean_abs_pct": float(a.mean()),
            "median_signed_pct": float(np.median(np.asarray(errs) * 100)),
        }

    per_metric = {m: stats([c.error for c in scored if c.metric == m]) for m in METRICS}
    return {
        "overall": stats([c.error for c in scored]),
        "per_metric": {m: v for m, v in per_metric.items() if v["cells"]},
    }


def by_key(cells: list[Cell], key: str) -> dict[str, dict[str, object]]:
    """error_summary per value of a Cell attribute (family, id)."""
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(str(getattr(c, key)), []).append(c)
    return {k: error_summary(v) for k, v in sorted(groups.items())}
