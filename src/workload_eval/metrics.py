"""Every metric of a run, defined once: records in, numbers out (seconds, tokens).

Latencies run from each request's *intended* arrival time (no coordinated omission).
Failed and ignored requests count in ``num_requests`` / ``num_failed`` but not in latency
statistics or throughput. Throughput is over [first arrival, last finish], the seed's
interval for offline runs. Every latency statistic also comes with its confidence interval
(``<key>_ci_low/high``, analysis.intervals) and, over the run's steady-state window
(analysis.steady), as ``steady.<key>``; docs/measurement.md explains both methods.

``summarize`` reads the table's columns once (request_columns.py) and computes every
statistic on numpy arrays, with the formulas of the Series functions below, so the values
are theirs; the Series functions stay for callers that work on tables (analysis.slices).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import JsonValue

from workload_eval.analysis.intervals import CONFIDENCE_LEVEL, family_intervals, sectioning
from workload_eval.analysis.intervals import METHOD as CI_METHOD
from workload_eval.analysis.quantiles import linear_percentiles
from workload_eval.analysis.steady import METHOD as STEADY_METHOD
from workload_eval.analysis.steady import window_of
from workload_eval.contracts import RunRecords
from workload_eval.load_summary import load_summary
from workload_eval.request_columns import (
    RequestColumns,
    normalized_of,
    pandas_mean,
    pandas_sum,
    token_gaps,
    tpot_of,
)
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
    per = tpot_of(_floats(e2e_latency(requests)), _floats(ttft(requests)), _generated(requests))
    return pd.Series(per, index=requests.index)


def normalized_latency(requests: pd.DataFrame) -> pd.Series:
    """The seed's metric: (finish - arrival) / generated tokens, seconds per token."""
    per = normalized_of(_floats(e2e_latency(requests)), _generated(requests))
    return pd.Series(per, index=requests.index)


def _floats(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=float, na_value=np.nan)


def _generated(requests: pd.DataFrame) -> np.ndarray:
    return _floats(requests["generated_tokens"])


def inter_token_latencies(requests: pd.DataFrame) -> np.ndarray:
    """Gaps between consecutive streamed tokens, pooled over requests; empty if none stream."""
    if "token_times" not in requests.columns:
        return np.empty(0)
    return token_gaps(requests["token_times"].to_numpy(dtype=object))


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
    return _run_interval(RequestColumns.of(requests))


def _skipna(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def _run_interval(cols: RequestColumns) -> float:
    if not cols.ok.any():
        return 0.0
    finish, arrival = _skipna(cols.finish[cols.ok]), _skipna(cols.arrival)
    last = finish.max() if finish.size else math.nan  # pandas' max and min skip NaN
    return float(last - (arrival.min() if arrival.size else math.nan))


def _rate(amount: float, seconds: float) -> float:
    return amount / seconds if seconds > 0 else math.nan


def distribution(values: pd.Series | np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix}_mean`` and ``{prefix}_p50/p90/p95/p99`` (linear percentiles), NaN if empty."""
    v = _skipna(np.asarray(values, dtype=float))
    if not v.size:
        return {f"{prefix}_mean": math.nan, **{f"{prefix}_p{p}": math.nan for p in PERCENTILES}}
    qs = linear_percentiles(v, PERCENTILES)  # np.percentile's values, from one sort
    return {f"{prefix}_mean": float(v.mean())} | {
        f"{prefix}_p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)
    }


def _meets(cols: RequestColumns, slos: list[SLO]) -> np.ndarray:
    per = {
        "ttft": cols.ttft,
        "tpot": cols.tpot,
        "e2e_latency": cols.e2e_latency,
        "normalized_latency": cols.normalized_latency,
    }
    ok = cols.ok.copy()
    for bound in slos:
        if not bound.per_request:
            continue
        col = per[bound.metric]()
        holds = bound.holds_each(col)
        if bound.metric == "tpot":
            holds |= np.isnan(col)
        ok &= holds
    return ok


def meets_slo(requests: pd.DataFrame, slo: SLOInput) -> pd.Series:
    """Per request: completed and every per-request bound of ``slo`` met (NaN tpot passes:
    a one-token reply has no time per output token). Run-level bounds are not per request."""
    met = _meets(RequestColumns.of(requests), parse_slos(slo, where="slo"))
    return pd.Series(met, index=requests.index, name="status")


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


def _arrival_order(cols: RequestColumns) -> RequestColumns:
    """The rows by intended arrival, ties (and NaN, last) in table order: pandas'
    ``sort_values(kind="stable")``. Filtering these rows keeps that order, so a subset
    (completed, in the steady window) never needs sorting again."""
    return cols.take(np.argsort(cols.arrival, kind="stable"))


def latency_metrics(
    requests: pd.DataFrame,
    *,
    level: float = CONFIDENCE_LEVEL,
    batches: dict[str, int] | None = None,
) -> Summary:
    """Every latency statistic of ``requests`` (completed ones) and its confidence interval
    (``<key>_ci_low/high``, analysis.intervals; None when there are too few requests);
    ``batches`` receives each interval's batch count (capacity rescales intervals by it)."""
    ordered = _arrival_order(RequestColumns.of(requests))
    return _latency_metrics(ordered.take(ordered.ok), level, batches)


def _latency_metrics(done: RequestColumns, level: float, batches: dict[str, int] | None) -> Summary:
    """:func:`latency_metrics` of completed requests in arrival order."""
    norm = done.normalized_latency()
    known = _skipna(norm)
    out: Summary = {
        "normalized_latency_mean": pandas_mean(norm),
        "normalized_latency_p95": float(linear_percentiles(known, (95,))[0])
        if known.size
        else math.nan,
    }
    series = {
        "ttft": done.ttft(),
        "tpot": done.tpot(),
        "itl": done.inter_token_latencies(),
        "e2e_latency": done.e2e_latency(),
    }
    for prefix, values in series.items():
        out.update(distribution(values, prefix))
    points = {k: v for k, v in out.items() if isinstance(v, float)}
    cis: Summary = {}
    common = {"level": level, "points": points, "batches": batches}
    cis.update(family_intervals(norm, "normalized_latency", (95,), **common))
    for prefix, values in series.items():
        cis.update(family_intervals(values, prefix, PERCENTILES, **common))
    return {**out, **cis}


def _throughputs(done: RequestColumns, seconds: float) -> Summary:
    tokens_out = pandas_sum(done.generated_tokens)
    return {
        "request_throughput": _rate(len(done), seconds),
        "token_throughput": _rate(pandas_sum(done.prompt_tokens) + tokens_out, seconds),
        "output_token_throughput": _rate(tokens_out, seconds),
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
    ordered = _arrival_order(RequestColumns.of(requests))
    return _slo_metrics(ordered, parse_slos(slos, where="slo"), seconds, level, batches)


def _slo_metrics(
    ordered: RequestColumns,
    slos: list[SLO],
    seconds: float,
    level: float,
    batches: dict[str, int] | None,
) -> Summary:
    """:func:`slo_metrics` of requests in arrival order."""
    met = _meets(ordered, slos).astype(float)
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
    cols = RequestColumns.of(requests)
    return _steady_metrics(cols, _arrival_order(cols), slos, level, batches)


def _steady_metrics(
    cols: RequestColumns,
    ordered: RequestColumns,
    slos: list[SLO],
    level: float,
    batches: dict[str, int] | None,
) -> Summary:
    """:func:`steady_metrics` of the rows in table order (``cols``) and in arrival order."""
    window = window_of(cols.arrival, cols.finish)
    head: Summary = {
        "steady.reached": window.reached,
        "steady.method": STEADY_METHOD,
        "steady.reason": window.reason,
        "steady.start_s": window.start,
        "steady.end_s": window.end,
    }
    inside = ordered.take(window.contains(ordered.arrival))
    seconds = (window.end - window.start) if window.reached else 0.0  # type: ignore[operator]
    done = cols.take(cols.ok)
    finished_in = done.take(window.contains(done.finish))
    own: dict[str, int] = {}
    body: Summary = {
        "num_requests": len(inside),
        "num_completed": int(inside.ok.sum()),
        **_throughputs(finished_in, seconds),
        **_latency_metrics(inside.take(inside.ok), level, own),
    }
    if any(s.per_request for s in slos):
        body.update(_slo_metrics(inside, slos, seconds, level, own))
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
    cols = RequestColumns.of(req)  # the columns once; every statistic below reads them
    ordered = _arrival_order(cols)
    done = cols.take(cols.ok)
    seconds = _run_interval(cols)
    batches: dict[str, int] = {}
    latencies = _latency_metrics(ordered.take(ordered.ok), CONFIDENCE_LEVEL, batches)
    tokens_in = pandas_sum(done.prompt_tokens)
    tokens_out = pandas_sum(done.generated_tokens)
    out: Summary = {
        **_throughputs(done, seconds),
        **{k: v for k, v in latencies.items() if not k.endswith(_CI_SUFFIXES)},
        "num_requests": len(req),
        "num_completed": len(done),
        "num_failed": len(req) - len(done),
        "num_ignored": int((req["status"] == "ignored").sum()),
        "duration_s": seconds,
        "preemptions": total_preemptions(records),
        "total_prompt_tokens": int(tokens_in),
        "total_generated_tokens": int(tokens_out),
        **distribution(cols.send_lag(), "send_lag"),
        **load_summary(records, seconds),
    }
    slos: list[SLO] = parse_slos(slo, where="slo") if slo else []
    extra: Summary = {}
    if any(s.per_request for s in slos):
        both = _slo_metrics(ordered, slos, seconds, CONFIDENCE_LEVEL, batches)
        out["goodput"], out["slo_attainment"] = both.pop("goodput"), both.pop("slo_attainment")
        extra.update(both)
    if slos:
        out["slo"] = [str(s) for s in slos]
    out["confidence_level"] = CONFIDENCE_LEVEL
    out["ci_method"] = CI_METHOD
    out.update({k: v for k, v in latencies.items() if k.endswith(_CI_SUFFIXES)})
    out.update(extra)
    out.update(_steady_metrics(cols, ordered, slos, CONFIDENCE_LEVEL, batches))
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
