"""A run's requests as plain numpy columns, pulled out of the requests table once.

Why: a summary computes ~200 numbers from the same few columns, over the whole run and
over its steady window. Done on the DataFrame, pandas' per-operation overhead (boolean
indexing of a 16-column table with object columns, a Series per step) cost more than the
arithmetic. The latencies below use the very formulas of metrics.py's Series functions
(float64, element by element), so every value is the same to the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from itertools import chain

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RequestColumns:
    """The columns of ``REQUEST_COLUMNS`` that metrics read, one row per request."""

    arrival: np.ndarray  # float64: intended arrival
    send: np.ndarray
    first_token: np.ndarray
    finish: np.ndarray
    generated: np.ndarray  # generated tokens as float64 (the latency formulas' dtype)
    prompt_tokens: np.ndarray  # as stored (int64, or float64 with NaN): for sums
    generated_tokens: np.ndarray
    ok: np.ndarray  # bool: status == "ok" (completed)
    token_times: np.ndarray  # object: each request's streamed token times (may be empty)
    token_counts: np.ndarray  # intp: how many token times each request has

    @classmethod
    def of(cls, requests: pd.DataFrame) -> RequestColumns:
        def col(name: str) -> np.ndarray:
            return requests[name].to_numpy(dtype=float)

        def count(name: str) -> np.ndarray:
            c = requests[name]
            plain = isinstance(c.dtype, np.dtype) and c.dtype.kind in "iuf"
            return c.to_numpy() if plain else c.to_numpy(dtype=float, na_value=np.nan)

        if "token_times" in requests.columns:
            times = requests["token_times"].to_numpy(dtype=object)
        else:
            times = np.full(len(requests), None, dtype=object)
        generated = count("generated_tokens")
        return cls(
            arrival=col("arrival_time"),
            send=col("send_time"),
            first_token=col("first_token_time"),
            finish=col("finish_time"),
            generated=generated.astype(float),
            prompt_tokens=count("prompt_tokens"),
            generated_tokens=generated,
            ok=(requests["status"] == "ok").to_numpy(dtype=bool),
            token_times=times,
            token_counts=_lengths(times),
        )

    def __len__(self) -> int:
        return len(self.arrival)

    def take(self, rows: np.ndarray) -> RequestColumns:
        """The rows a boolean mask or integer positions select, in that order."""
        return RequestColumns(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def e2e_latency(self) -> np.ndarray:
        return self.finish - self.arrival

    def ttft(self) -> np.ndarray:
        return self.first_token - self.arrival

    def tpot(self) -> np.ndarray:
        return tpot_of(self.e2e_latency(), self.ttft(), self.generated)

    def normalized_latency(self) -> np.ndarray:
        return normalized_of(self.e2e_latency(), self.generated)

    def send_lag(self) -> np.ndarray:
        return self.send - self.arrival

    def inter_token_latencies(self) -> np.ndarray:
        return token_gaps(self.token_times, self.token_counts)


def tpot_of(e2e: np.ndarray, ttft: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """Time per output token after the first, (e2e - ttft) / (generated - 1); NaN below 2
    tokens. The one definition: metrics.tpot, the summary and the time slices use it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per = (e2e - ttft) / (generated - 1)
    return np.where(generated > 1, per, np.nan)


def normalized_of(e2e: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """The seed's normalized latency, e2e / generated tokens (s/token); NaN with none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per = e2e / generated
    return np.where(generated > 0, per, np.nan)


def token_gaps(token_times: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Gaps between consecutive streamed tokens, pooled over requests in row order; empty if
    none streams. One ``np.diff`` over all token times, less the gaps across two requests:
    the same subtractions as a diff per request, without a numpy call per request."""
    counts = _lengths(token_times) if counts is None else counts
    streamed = counts > 1
    kept = counts[streamed]
    if not kept.size:
        return np.empty(0)
    flat = chain.from_iterable(token_times[streamed])
    times = np.fromiter(flat, dtype=float, count=int(kept.sum()))
    return np.delete(np.diff(times), np.cumsum(kept)[:-1] - 1)


def _lengths(token_times: np.ndarray) -> np.ndarray:
    """Token times per request (None: 0); ``map(len)`` runs in C unless a row is None."""
    try:
        return np.fromiter(map(len, token_times), dtype=np.intp, count=len(token_times))
    except TypeError:
        counts = [0 if t is None else len(t) for t in token_times]
        return np.asarray(counts, dtype=np.intp)


def pandas_sum(values: np.ndarray) -> float:
    """``Series.sum``'s value: NaN counts as 0 (pandas fills, then sums in place, which can
    differ in the last bit from summing the values without the NaN)."""
    if values.dtype.kind == "f":
        return float(np.where(np.isnan(values), 0.0, values).sum())
    return float(values.sum())


def pandas_mean(values: np.ndarray) -> float:
    """``Series.mean``'s value: the :func:`pandas_sum` over the non-NaN count; NaN if none."""
    count = len(values) - int(np.count_nonzero(np.isnan(values)))
    return pandas_sum(values) / count if count else math.nan


__all__ = [
    "RequestColumns",
    "normalized_of",
    "pandas_mean",
    "pandas_sum",
    "token_gaps",
    "tpot_of",
]
