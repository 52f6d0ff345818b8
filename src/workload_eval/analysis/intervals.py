"""Confidence intervals for a run's means and percentiles: batch means with sectioning.

Why not an i.i.d. bootstrap over requests: in a loaded server consecutive requests share a
queue, so their latencies are autocorrelated and resampling them independently gives
intervals that are too narrow. The method here is the simulation-output standard for
dependent series (Law, *Simulation Modeling and Analysis*, 5th ed., section 9.5.3;
Schmeiser 1982, "Batch size effects in the analysis of simulation output", Oper. Res.
30(3)): split the values, in arrival order, into ``k`` contiguous batches (20 by default,
Schmeiser's 10-30), estimate the statistic in each batch, and take the spread of the batch
estimates around the whole-sample estimate ("sectioning", Asmussen & Glynn, *Stochastic
Simulation*, 2007, section III.5a; for quantiles Nakayama 2014, ACM TOMACS 24(4)) with a
Student-t quantile on ``k - 1`` degrees of freedom. Batches long compared with the
correlation time make the batch estimates nearly independent. Deterministic: no random
resampling, no seed. A percentile needs batches that hold a few values beyond it, so with
too few values there is no interval (``None``) rather than a misleading one.

The level is :data:`CONFIDENCE_LEVEL` everywhere the tool reports an interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from workload_eval.analysis.quantiles import linear_percentiles

CONFIDENCE_LEVEL = 0.95  # two-sided level of every interval in summaries, tables and figures
NUM_BATCHES = 20  # Schmeiser (1982): 10 to 30 batches
MIN_BATCHES = 5  # fewer batches than this: no interval (t on < 4 degrees of freedom is wide)
MIN_BATCH_SIZE = 10  # values per batch for a mean or a central percentile
# A batch must hold this many values above a percentile p on average: size >= TAIL / (1 - p)
# (p95: 40 values, p99: 200), so a batch's p99 is an interpolated order statistic, not its max.
MIN_TAIL_VALUES = 2
METHOD = f"batch means (sectioning), up to {NUM_BATCHES} batches in arrival order"


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval and how many batches made it."""

    low: float
    high: float
    batches: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _t_abs_cdf(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with an integer ``dof`` (Abramowitz & Stegun 26.7.3-4,
    exact finite sums)."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 1:  # odd: (2/pi)(theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if dof > 1 else 0.0
        for j in range(1, (dof - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0  # even: sin(theta) (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for j in range(1, dof // 2):
        term *= c2 * (2 * j - 1) / (2 * j)
        total += term
    return math.sin(theta) * total


@lru_cache(maxsize=256)
def t_quantile(level: float, dof: int) -> float:
    """The two-sided Student-t critical value: P(|T| <= t) = ``level`` on ``dof`` degrees
    of freedom (12.706 for 95% on 1, 2.093 on 19)."""
    if not 0 < level < 1 or dof < 1:
        raise ValueError(f"need 0 < level < 1 and dof >= 1, got {level}, {dof}")
    lo, hi = 0.0, 1.0
    while _t_abs_cdf(hi, dof) < level:
        lo, hi = hi, hi * 2
    for _ in range(100):  # bisection to float precision
        mid = (lo + hi) / 2
        if _t_abs_cdf(mid, dof) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2


def min_batch_size(percentile: float | None) -> int:
    """Values a batch needs for a mean (``None``) or a percentile (0-100)."""
    if percentile is None:
        return MIN_BATCH_SIZE
    tail = 1.0 - percentile / 100.0
    return max(MIN_BATCH_SIZE, math.ceil(MIN_TAIL_VALUES / tail - 1e-9)) if tail > 0 else 0


def min_values(percentile: float | None) -> int:
    """The fewest values that give an interval (MIN_BATCHES full batches)."""
    return MIN_BATCHES * min_batch_size(percentile)


def metric_statistic(metric: str) -> float | bool | None:
    """What a summary metric with an interval estimates: a percentile (``..._p95``), a mean
    (``..._mean``, ``slo_attainment``, ``goodput``: None), or False for a metric without
    intervals (throughputs, counts)."""
    name = metric.removeprefix("steady.")
    head, _, tail = name.rpartition("_")
    if head in _INTERVAL_FAMILIES and tail.startswith("p") and tail[1:].isdigit():
        return float(tail[1:])
    if (head in _INTERVAL_FAMILIES and tail == "mean") or name in ("slo_attainment", "goodput"):
        return None
    return False


_INTERVAL_FAMILIES = ("ttft", "tpot", "itl", "e2e_latency", "normalized_latency")


def num_batches(n: int, percentile: float | None) -> int:
    """Batches for ``n`` values (0: too few for an interval)."""
    size = min_batch_size(percentile)
    k = min(NUM_BATCHES, n // size) if size else 0
    return k if k >= MIN_BATCHES else 0


def _batch_estimates(
    values: np.ndarray, k: int, percentiles: Sequence[float | None]
) -> list[np.ndarray]:
    """Each statistic (a percentile, or None: the mean) of ``k`` equal batches of ``values``
    (the percentiles from one sort of the batch matrix: analysis.quantiles)."""
    size = len(values) // k
    # equal batches; the few values left over at the start (the warm-up end) are dropped
    batches = values[len(values) - k * size :].reshape(k, size)
    pcts = [p for p in percentiles if p is not None]
    by_pct = dict(zip(pcts, linear_percentiles(batches, pcts), strict=True)) if pcts else {}
    return [np.mean(batches, axis=1) if p is None else by_pct[p] for p in percentiles]


def _centers(values: np.ndarray, percentiles: Sequence[float | None]) -> list[float]:
    """Whole-sample estimates of each statistic (one percentile call for all of them)."""
    pcts = [p for p in percentiles if p is not None]
    by_pct = dict(zip(pcts, linear_percentiles(values, pcts), strict=True)) if pcts else {}
    return [float(np.mean(values)) if p is None else float(by_pct[p]) for p in percentiles]


def _interval(estimates: np.ndarray, center: float, k: int, level: float) -> Interval:
    spread = np.asarray(estimates) - center
    half = t_quantile(level, k - 1) * math.sqrt(float(np.sum(spread**2)) / (k - 1) / k)
    return Interval(center - half, center + half, k)


def _intervals(
    values: np.ndarray,
    percentiles: Sequence[float | None],
    points: Sequence[float | None],
    level: float,
) -> list[Interval | None]:
    """The interval of each statistic (None: too few values); statistics that need the same
    number of batches share one batch matrix."""
    ks = [num_batches(len(values), p) for p in percentiles]
    todo = [i for i, k in enumerate(ks) if k and points[i] is None]
    computed = dict(zip(todo, _centers(values, [percentiles[i] for i in todo]), strict=True))
    out: list[Interval | None] = [None] * len(percentiles)
    for k in sorted(set(ks) - {0}):
        rows = [i for i, ki in enumerate(ks) if ki == k]
        estimates = _batch_estimates(values, k, [percentiles[i] for i in rows])
        for i, est in zip(rows, estimates, strict=True):
            center = points[i]
            out[i] = _interval(est, computed[i] if center is None else center, k, level)
    return out


def sectioning(
    values: np.ndarray,
    percentile: float | None = None,
    *,
    level: float = CONFIDENCE_LEVEL,
    point: float | None = None,
) -> Interval | None:
    """The interval of the mean (``percentile=None``) or a percentile of ``values`` (in
    arrival order, NaN already dropped); ``point`` is the whole-sample estimate if known."""
    return _intervals(np.asarray(values, dtype=float), [percentile], [point], level)[0]


def family_intervals(
    values: np.ndarray,
    prefix: str,
    percentiles: Iterable[int],
    *,
    level: float = CONFIDENCE_LEVEL,
    points: dict[str, float | None] | None = None,
    batches: dict[str, int] | None = None,
) -> dict[str, float | None]:
    """``{prefix}_mean_ci_low/high`` and ``{prefix}_pXX_ci_low/high`` (None: no interval);
    ``batches`` (if given) receives each interval's batch count, by statistic."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    stats = [("mean", None), *((f"p{p}", float(p)) for p in percentiles)]
    known = [(points or {}).get(f"{prefix}_{stat}") for stat, _ in stats]
    cis = _intervals(v, [pct for _, pct in stats], known, level)
    out: dict[str, float | None] = {}
    for (stat, _), ci in zip(stats, cis, strict=True):
        out[f"{prefix}_{stat}_ci_low"] = ci.low if ci else None
        out[f"{prefix}_{stat}_ci_high"] = ci.high if ci else None
        if ci is not None and batches is not None:
            batches[f"{prefix}_{stat}"] = ci.batches
    return out


def at_level(
    point: float, low: float, high: float, batches: int, level: float, *, stored: float
) -> tuple[float, float]:
    """A stored ``stored``-level interval of ``batches`` batches at another ``level``: the
    sectioning interval is symmetric, so its half-width scales with the t quantile
    (a side cut at a natural limit, e.g. an attainment at 1, keeps the other's width)."""
    half = max(point - low, high - point)
    if batches < 2:
        return low, high
    half *= t_quantile(level, batches - 1) / t_quantile(stored, batches - 1)
    return point - half, point + half


def mean_interval(samples: Sequence[float], *, level: float = CONFIDENCE_LEVEL) -> Interval | None:
    """The Student-t interval of the mean of independent samples (e.g. one value per seed);
    None with fewer than two finite samples."""
    x = np.asarray([s for s in samples if s is not None], dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    half = t_quantile(level, len(x) - 1) * float(np.std(x, ddof=1)) / math.sqrt(len(x))
    m = float(np.mean(x))
    return Interval(m - half, m + half, len(x))


__all__ = [
    "CONFIDENCE_LEVEL",
    "METHOD",
    "NUM_BATCHES",
    "Interval",
    "at_level",
    "family_intervals",
    "mean_interval",
    "metric_statistic",
    "min_batch_size",
    "min_values",
    "num_batches",
    "sectioning",
    "t_quantile",
]
