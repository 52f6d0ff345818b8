"""Every metric of a run, defined once: records in, numbers out (seconds, tokens).

Latencies run from each request's *intended* arrival time (no coordinated omission).
Failed and ignored requests count in ``num_requests`` / ``num_failed`` but not in latency
statistics or throughput. Throughput is over [first arrival, last finish], the seed's
interval for offline runs. Every latency statistic also comes with its confidence interval
(``<key>_ci_low/high``, analysis.intervals) and, over the run's steady-state window
(analysis.steady), as ``steady.<key>``; docs/measurement.md explains both methods.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import JsonValue

from workload_eval.analysis.intervals import CONFIDENCE_LEVEL, family_intervals, sectioning
from workload_eval.analysis.intervals import METHOD as CI_METHOD
from workload_eval.analysis.steady import METHOD as STEADY_METHOD
from workload_eval.analysis.steady import steady_window
from workload_eval.contracts import RunRecords
from workload_eval.load_summary import load_summary
from workload_eval.slo import PERCENTILES, REQUEST_METRICS, SLO, SLOInput, parse_slos, run_level

SLO_KEYS = REQUEST_METRICS  # per-request latencies a bound can apply to (see slo.py)
Summary = dict[str, JsonValue]  # summary.json: metric name -> value (+ config, version)
_CI_SUFFIXES = ("_ci_low", "_ci_high")


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


def latency_metrics(
    requests: pd.DataFrame,
    *,
    level: float = CONFIDENCE_LEVEL,
    batches: dict[str, int] | None = None,
) -> Summary:
    """Every latency statistic of ``requests`` (completed ones) and its confidence interval
    (``<key>_ci_low/high``, analysis.intervals; None when there are too few requests);
    ``batches`` receives each interval's batch count (capacity rescales intervals by it)."""
    done = completed(requests).sort_values("arrival_time", kind="stable")
    per = request_metrics(done)
    norm = per["normalized_latency"]
    out: Summary = {
        "normalized_latency_mean": float(norm.mean()),
        "normalized_latency_p95": float(np.nanpercentile(norm, 95))
        if norm.notna().any()
        else math.nan,
    }
    series = {
        "ttft": per["ttft"].to_numpy(dtype=float),
        "tpot": per["tpot"].to_numpy(dtype=float),
        "itl": inter_token_latencies(done),
        "e2e_latency": per["e2e_latency"].to_numpy(dtype=float),
    }
    for prefix, values in series.items():
        out.update(distribution(values, prefix))
    points = {k: v for k, v in out.items() if isinstance(v, float)}
    cis: Summary = {}
    common = {"level": level, "points": points, "batches": batches}
    cis.update(family_intervals(norm.to_numpy(dtype=float), "normalized_latency", (95,), **common))
    for prefix, values in series.items():
        cis.update(family_intervals(values, prefix, PERCENTILES, **common))
    return {**out, **cis}


def _throughputs(done: pd.DataFrame, seconds: float) -> Summary:
    return {
        "request_throughput": _rate(len(done), seconds),
        "token_throughput": _rate(
            float(done["prompt_tokens"].sum() + done["generated_tokens"].sum()), seconds
        ),
        "output_token_throughput": _rate(float(done["generated_tokens"].sum()), seconds),
    }


def slo_metrics(
    requests: pd.DataFrame,
    slos: list[SLO],
    seconds: float,
    *,
    level: float = CONFIDENCE_LEVEL,
    batches: dict[str, int] | None = None,
) -> Summary:
    """goodput and slo_attainment (per-request bounds) with their intervals: batch means of
    each request's met/missed, in arrival order; goodput = attainment x requests / seconds."""
    ordered = requests.sort_values("arrival_time", kind="stable")
    met = meets_slo(ordered, slos).to_numpy(dtype=float)
    n = len(met)
    attainment = float(met.mean()) if n else math.nan
    per_second = _rate(float(n), seconds)
    ci = sectioning(met, level=level, point=attainment) if n else None
    if ci is not None and batches is not None:
        batches["goodput"] = batches["slo_attainment"] = ci.batches
    return {
        "goodput": _rate(float(met.sum()), seconds),
        "slo_attainment": attainment,
        "goodput_ci_low": ci.low * per_second if ci else None,
        "goodput_ci_high": ci.high * per_second if ci else None,
        "slo_attainment_ci_low": max(ci.low, 0.0) if ci else None,
        "slo_attainment_ci_high": min(ci.high, 1.0) if ci else None,
    }


def steady_metrics(
    requests: pd.DataFrame,
    slos: list[SLO],
    *,
    level: float = CONFIDENCE_LEVEL,
    batches: dict[str, int] | None = None,
) -> Summary:
    """``steady.*``: the window (analysis.steady) and every throughput and latency metric
    over it; numbers are None when the run never reached a steady state."""
    window = steady_window(requests)
    head: Summary = {
        "steady.reached": window.reached,
        "steady.method": STEADY_METHOD,
        "steady.reason": window.reason,
        "steady.start_s": window.start,
        "steady.end_s": window.end,
    }
    inside = requests[window.contains(requests["arrival_time"])]
    seconds = (window.end - window.start) if window.reached else 0.0  # type: ignore[operator]
    done = completed(requests)
    finish = done["finish_time"].to_numpy(dtype=float)
    finished_in = done[window.contains(finish)]
    own: dict[str, int] = {}
    body: Summary = {
        "num_requests": len(inside),
        "num_completed": int((inside["status"] == "ok").sum()),
        **_throughputs(finished_in, seconds),
        **latency_metrics(inside, level=level, batches=own),
    }
    if any(s.per_request for s in slos):
        body.update(slo_metrics(inside, slos, seconds, level=level, batches=own))
    if not window.reached:
        body, own = dict.fromkeys(body), {}
    if batches is not None:
        batches.update({f"steady.{k}": v for k, v in own.items()})
    return {**head, **{f"steady.{k}": v for k, v in body.items()}}


def summarize(records: RunRecords, *, slo: SLOInput | None = None) -> Summary:
    """The run's metrics: summary.json (keys in docs/INTERFACES.md) without the run record
    the runner adds; NaN (undefined) becomes None. Besides the whole run: each latency's
    confidence interval (``*_ci_low/high``) and the steady-state window (``steady.*``)."""
    req = records.requests
    done = completed(req)
    seconds = run_interval(req)
    batches: dict[str, int] = {}
    latencies = latency_metrics(req, batches=batches)
    tokens_in = float(done["prompt_tokens"].sum())
    tokens_out = float(done["generated_tokens"].sum())
    out: Summary = {
        **_throughputs(done, seconds),
        **{k: v for k, v in latencies.items() if not k.endswith(_CI_SUFFIXES)},
        "num_requests": len(req),
        "num_completed": len(done),
        "num_failed": int((req["status"] != "ok").sum()),
        "num_ignored": int((req["status"] == "ignored").sum()),
        "duration_s": seconds,
        "preemptions": total_preemptions(records),
        "total_prompt_tokens": int(tokens_in),
        "total_generated_tokens": int(tokens_out),
        **distribution(request_metrics(req)["send_lag"], "send_lag"),
        **load_summary(records, seconds),
    }
    slos: list[SLO] = parse_slos(slo, where="slo") if slo else []
    extra: Summary = {}
    if any(s.per_request for s in slos):
        both = slo_metrics(req, slos, seconds, batches=batches)
        out["goodput"], out["slo_attainment"] = both.pop("goodput"), both.pop("slo_attainment")
        extra.update(both)
    if slos:
        out["slo"] = [str(s) for s in slos]
    out["confidence_level"] = CONFIDENCE_LEVEL
    out["ci_method"] = CI_METHOD
    out.update({k: v for k, v in latencies.items() if k.endswith(_CI_SUFFIXES)})
    out.update(extra)
    out.update(steady_metrics(req, slos, batches=batches))
    out["ci_batches"] = dict(batches)  # per interval: its batches (t on batches - 1 dof)
    if run_level(slos):  # after goodput and steady.*: a bound may name them
        out["slo_met"] = all(s.met(out) for s in run_level(slos))
    return _nan_to_none(out)


__all__ = [
    "SLO_KEYS",
    "completed",
    "distribution",
    "e2e_latency",
    "goodput",
    "inter_token_latencies",
    "latency_metrics",
    "meets_slo",
    "normalized_latency",
    "request_metrics",
    "run_interval",
    "slo_metrics",
    "steady_metrics",
    "summarize",
    "tpot",
    "ttft",
]
