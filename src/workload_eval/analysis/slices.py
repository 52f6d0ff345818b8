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

from workload_eval.analysis.windows import (
    SlotRows,
    SortedColumn,
    Subset,
    ascending,
    count,
    group_quantiles,
    held,
    slots,
    slots_of_sorted,
    spread,
    stable_argsort,
    subset,
)
from workload_eval.contracts import RunRecords
from workload_eval.errors import UserError
from workload_eval.request_columns import normalized_of, tpot_of

SLICE_SECONDS = 10.0  # the default window
SLICES_FILE = "slices.parquet"
LATENCY_COLUMNS: dict[str, tuple[str, tuple[int, ...]]] = {
    "ttft": ("ttft", (50, 95, 99)),
    "tpot": ("tpot", (50, 95)),
    "e2e_latency": ("e2e_latency", (50, 95, 99)),
    "normalized_latency": ("normalized_latency", (95,)),
}


def _none_streamed(times: list[object]) -> bool:
    """True when no request has token times. The simulator shares one empty tuple, which
    ``list.count`` matches by identity at C speed (the per-row check costs ~2 ms on 16k
    rows); arrays read back from Parquet do not compare with () and take the per-row check."""
    try:
        return times.count(()) == len(times)
    except ValueError:
        return False


def _token_counts(
    gen: np.ndarray,
    first: np.ndarray,
    finish: np.ndarray,
    times: list[object] | None,
    edges: np.ndarray,
    finish_from: Subset,
) -> np.ndarray:
    """Output tokens per window of the completed requests (see the module doc)."""
    exact = np.zeros(len(gen), dtype=bool)
    out = np.zeros(len(edges) - 1)
    if times is not None and not _none_streamed(times):
        exact = np.array(
            [t is not None and len(t) == g > 0 for t, g in zip(times, gen, strict=True)],
            dtype=bool,
        )
        if exact.any():
            stamps = [np.asarray(times[i], dtype=float) for i in np.flatnonzero(exact)]
            out += count(np.concatenate(stamps), edges)
    rest = ~exact & (gen > 0)
    first_at = np.where(np.isfinite(first[rest]), first[rest], finish[rest])
    out += count(first_at, edges)
    out += spread(first_at, finish[rest], gen[rest] - 1, edges, subset(finish_from, rest))
    return out


def _latencies(
    arrival: np.ndarray, first: np.ndarray, finish: np.ndarray, gen: np.ndarray, slot, n: int
) -> dict[str, np.ndarray]:
    """Latency columns of the requests completed in each window (``slot``: their finish's);
    metrics.request_metrics' formulas. The means stay pandas' groupby mean: its sum is
    compensated (Kahan) or pairwise depending on the column, which numpy has no match for."""
    e2e = finish - arrival
    ttft = first - arrival
    per = {
        "ttft": ttft,
        "tpot": tpot_of(e2e, ttft, gen),
        "e2e_latency": e2e,
        "normalized_latency": normalized_of(e2e, gen),
    }
    # Column by column, as pandas picks its summation per column (NaN, sorted slots). By
    # a column's name: pandas looks an array key up as a column name first, and the
    # failed lookup's message prints the whole array (~3 ms at 1000 rows).
    grouped = pd.DataFrame({**per, "slice": slot}).groupby("slice")
    rows = SlotRows(slot, n)
    cols: dict[str, np.ndarray] = {}
    for name, (column, pcts) in LATENCY_COLUMNS.items():
        if name != "normalized_latency":
            mean = grouped[column].mean()
            cols[f"{name}_mean"] = np.full(n, math.nan)
            cols[f"{name}_mean"][mean.index.to_numpy()] = mean.to_numpy()
        got = group_quantiles(per[column], rows, tuple(p / 100 for p in pcts))
        for p, values in zip(pcts, got, strict=True):
            cols[f"{name}_p{p}"] = values
    return cols


def _engine(
    t: np.ndarray, dur: np.ndarray, steps: pd.DataFrame, usage: np.ndarray, edges, end: float
) -> dict[str, np.ndarray]:
    n = len(edges) - 1
    nan = np.full(n, math.nan)
    if not len(t):
        return {k: nan for k in ("running_mean", "waiting_mean", "kv_usage_mean", "busy")}
    # pandas' stable sort by time (NaN last); engines write their rows in time order
    order = None if ascending(t) else stable_argsort(t)
    pick = (lambda a: a) if order is None else (lambda a: a[order])
    t, dur, usage = pick(t), pick(dur), pick(usage)
    sampled = ~np.isfinite(dur)  # /metrics samples hold until the next one
    if sampled.any():
        ends = np.where(sampled, np.maximum(np.append(t[1:], end), t), t + np.nan_to_num(dur))
    else:
        ends = t + dur
    width = np.diff(edges)
    running = pick(steps["num_running"].to_numpy(dtype=float))
    waiting = pick(steps["num_waiting"].to_numpy(dtype=float))
    covered, *integrals = held(t, ends, edges, None, running, waiting, usage)
    seen = np.where(covered > 0, covered, math.nan)  # never observed: unknown
    return {
        "running_mean": integrals[0] / seen,
        "waiting_mean": integrals[1] / seen,
        "kv_usage_mean": integrals[2] / seen,
        "busy": nan if sampled.all() else covered / width,
    }


def check_width(width: float, *, option: str = "--slice-seconds") -> float:
    """A slice width: a positive, finite number of seconds (else a one-line UserError)."""
    if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
        raise UserError(f"{option} {width!r}: expected a positive number of seconds, e.g. 10")
    return float(width)


def _completed(status: pd.Series) -> np.ndarray:
    """status == "ok" as a numpy mask (missing: not ok). The array's own comparison: the
    Series' wraps the same answer in ~0.1 ms of pandas."""
    same = status.array == "ok"
    return same if isinstance(same, np.ndarray) else same.to_numpy(dtype=bool, na_value=False)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats; none from a table without rows (it may lack the columns)."""
    return frame[name].to_numpy(dtype=float) if len(frame) else np.empty(0)


def time_slices(records: RunRecords, width: float = SLICE_SECONDS) -> pd.DataFrame:
    """The run in windows of ``width`` seconds (see the module doc for every column).

    Works on numpy columns read once (the frames' own indexing and groupby cost more than
    the arithmetic: this runs for every point of a study)."""
    width = check_width(width)
    req, steps = records.requests, records.steps
    finish, arrival = _column(req, "finish_time"), _column(req, "arrival_time")
    ok = _completed(req["status"])
    t, dur = _column(steps, "time"), _column(steps, "duration")
    step_end = t + np.where(np.isnan(dur), 0.0, dur)
    # the largest time seen, NaN left out (fmax skips NaN)
    end = max(float(np.fmax.reduce(v, initial=0.0)) for v in (finish, arrival, step_end))
    windows = max(1, math.ceil(end / width - 1e-9))
    edges = np.arange(windows + 1) * width
    if end > edges[-2]:  # the last window ends with the run
        edges[-1] = end
    seconds = np.diff(edges)

    fail_at = np.where(np.isfinite(finish), finish, arrival)[~ok]
    done = (lambda a: a) if ok.all() else (lambda a: a[ok])  # the completed requests' rows
    done_finish, done_arrival = done(finish), done(arrival)
    done_first = done(_column(req, "first_token_time"))
    done_gen = done(_column(req, "generated_tokens"))
    times = done(req["token_times"].to_numpy()).tolist() if "token_times" in req else None
    by_finish = SortedColumn(finish)  # for the completed and the in-flight requests alike
    output = _token_counts(
        done_gen, done_first, done_finish, times, edges, (by_finish, np.flatnonzero(ok))
    )
    finish_slot = np.empty(len(finish), dtype=np.intp)
    finish_slot[by_finish.order] = slots_of_sorted(finish[by_finish.order], edges)
    done_slot = done(finish_slot)
    completed = np.bincount(done_slot, minlength=windows).astype(int)
    known = np.isfinite(finish) & np.isfinite(arrival)
    (in_system,) = held(
        arrival[known],
        finish[known],
        edges,
        None,
        ends_from=(by_finish, np.flatnonzero(known)),
    )
    total = _column(steps, "kv_blocks_total")
    usage = _column(steps, "kv_blocks_used") / np.where(total > 0, total, np.nan)
    step_slot = slots_of_sorted(t, edges) if ascending(t) else slots(t, edges)
    table = {
        "slice": np.arange(windows),
        "start": edges[:-1],
        "end": edges[1:],
        "arrivals": count(arrival[np.isfinite(arrival)], edges).astype(int),
        "completed": completed,
        "failed": count(fail_at, edges).astype(int),
        "prompt_tokens": np.bincount(
            done_slot, done(_column(req, "prompt_tokens")), minlength=windows
        ).astype(int),
        "output_tokens": output,
        "request_throughput": completed / seconds,
        "output_token_throughput": output / seconds,
        "in_flight_mean": in_system / seconds,
        **_latencies(done_arrival, done_first, done_finish, done_gen, done_slot, windows),
        **_engine(t, dur, steps, usage, edges, end),
        "kv_usage_max": _kv_max(step_slot, usage, windows),
        "preemptions": _preemptions(records, step_slot, finish, arrival, edges),
    }
    tokens = _column(steps, "batched_tokens")
    keep = np.isfinite(tokens)
    if keep.all() and len(tokens):
        table["engine_tokens"] = spread(t, t + np.nan_to_num(dur), tokens, edges)
    elif keep.any():
        d = np.nan_to_num(dur)
        table["engine_tokens"] = spread(t[keep], t[keep] + d[keep], tokens[keep], edges)
    else:
        table["engine_tokens"] = np.full(windows, math.nan)
    return pd.DataFrame(table)


def _kv_max(idx: np.ndarray, usage: np.ndarray, n: int) -> np.ndarray:
    """Highest KV use of the rows that start in each window (NaN where none is known)."""
    if ascending(idx):  # rows in time order: a window's rows are one run
        size = np.bincount(idx, minlength=n)
        out = np.full(n, math.nan)
        seen = size > 0
        out[seen] = np.fmax.reduceat(usage, (np.cumsum(size) - size)[seen])  # NaN left out
        return out
    known = ~np.isnan(usage)
    out = np.full(n, -np.inf)
    np.maximum.at(out, idx[known], usage[known])
    return np.where(np.bincount(idx[known], minlength=n) > 0, out, math.nan)


def _preemptions(
    records: RunRecords, step_slot: np.ndarray, finish: np.ndarray, arrival: np.ndarray, edges
) -> np.ndarray:
    """Where the engine reports them per step, by step time; otherwise each request's
    count at its finish (metrics.total_preemptions' rule, so the slices add up to it)."""
    steps, req = records.steps, records.requests
    if "num_preempted" in steps:
        per_step = _column(steps, "num_preempted")
        known = ~np.isnan(per_step)
        if known.any():
            return np.bincount(step_slot[known], per_step[known], minlength=len(edges) - 1)
    at = np.where(np.isfinite(finish), finish, arrival)
    counts = np.nan_to_num(_column(req, "num_preemptions"), nan=0.0)
    return count(at, edges, counts)


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
