"""Summary keys about the load itself: how many requests were in flight, and the prefix cache.

Kept apart from the latency metrics (metrics.py) because they read the engine's report as
well as the records: ``in_flight_mean`` says whether a closed loop of N users really kept N
requests in the engine (think time and client overhead lower it), and the prefix-cache keys
put the hit rate an engine measured beside the one the workload implies (prefix_reuse.py).
"""

from __future__ import annotations

import math

from pydantic import JsonValue

from workload_eval.contracts import RunRecords
from workload_eval.request_columns import pandas_sum


def in_flight_mean(records: RunRecords, seconds: float) -> float:
    """Mean number of completed requests between their send and their finish over the run's
    ``seconds`` (Little's law: total time in flight / run time); NaN for an empty run."""
    req = records.requests
    ok = (req["status"] == "ok").to_numpy(dtype=bool)
    if not ok.any() or not seconds > 0:
        return math.nan
    finish, send = req["finish_time"].to_numpy(dtype=float), req["send_time"].to_numpy(dtype=float)
    return pandas_sum(finish[ok] - send[ok]) / seconds


def load_summary(records: RunRecords, seconds: float) -> dict[str, JsonValue]:
    """``in_flight_mean``; with prefix caching, ``prefix_cache_hit_rate`` (measured; None when
    the engine does not say), ``prefix_cache_hit_rate_implied`` and ``prefix_cache_reset``."""
    out: dict[str, JsonValue] = {"in_flight_mean": in_flight_mean(records, seconds)}
    cache = records.report.prefix_cache
    if cache is not None:
        out["prefix_cache_hit_rate"] = cache.measured_hit_rate
        out["prefix_cache_hit_rate_implied"] = cache.implied_hit_rate
        out["prefix_cache_reset"] = cache.reset
    return out


__all__ = ["in_flight_mean", "load_summary"]
