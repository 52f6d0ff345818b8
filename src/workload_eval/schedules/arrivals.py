"""Arrival processes: when each request is sent, deterministic for a seed (seconds from
the run's start)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from workload_eval import limits
from workload_eval.errors import UserError
from workload_eval.schedules.specs import (
    ConcurrencySchedule,
    OfflineSchedule,
    RateKind,
    ScheduleSpec,
    SessionsSchedule,
    TraceSchedule,
)

# The seed's Poisson process (cacheflow/vLLM-fork ``benchmark/trace.py``): arrival counts
# drawn per 10 ms quantum from ``np.random.seed(seed); np.random.poisson(rate * 0.01)``.
QUANTUM_MS = 10
# quanta drawn at a time when the count is open-ended (memory follows arrivals, not quanta)
_POISSON_CHUNK = 1 << 20


def seed_poisson(rate: float, duration: float | None, n: int | None, seed: int) -> np.ndarray:
    """Exactly the seed's arrivals: quantum i holds Poisson(rate*0.01) requests at i*0.01 s.

    Drawn in chunks (legacy draws are sequential, so the stream is the same as one big
    draw) keeping only the arrivals: memory follows the requests, not the quanta.
    """
    rs = np.random.RandomState(seed)  # the stream of np.random.seed(seed)
    lam = rate * (QUANTUM_MS / 1000)
    quantum_s = QUANTUM_MS / 1000
    # Without a duration, draw up to the longest run allowed: never an endless loop.
    horizon = duration if duration is not None else limits.max_duration_s() + quantum_s
    total_quanta = int(horizon / quantum_s)
    parts: list[np.ndarray] = []
    drawn = total = 0
    while (n is None or total < n) and drawn < total_quanta:
        size = (
            _POISSON_CHUNK
            if n is None
            else min(_POISSON_CHUNK, max(1024, int(1.2 * (n - total) / lam) + 1))
        )
        size = min(size, total_quanta - drawn)
        counts = rs.poisson(lam=lam, size=size)
        parts.append(np.repeat((drawn + np.arange(size)) * quantum_s, counts))
        drawn += size
        total += len(parts[-1])
    if n is not None and duration is None and total < n:
        limits.check_duration(math.inf, what=f"{n} arrivals at {rate:g}/s")
    times = np.concatenate(parts) if parts else np.zeros(0)
    return times if n is None else times[:n]


def _constant_arrivals(rate: float, duration: float | None, n: int | None) -> np.ndarray:
    """Exact multiples of 1/rate, no accumulated rounding."""
    count = n if duration is None else int(np.ceil(duration * rate - 1e-9))
    if n is not None:
        count = min(count, n)
    times = np.arange(count) / rate
    return times[times < duration] if duration is not None else times


def _cumulative_gaps(
    gaps: Callable[[int], np.ndarray],
    rate: float,
    duration: float | None,
    n: int | None,
    *,
    stalled: str,
) -> np.ndarray:
    """First arrival at t=0, then cumulative gaps (vLLM benchmark_serving's convention)."""
    parts = [np.zeros(1)]
    last, total = 0.0, 1
    want = n if duration is None else int(rate * duration * 1.2) + 16
    # rate x duration is bounded (limits), so far more arrivals than that within the
    # duration means gaps that underflow to 0 (a burstiness of 1e-300): not a process.
    cap = 2 * limits.max_requests() + 1024
    while (n is None or total < n) and (duration is None or last < duration):
        if total > cap:
            raise UserError(stalled)
        t = last + np.cumsum(gaps(max(16, want - total if n is not None else want)))
        parts.append(t)
        last, total = float(t[-1]), total + len(t)
    times = np.concatenate(parts)
    if duration is not None:
        times = times[times < duration]
    return times if n is None else times[:n]


def rate_arrivals(
    kind: RateKind,
    rate: float,
    burstiness: float,
    duration: float | None,
    n: int | None,
    seed: int,
) -> np.ndarray:
    """The arrivals of a rate process: the seed's quantized Poisson, or gaps from 0."""
    if kind == "poisson":
        return seed_poisson(rate, duration, n, seed)
    if kind == "constant":
        return _constant_arrivals(rate, duration, n)
    rng = np.random.default_rng(seed)

    def gaps(size: int) -> np.ndarray:
        if kind == "poisson-exp":
            return rng.exponential(1.0 / rate, size)
        return rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=size)

    stalled = (
        f"schedule {kind}: the arrivals do not advance in time (gaps of 0 s; "
        f"burstiness {burstiness:g} is too small)"
    )
    return _cumulative_gaps(gaps, rate, duration, n, stalled=stalled)


def arrival_times(spec: ScheduleSpec, seed: int) -> np.ndarray | None:
    """Intended send times, or None when the workload decides the count (trace, sessions)."""
    if isinstance(spec, OfflineSchedule):
        return None if spec.num_requests is None else np.zeros(spec.num_requests)
    if isinstance(spec, TraceSchedule | SessionsSchedule | ConcurrencySchedule):
        return None
    times = rate_arrivals(
        spec.kind,
        spec.rate,
        getattr(spec, "burstiness", 1.0),
        spec.duration,
        spec.num_requests,
        seed,
    )
    if len(times) == 0:
        raise UserError(
            f"schedule {spec.kind}: rate {spec.rate}/s over {spec.duration} s produced no "
            "arrivals (raise --request-rate or --duration)"
        )
    check_times(times, f"schedule {spec.kind}")
    return times


def check_times(times: np.ndarray, what: str) -> None:
    """Arrival times are finite, non-negative and within the duration limit (a tiny
    burstiness or time scale can overflow them; a simulator cannot wait for infinity)."""
    if len(times) and not (np.isfinite(times).all() and times.min() >= 0):
        raise UserError(
            f"{what}: arrival times overflow (a rate, burstiness or time scale too small?)"
        )
    if len(times):
        limits.check_duration(float(times.max()), what=what)
    limits.check_request_count(len(times), what=what)


def request_count(spec: ScheduleSpec, seed: int) -> int | None:
    """How many requests to load from the workload; None = all it has."""
    times = arrival_times(spec, seed)
    if times is not None:
        return len(times)
    return spec.num_requests
