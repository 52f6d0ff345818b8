"""Whether a probed rate meets its SLOs, with a stated confidence.

A run's summary carries a confidence interval for each latency statistic (analysis.
intervals). At confidence ``c`` a bound ``metric <= v`` is

- **met** when the whole ``c``-level interval is within it (its upper end <= v),
- **violated** when the whole interval is outside it (its lower end > v),
- **undecided** otherwise (the run cannot tell at that confidence);

``>=`` bounds mirror this. A capacity search probes for the highest rate that is met (the
answer) and for the lowest rate that is violated (the top of the answer's interval),
so the true crossing lies between the two. ``confidence=None`` judges the point estimate
alone, the way the paper did (met = not violated). A metric without intervals (a
throughput) is judged by its value. Several seeds: ``majority``/``all`` combine the
seeds' verdicts; ``mean`` judges the mean over seeds with the Student-t interval across
them (from 2 seeds on; one seed: that run's own interval).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from workload_eval.analysis.intervals import CONFIDENCE_LEVEL, at_level, mean_interval
from workload_eval.slo import SLO, observed

Aggregate = Literal["majority", "mean", "all"]


@dataclass(frozen=True)
class Verdict:
    """``met``: within every bound at the confidence; ``possible``: no bound violated at it."""

    met: bool
    possible: bool
    # per objective metric: the interval it was judged by (point, point without intervals)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "meets" if self.met else "undecided" if self.possible else "violates"


def run_interval(
    metrics: Mapping[str, Any], metric: str, confidence: float | None
) -> tuple[float, float]:
    """The interval of ``metric`` in one run's summary at ``confidence`` (low, high);
    (value, value) without confidence or without an interval, (nan, nan) if unknown."""
    value = observed(metrics, metric)
    if confidence is None or math.isnan(value) or f"{metric}_ci_low" not in metrics:
        return value, value
    low, high = observed(metrics, f"{metric}_ci_low"), observed(metrics, f"{metric}_ci_high")
    if math.isnan(low) or math.isnan(high):  # too few requests for an interval
        return -math.inf, math.inf
    stored = observed(metrics, "confidence_level")
    if not math.isnan(stored) and abs(confidence - stored) > 1e-12:
        batches = metrics.get("ci_batches")
        k = batches.get(metric) if isinstance(batches, Mapping) else None
        if not isinstance(k, int):
            return -math.inf, math.inf  # cannot restate it at this level
        low, high = at_level(value, low, high, k, confidence, stored=stored)
    return low, high


def judge(intervals: Mapping[str, tuple[float, float]], objectives: Sequence[SLO]) -> Verdict:
    """Every objective against its metric's interval."""
    met = possible = True
    for s in objectives:
        low, high = intervals.get(s.metric, (math.nan, math.nan))
        if math.isnan(low) or math.isnan(high):  # nothing measured: a violation
            met = possible = False
            continue
        worst, best = (high, low) if s.op in ("<=", "<") else (low, high)
        met &= s.holds(worst) if math.isfinite(worst) else False
        possible &= s.holds(best) if math.isfinite(best) else True
    return Verdict(met, possible, dict(intervals))


def judge_run(
    metrics: Mapping[str, Any], objectives: Sequence[SLO], confidence: float | None
) -> Verdict:
    names = dict.fromkeys(s.metric for s in objectives)
    return judge({m: run_interval(metrics, m, confidence) for m in names}, objectives)


def judge_runs(
    runs: Sequence[Mapping[str, Any]],
    objectives: Sequence[SLO],
    confidence: float | None,
    aggregate: Aggregate,
) -> Verdict:
    """One verdict for a rate from its seeds' runs (its intervals: the mean's, shown with
    every aggregate)."""
    intervals: dict[str, tuple[float, float]] = {}
    for name in dict.fromkeys(s.metric for s in objectives):
        values = [observed(m, name) for m in runs]
        ci = mean_interval(values, level=confidence) if confidence and len(runs) > 1 else None
        if ci is not None:
            intervals[name] = (ci.low, ci.high)
        elif len(runs) == 1:
            intervals[name] = run_interval(runs[0], name, confidence)
        else:
            mean = float(np.mean(values)) if values else math.nan  # as capacity's table
            intervals[name] = (mean, mean)
    if aggregate == "mean":
        return judge(intervals, objectives)
    verdicts = [judge_run(m, objectives, confidence) for m in runs]
    if aggregate == "all":
        met, possible = all(v.met for v in verdicts), all(v.possible for v in verdicts)
    else:
        half = len(verdicts) / 2
        met = sum(v.met for v in verdicts) > half
        possible = sum(v.possible for v in verdicts) > half
    return Verdict(met, possible, intervals)


def parse_confidence(value: object, *, where: str = "--confidence") -> float | None:
    """A level in (0, 1), or none/off (point estimates, the paper's way)."""
    from workload_eval.errors import UserError

    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off")):
        return None
    try:
        level = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        level = math.nan
    if not 0.5 <= level < 1:
        raise UserError(
            f"{where} {value!r}: expected a confidence level from 0.5 to below 1 (e.g. "
            f"{CONFIDENCE_LEVEL}) or 'none' for point estimates"
        )
    return level


__all__ = ["Aggregate", "Verdict", "judge", "judge_run", "judge_runs", "parse_confidence"]
