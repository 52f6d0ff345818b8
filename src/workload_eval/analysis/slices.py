"""Time slices: how a run's throughput, latency and engine state moved, window by window.

Windows of ``width`` seconds from the schedule's time origin (the last one may be
shorter). What each column counts, for every engine:

- from the requests table (the client's view, all engines): ``arrivals`` (intended send
  times), ``completed`` and ``failed`` (at their finish, or arrival when they never
  finished), ``prompt_tokens`` of the completed ones, ``output_tokens`` generated in the
  window (each token at its own time where the engine streamed them; otherwise the first
  token at ``first_token_time`` and the rest spread evenly up to the finish), throughputs,
  latency percentiles of the requests completed in the window, and ``in_flight_mean``;
- from the steps table: ``running_mean``, ``waiting_mean`` and ``kv_usage_mean``
  (fraction of the KV blocks) averaged over the time the engine was observed in the
  window, ``kv_usage_max``, ``preemptions`` and ``engine_tokens`` (tokens computed). The
  simulator and the vLLM engine have a row per iteration holding over its duration, so
  their means are over the time the engine was stepping (the mean batch while busy) and
  ``busy`` is that time's share of the window (the time average is mean x busy; vLLM's
  gaps between iterations are the driver's own work, not idleness, so they are left out
  rather than counted as zero); an OpenAI-compatible server has ``/metrics`` samples,
  each holding until the next (``busy`` is then unknown).

Counts and tokens add up over the slices to the run's totals (num_requests, num_completed,
total_prompt_tokens, total_generated_tokens, preemptions).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workload_eval.contracts import RunRecords
from workload_eval.errors import UserError
from workload_eval.metrics import completed, request_metrics

SLICE_SECONDS = 10.0  # the default window
SLICES_FILE = "slices.parquet"
LATENCY_COLUMNS: dict[str, tuple[str, tuple[int, ...]]] = {
    "ttft": ("ttft", (50, 95, 99)),
    "tpot": ("tpot", (50, 95)),
    "e2e_latency": ("e2e_latency", (50, 95, 99)),
    "normalized_latency": ("normalized_latency", (95,)),
}


def _ramp_sum(events: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """sum over events e <= T of w (T - e), at every edge T (sorted cumulative sums)."""
    order = np.argsort(events, kind="stable")
    ev, w = events[order], weights[order]
    cw = np.concatenate(([0.0], np.cumsum(w)))
    cwe = np.concatenate(([0.0], np.cumsum(w * ev)))
    k = np.searchsorted(ev, edges, side="right")
    return cw[k] * edges - cwe[k]


def _spread(starts: np.ndarray, ends: np.ndarray, amounts: np.ndarray, edges: np.ndarray):
    """Per window, the part of each amount spread evenly over its [start, end] (an empty
    interval puts it all at its start)."""
    span = ends - starts
    point = ~(span > 0)
    out = np.zeros(len(edges) - 1)
    if point.any():
        out += _count(starts[point], edges, amounts[point])
    if (~point).any():
        rate = amounts[~point] / span[~point]
        area = _ramp_sum(starts[~point], rate, edges) - _ramp_sum(ends[~point], rate, edges)
        out += np.diff(area)
    return out


def _count(times: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None):
    """Per window, the events (or their weights); the run's end falls in the last window."""
    idx = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, weights=weights, minlength=len(edges) - 1)[: len(edges) - 1]


def _held(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Per window, the integral of a value held over each [start, end]."""
    keep = np.isfinite(values) & (ends > starts)
    s, e, v = starts[keep], ends[keep], values[keep]
    return np.diff(_ramp_sum(s, v, edges) - _ramp_sum(e, v, edges))


def _token_counts(done: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    gen = done["generated_tokens"].to_numpy(dtype=float)
    first = done["first_token_time"].to_numpy(dtype=float)
    finish = done["finish_time"].to_numpy(dtype=float)
    exact = np.zeros(len(done), dtype=bool)
    out = np.zeros(len(edges) - 1)
    if "token_times" in done.columns:
        times = done["token_times"].to_list()
        exact = np.array(
            [t is not None and len(t) == g > 0 for t, g in zip(times, gen, strict=True)],
            dtype=bool,
        )
        if exact.any():
            stamps = [np.asarray(times[i], dtype=float) for i in np.flatnonzero(exact)]
            out += _count(np.concatenate(stamps), edges)
    rest = ~exact & (gen > 0)
    first_at = np.where(np.isfinite(first[rest]), first[rest], finish[rest])
    out += _count(first_at, edges)
    out += _spread(first_at, finish[rest], gen[rest] - 1, edges)
    return out


def _latencies(done: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    per = request_metrics(done)
    per["slice"] = np.clip(
        np.searchsorted(edges, done["finish_time"].to_numpy(dtype=float), side="right") - 1,
        0,
        len(edges) - 2,
    )
    cols: dict[str, pd.Series] = {}
    grouped = per.groupby("slice")
    for name, (column, pcts) in LATENCY_COLUMNS.items():
        if name != "normalized_latency":
            cols[f"{name}_mean"] = grouped[column].mean()
        for p in pcts:
            cols[f"{name}_p{p}"] = grouped[column].quantile(p / 100)
    return pd.DataFrame(cols).reindex(range(len(edges) - 1))


def _engine(steps: pd.DataFrame, edges: np.ndarray, end: float) -> dict[str, np.ndarray]:
    n = len(edges) - 1
    nan = np.full(n, math.nan)
    if steps.empty:
        return {k: nan for k in ("running_mean", "waiting_mean", "kv_usage_mean", "busy")}
    s = steps.sort_values("time", kind="stable")
    t = s["time"].to_numpy(dtype=float)
    dur = s["duration"].to_numpy(dtype=float)
    sampled = ~np.isfinite(dur)  # /metrics samples hold until the next one
    nxt = np.append(t[1:], end)
    ends = np.where(sampled, np.maximum(nxt, t), t + np.nan_to_num(dur))
    width = np.diff(edges)
    covered = _held(t, ends, np.ones(len(t)), edges)
    total = s["kv_blocks_total"].to_numpy(dtype=float)
    usage = s["kv_blocks_used"].to_numpy(dtype=float) / np.where(total > 0, total, np.nan)
    seen = np.where(covered > 0, covered, math.nan)  # never observed: unknown
    return {
        "running_mean": _held(t, ends, s["num_running"].to_numpy(dtype=float), edges) / seen,
        "waiting_mean": _held(t, ends, s["num_waiting"].to_numpy(dtype=float), edges) / seen,
        "kv_usage_mean": _held(t, ends, usage, edges) / seen,
        "busy": nan if sampled.all() else covered / width,
    }


def check_width(width: float, *, option: str = "--slice-seconds") -> float:
    """A slice width: a positive, finite number of seconds (else a one-line UserError)."""
    if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
        raise UserError(f"{option} {width!r}: expected a positive number of seconds, e.g. 10")
    return float(width)


def time_slices(records: RunRecords, width: float = SLICE_SECONDS) -> pd.DataFrame:
    """The run in windows of ``width`` seconds (see the module doc for every column)."""
    width = check_width(width)
    req, steps = records.requests, records.steps
    done = completed(req)
    finish = req["finish_time"].to_numpy(dtype=float)
    arrival = req["arrival_time"].to_numpy(dtype=float)
    step_end = (steps["time"] + steps["duration"].fillna(0)).max() if len(steps) else 0.0
    end = float(np.nanmax([0.0, *finish, *arrival, step_end]))
    count = max(1, math.ceil(end / width - 1e-9))
    edges = np.arange(count + 1) * width
    if end > edges[-2]:  # the last window ends with the run
        edges[-1] = end
    seconds = np.diff(edges)

    failed = req["status"].to_numpy() != "ok"
    fail_at = np.where(np.isfinite(finish), finish, arrival)[failed]
    done_finish = done["finish_time"].to_numpy(dtype=float)
    output = _token_counts(done, edges)
    table = pd.DataFrame(
        {
            "slice": np.arange(count),
            "start": edges[:-1],
            "end": edges[1:],
            "arrivals": _count(arrival[np.isfinite(arrival)], edges).astype(int),
            "completed": _count(done_finish, edges).astype(int),
            "failed": _count(fail_at, edges).astype(int),
            "prompt_tokens": _count(
                done_finish, edges, done["prompt_tokens"].to_numpy(dtype=float)
            ).astype(int),
            "output_tokens": output,
        }
    )
    table["request_throughput"] = table["completed"] / seconds
    table["output_token_throughput"] = output / seconds
    known = np.isfinite(finish) & np.isfinite(arrival)
    in_system = _held(arrival[known], finish[known], np.ones(int(known.sum())), edges)
    table["in_flight_mean"] = in_system / seconds
    table = pd.concat([table, _latencies(done, edges)], axis=1)
    for key, values in _engine(steps, edges, end).items():
        table[key] = values
    table["kv_usage_max"] = _kv_max(steps, edges)
    table["preemptions"] = _preemptions(records, edges)
    tokens = steps["batched_tokens"].to_numpy(dtype=float) if len(steps) else np.empty(0)
    if len(steps) and np.isfinite(tokens).any():
        t = steps["time"].to_numpy(dtype=float)
        dur = np.nan_to_num(steps["duration"].to_numpy(dtype=float))
        keep = np.isfinite(tokens)
        table["engine_tokens"] = _spread(t[keep], t[keep] + dur[keep], tokens[keep], edges)
    else:
        table["engine_tokens"] = math.nan
    return table


def _kv_max(steps: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    """Highest KV use of the rows that start in each window."""
    out = np.full(len(edges) - 1, math.nan)
    if steps.empty:
        return out
    total = steps["kv_blocks_total"].to_numpy(dtype=float)
    usage = steps["kv_blocks_used"].to_numpy(dtype=float) / np.where(total > 0, total, np.nan)
    idx = np.clip(
        np.searchsorted(edges, steps["time"].to_numpy(dtype=float), side="right") - 1,
        0,
        len(edges) - 2,
    )
    series = pd.Series(usage).groupby(idx).max()
    out[series.index.to_numpy()] = series.to_numpy()
    return out


def _preemptions(records: RunRecords, edges: np.ndarray) -> np.ndarray:
    """Where the engine reports them per step, by step time; otherwise each request's
    count at its finish (metrics.total_preemptions' rule, so the slices add up to it)."""
    steps, req = records.steps, records.requests
    if "num_preempted" in steps and steps["num_preempted"].notna().any():
        s = steps[steps["num_preempted"].notna()]
        return _count(s["time"].to_numpy(dtype=float), edges, s["num_preempted"].to_numpy(float))
    finish = req["finish_time"].to_numpy(dtype=float)
    at = np.where(np.isfinite(finish), finish, req["arrival_time"].to_numpy(dtype=float))
    counts = req["num_preemptions"].fillna(0).to_numpy(dtype=float)
    return _count(at, edges, counts)


def slice_summary(slices: pd.DataFrame, width: float) -> dict[str, float | int | None]:
    """``slices.*`` keys of summary.json: how steady the run looked window by window."""

    def stat(column: str, fn: str) -> float | None:
        v = slices[column].dropna() if column in slices else pd.Series(dtype=float)
        return float(getattr(v, fn)()) if len(v) else None

    full = slices[(slices["end"] - slices["start"]) >= width - 1e-9]  # the last may be short
    thr = full["request_throughput"] if len(full) else slices["request_throughput"]
    return {
        "slices.width_s": width,
        "slices.count": len(slices),
        "slices.full_count": len(full),
        "slices.request_throughput_min": float(thr.min()) if len(thr) else None,
        "slices.request_throughput_max": float(thr.max()) if len(thr) else None,
        "slices.ttft_p95_max": stat("ttft_p95", "max"),
        "slices.e2e_latency_p95_max": stat("e2e_latency_p95", "max"),
        "slices.kv_usage_max": stat("kv_usage_max", "max"),
    }


__all__ = ["SLICES_FILE", "SLICE_SECONDS", "check_width", "slice_summary", "time_slices"]
