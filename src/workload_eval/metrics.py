"""Every metric of a run, defined once: records in, numbers out (seconds, tokens).

Latencies run from each request's *intended* arrival time (no coordinated omission).
Failed and ignored requests count in ``num_requests`` / ``num_failed`` but not in latency
statistics or throughput. Throughput is over [first arrival, last finish], the seed's
interval for offline runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import JsonValue

from workload_eval.contracts import RunRecords
from workload_eval.slo import PERCENTILES, REQUEST_METRICS, SLO, SLOInput, parse_slos, run_level

SLO_KEYS = REQUEST_METRICS  # per-request latencies a bound can apply to (see slo.py)
Summary = dict[str, JsonValue]  # summary.json: metric name -> value (+ config, version)


def completed(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests that finished normally: the only ones in latency statistics."""
    return requests[requests["status"] == "ok"]


def e2e_latency(requests: pd.DataFrame) -> pd.Series:
    """finish - intended arrival."""
    return requests["finish_time"] - requests["arrival_time"]


def ttft(requests: pd.DataFrame) -> pd.Series:
    """Time to first token: first token - intended arrival."""
    return requests["first_token_time"] - requests["arrival_time"]


def tpot(requests: pd.DataFrame) -> pd.Series:
    """Time per output token after the first: (e2e - ttft) / (generated - 1); NaN if < 2."""
    gen = requests["generated_tokens"].astype(float)
    return ((e2e_latency(requests) - ttft(requests)) / (gen - 1)).where(gen > 1)


def normalized_latency(requests: pd.DataFrame) -> pd.Series:
    """The seed's metric: (finish - arrival) / generated tokens, seconds per token."""
    gen = requests["generated_tokens"].astype(float)
    return (e2e_latency(requests) / gen).where(gen > 0)


def inter_token_latencies(requests: pd.DataFrame) -> np.ndarray:
    """Gaps between consecutive streamed tokens, pooled over requests; empty if none stream."""
    if "token_times" not in requests.columns:
        return np.empty(0)
    gaps = [
        np.diff(np.asarray(t, dtype=float))
        for t in requests["token_times"]
        if t is not None and len(t) > 1
    ]
    return np.concatenate(gaps) if gaps else np.empty(0)


def request_metrics(requests: pd.DataFrame) -> pd.DataFrame:
    """Per-request latencies (one row per request, NaN where undefined)."""
    return pd.DataFrame(
        {
            "request_id": requests["request_id"],
            "status": requests["status"],
            "e2e_latency": e2e_latency(requests),
            "ttft": ttft(requests),
            "tpot": tpot(requests),
            "normalized_latency": normalized_latency(requests),
            "send_lag": requests["send_time"] - requests["arrival_time"],
        }
    )


def run_interval(requests: pd.DataFrame) -> float:
    """Seconds from the first intended arrival to the last finish of a completed request."""
    done = completed(requests)
    if done.empty:
        return 0.0
    return float(done["finish_time"].max() - requests["arrival_time"].min())


def _rate(amount: float, seconds: float) -> float:
    return amount / seconds if seconds > 0 else math.nan


def distribution(values: pd.Series | np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix}_mean`` and ``{prefix}_p50/p90/p95/p99`` (linear percentiles), NaN if empty."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    out = {f"{prefix}_mean": float(v.mean()) if v.size else math.nan}
    for p in PERCENTILES:
        out[f"{prefix}_p{p}"] = float(np.percentile(v, p)) if v.size else math.nan
    return out


def meets_slo(requests: pd.DataFrame, slo: SLOInput) -> pd.Series:
    """Per request: completed and every per-request bound of ``slo`` met (NaN tpot passes:
    a one-token reply has no time per output token). Run-level bounds are not per request."""
    per = request_metrics(requests)
    ok = requests["status"] == "ok"
    for bound in parse_slos(slo, where="slo"):
        if not bound.per_request:
            continue
        col = per[bound.metric].to_numpy(dtype=float)
        holds = bound.holds_each(col)
        if bound.metric == "tpot":
            holds |= np.isnan(col)
        ok &= holds
    return ok


def goodput(requests: pd.DataFrame, slo: SLOInput) -> float:
    """Requests per second that complete within every per-request SLO bound."""
    return _rate(float(meets_slo(requests, slo).sum()), run_interval(requests))


def _nan_to_none(d: dict[str, JsonValue]) -> Summary:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def total_preemptions(records: RunRecords) -> int:
    """Preemptions from the step timeline when the engine reports them there (servers only
    expose a counter), else summed over requests."""
    steps = records.steps
    if "num_preempted" in steps and steps["num_preempted"].notna().any():
        return int(steps["num_preempted"].sum())
    req = records.requests
    return int(req["num_preemptions"].sum()) if len(req) else 0


def summarize(records: RunRecords, *, slo: SLOInput | None = None) -> Summary:
    """The run's metrics: summary.json (keys in docs/INTERFACES.md) without the run record
    the runner adds; NaN (undefined) becomes None."""
    req = records.requests
    done = completed(req)
    seconds = run_interval(req)
    per = request_metrics(done)
    tokens_in = float(done["prompt_tokens"].sum())
    tokens_out = float(done["generated_tokens"].sum())
    out: Summary = {
        "request_throughput": _rate(len(done), seconds),
        "token_throughput": _rate(tokens_in + tokens_out, seconds),
        "output_token_throughput": _rate(tokens_out, seconds),
        "normalized_latency_mean": float(per["normalized_latency"].mean()),
        "normalized_latency_p95": float(np.nanpercentile(per["normalized_latency"], 95))
        if per["normalized_latency"].notna().any()
        else math.nan,
        **distribution(per["ttft"], "ttft"),
        **distribution(per["tpot"], "tpot"),
        **distribution(inter_token_latencies(done), "itl"),
        **distribution(per["e2e_latency"], "e2e_latency"),
        "num_requests": len(req),
        "num_completed": len(done),
        "num_failed": int((req["status"] != "ok").sum()),
        "num_ignored": int((req["status"] == "ignored").sum()),
        "duration_s": seconds,
        "preemptions": total_preemptions(records),
        "total_prompt_tokens": int(tokens_in),
        "total_generated_tokens": int(tokens_out),
        **distribution(request_metrics(req)["send_lag"], "send_lag"),
    }
    slos: list[SLO] = parse_slos(slo, where="slo") if slo else []
    if any(s.per_request for s in slos):
        out["goodput"] = goodput(req, slos)
        out["slo_attainment"] = float(meets_slo(req, slos).mean()) if len(req) else math.nan
    if slos:
        out["slo"] = [str(s) for s in slos]
    if run_level(slos):  # after goodput: a bound may name it
        out["slo_met"] = all(s.met(out) for s in run_level(slos))
    return _nan_to_none(out)


__all__ = [
    "SLO_KEYS",
    "completed",
    "distribution",
    "e2e_latency",
    "goodput",
    "inter_token_latencies",
    "meets_slo",
    "normalized_latency",
    "request_metrics",
    "run_interval",
    "summarize",
    "tpot",
    "ttft",
]
