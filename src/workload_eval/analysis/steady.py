"""The steady-state window of an online run: MSER-5 truncation on the in-flight count.

An open-loop run starts empty (ramp-up), and after the last arrival it only empties
(drain); metrics over the whole run mix both with the load it was meant to measure. The
window here starts where the warm-up ends and stops at the last intended arrival:

- **Series.** The number of requests in the system (intended arrival to finish: the
  client's view, the same for every engine), time-averaged over ``NUM_BINS`` equal bins
  from the first to the last arrival. With a stationary arrival process this count is
  stationary exactly when the completion rate is (what leaves = what arrives - the
  count's growth), and by Little's law its mean is the arrival rate times the mean
  latency: a trend in latency shows in it.
- **Warm-up end: MSER-5** (White 1997, "An effective truncation heuristic for bias
  reduction in simulation output", Simulation 69(6); White, Cobb & Spratt 2000), the
  heuristic Hoad, Robinson & Davies (2010, JORS 61(9)) recommend after comparing 42:
  average the series in batches of 5, and truncate the first ``d`` batches where
  ``d`` minimizes the squared standard error of the remaining mean,
  ``sum((z_j - mean)^2) / (m - d)^2``. The search keeps at least ``MIN_TAIL_BATCHES``
  batches.
- **Not stationary.** A minimum in the second half of the series means the count never
  settled (an overloaded run grows until the arrivals stop, or the run is too short):
  there is no steady window (the rule those papers give).
- **End.** The last intended arrival: after it the system drains by construction.

A request belongs to the window when it arrived in it; throughput in the window counts the
requests that finished in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METHOD = "mser-5 on the in-flight count"
BATCH = 5  # the "5" of MSER-5: the series is averaged in batches of 5 bins
NUM_BINS = 500  # bins of the in-flight series over the arrival window (100 MSER batches)
MIN_TAIL_BATCHES = 5  # batches the truncation must leave (the statistic of 1-2 is noise)
MIN_REQUESTS = 50  # arrivals needed in the arrival window to look for a steady state


@dataclass(frozen=True)
class SteadyWindow:
    """Where the run was in steady state (``reached``), or why it was not (``reason``)."""

    reached: bool
    start: float | None = None  # s from run start (the intended-time origin)
    end: float | None = None
    reason: str = ""
    truncated_batches: int | None = None  # MSER's d
    batches: int | None = None  # MSER's m

    def contains(self, times: pd.Series | np.ndarray) -> np.ndarray:
        t = np.asarray(times, dtype=float)
        if not self.reached or self.start is None or self.end is None:
            return np.zeros(len(t), dtype=bool)
        return (t >= self.start) & (t <= self.end)


def mser_truncation(series: np.ndarray, batch: int = BATCH) -> tuple[int, int] | None:
    """MSER-``batch``: (d, m), the number of leading batches to drop and the number of
    batches; None when the series has fewer than ``2 * MIN_TAIL_BATCHES`` batches."""
    x = np.asarray(series, dtype=float)
    m = len(x) // batch
    if m < 2 * MIN_TAIL_BATCHES:
        return None
    z = x[: m * batch].reshape(m, batch).mean(axis=1)
    z = z - z.mean()  # centred: the sums below then lose less to rounding
    s1 = np.cumsum(z[::-1])[::-1]  # sum of z[d:]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    n = np.arange(m, 0, -1, dtype=float)  # m - d
    stat = np.maximum((s2 - s1 * s1 / n) / (n * n), 0.0)
    stat = stat[: m - MIN_TAIL_BATCHES + 1]  # the search keeps at least MIN_TAIL_BATCHES
    # the first minimum: ties (a constant tail) are rounding noise apart
    tol = 1e-9 * float(stat.max())
    d = int(np.flatnonzero(stat <= stat.min() + tol)[0])
    return d, m


def in_flight_series(arrivals: np.ndarray, finishes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-average number of requests in the system in each bin between ``edges``.

    Exact for the step function N(t) = #arrived(t) - #finished(t): its integral up to T is
    sum over arrivals before T of (T - a) minus the same over finishes.
    """

    def integral(events: np.ndarray) -> np.ndarray:
        ev = np.sort(events)
        csum = np.concatenate(([0.0], np.cumsum(ev)))
        k = np.searchsorted(ev, edges, side="right")
        return k * edges - csum[k]

    area = integral(arrivals) - integral(finishes)
    return np.diff(area) / np.diff(edges)


def steady_window(requests: pd.DataFrame) -> SteadyWindow:
    """The steady-state window of a run from its requests table (see the module doc)."""
    return window_of(
        requests["arrival_time"].to_numpy(dtype=float),
        requests["finish_time"].to_numpy(dtype=float),
    )


def window_of(arrival_time: np.ndarray, finish_time: np.ndarray) -> SteadyWindow:
    """:func:`steady_window` from the requests' arrival and finish times (NaN: unknown)."""
    known = np.isfinite(finish_time)
    arrivals = arrival_time[np.isfinite(arrival_time)]
    if len(arrivals) == 0:
        return SteadyWindow(False, reason="no requests")
    first, last = float(arrivals.min()), float(arrivals.max())
    if last <= first:
        return SteadyWindow(False, reason="offline: every request arrives at once")
    if len(arrivals) < MIN_REQUESTS:
        return SteadyWindow(False, reason=f"fewer than {MIN_REQUESTS} arrivals")
    edges = np.linspace(first, last, NUM_BINS + 1)
    series = in_flight_series(arrival_time[known], finish_time[known], edges)
    found = mser_truncation(series)
    if found is None:
        return SteadyWindow(False, reason="too few bins")
    d, m = found
    if d > m // 2:
        return SteadyWindow(
            False,
            reason="not stationary: the in-flight count kept changing past half the arrivals "
            "(overload, or a run too short to settle)",
            truncated_batches=d,
            batches=m,
        )
    start = float(edges[d * BATCH])
    return SteadyWindow(True, start, last, truncated_batches=d, batches=m)


__all__ = [
    "METHOD",
    "SteadyWindow",
    "in_flight_series",
    "mser_truncation",
    "steady_window",
    "window_of",
]
