"""Lengths-only files as workloads: token counts per request, optionally arrivals and sharing.

Formats, recognised by their columns (CSV, JSONL, JSON, Parquet, optionally gzipped):

- ``workload-eval``: ``prompt_len,output_len`` and optionally ``arrival_s`` (or
  ``arrival_time``), ``session_id``, ``turn``, ``prefix_group`` + ``prefix_len``,
  ``prompt_id``, ``think_time``. What ``workloads export`` writes, and the trace CSV of
  ``workload-eval-measured/1`` (``arrival_s,prompt_len,output_len``).
- ``azure``: Azure LLM inference traces (``TIMESTAMP,ContextTokens,GeneratedTokens``).
- ``mooncake``: Mooncake traces (``timestamp`` in ms, ``input_length``, ``output_length``,
  ``hash_ids``).
- ``vidur``: Vidur's processed traces (``num_prefill_tokens,num_decode_tokens``, optionally
  ``arrived_at`` in s), e.g. ``../shared/datasets/extra/arxiv_summarization_lengths_llama2.csv``.

Rows whose ``prompt_len`` and ``output_len`` are both empty are requests that failed in a
measured run (SCHEMA.md: sent, but their lengths were not recorded). They are dropped, and
counted in ``attrs["failed_rows"]`` with a warning: their lengths are unknown, and filling
them in would invent load the file does not describe.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.inputs import loads_json
from workload_eval.workloads.readers import read_table
from workload_eval.workloads.segments import prefix_segments

MAX_TOKENS = 10_000_000


@dataclass(frozen=True)
class TraceFormat:
    """Column names of one trace format; ``arrival_unit_s`` None means date-time strings."""

    name: str
    prompt: str
    output: str
    arrivals: tuple[str, ...]
    arrival_unit_s: float | None
    hash_ids: str | None = None


TRACE_FORMATS = (
    TraceFormat("workload-eval", "prompt_len", "output_len", ("arrival_s", "arrival_time"), 1.0),
    TraceFormat("azure", "ContextTokens", "GeneratedTokens", ("TIMESTAMP",), None),
    TraceFormat("mooncake", "input_length", "output_length", ("timestamp",), 1e-3, "hash_ids"),
    TraceFormat("vidur", "num_prefill_tokens", "num_decode_tokens", ("arrived_at",), 1.0),
)
OPTIONAL = ("session_id", "turn", "prefix_group", "prefix_len", "prompt_id", "think_time")


def shown(value: object) -> str:
    """A cell as the user wrote it (numpy scalars as plain numbers)."""
    item = getattr(value, "item", None)
    return repr(item() if callable(item) else value)


def detect_format(columns: list[str]) -> TraceFormat | None:
    """The first format whose prompt and output columns are both present."""
    cols = set(columns)
    for fmt in TRACE_FORMATS:
        if fmt.prompt in cols and fmt.output in cols:
            return fmt
    return None


def _lengths(raw: pd.DataFrame, name: str, where: str, lowest: int) -> np.ndarray:
    v = pd.to_numeric(raw[name], errors="coerce").to_numpy(dtype=float)
    empty = np.isnan(v)
    bad = ~empty & ((v < lowest) | (v != np.floor(v)) | (v > MAX_TOKENS))
    bad |= empty & (raw[name].astype(str).str.strip() != "").to_numpy() & raw[name].notna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{where}: record {row}: {name} = {shown(raw[name].iloc[row])} "
            f"(expected an integer in {lowest}..{MAX_TOKENS})"
        )
    return v


def _arrivals(raw: pd.DataFrame, col: str, unit: float | None, where: str) -> np.ndarray:
    if unit is None:
        t = pd.to_datetime(raw[col], errors="coerce", format="mixed")
        if t.isna().any():
            row = int(np.flatnonzero(t.isna().to_numpy())[0])
            raise UserError(
                f"{where}: record {row}: {col} = {shown(raw[col].iloc[row])} (expected a date-time)"
            )
        return (t - t.min()).dt.total_seconds().to_numpy(dtype=float)
    v = pd.to_numeric(raw[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(v)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{where}: record {row}: {col} = {shown(raw[col].iloc[row])} "
            "(expected seconds, a number)"
        )
    return (v - v.min()) * unit


def _ids(col: pd.Series) -> np.ndarray:
    """Integer ids: integer columns as they are, anything else numbered by first appearance."""
    v = pd.to_numeric(col, errors="coerce")
    if v.notna().all() and (v == np.floor(v)).all():
        return v.to_numpy(dtype=np.int64)
    return pd.factorize(col.astype(str))[0].astype(np.int64)


def lengths_table(raw: pd.DataFrame, fmt: TraceFormat, where: str) -> pd.DataFrame:
    """A validated workload table from a raw table of format ``fmt`` (failed rows dropped)."""
    if raw.empty:
        raise UserError(f"{where}: no records")
    p = _lengths(raw, fmt.prompt, where, lowest=1)
    o = _lengths(raw, fmt.output, where, lowest=0)
    failed = np.isnan(p) & np.isnan(o)
    half = np.isnan(p) ^ np.isnan(o)
    if half.any():
        row = int(np.flatnonzero(half)[0])
        raise UserError(
            f"{where}: record {row}: one of {fmt.prompt}/{fmt.output} is empty (expected both, "
            "or both empty for a failed request)"
        )
    out = pd.DataFrame({"prompt_len": p, "output_len": o})
    arrival = next((c for c in fmt.arrivals if c in raw.columns), None)
    if arrival is not None:
        out["arrival_time"] = _arrivals(raw, arrival, fmt.arrival_unit_s, where)
    if fmt.hash_ids and fmt.hash_ids in raw.columns:
        out["hash_ids"] = [list(map(int, h)) if h is not None else [] for h in raw[fmt.hash_ids]]
    _optional(raw, out, where)
    if "session_id" in out.columns or "prefix_group" in out.columns:
        prefix_segments(out[~failed], where=where)  # histories and prefixes fit, or a UserError
    kept = out[~failed].reset_index(drop=True)
    kept["prompt_len"] = kept["prompt_len"].astype(np.int64)
    kept["output_len"] = kept["output_len"].astype(np.int64)
    kept.attrs["failed_rows"] = int(failed.sum())
    kept.attrs["format"] = fmt.name
    if failed.any():
        warnings.warn(
            f"{where}: {int(failed.sum())} of {len(out)} rows have empty lengths (failed "
            "requests) and are left out",
            stacklevel=3,
        )
    if kept.empty:
        raise UserError(f"{where}: no request with known lengths")
    return kept


def _optional(raw: pd.DataFrame, out: pd.DataFrame, where: str) -> None:
    """Copy the optional structure columns, validated."""
    if "session_id" in raw.columns:
        out["session_id"] = _ids(raw["session_id"])
        if "turn" in raw.columns:
            out["turn"] = _lengths(raw, "turn", where, lowest=0).astype(np.int64)
        else:
            out["turn"] = out.groupby("session_id").cumcount().to_numpy()
    if "prefix_group" in raw.columns:
        if "prefix_len" not in raw.columns:
            raise UserError(f"{where}: column 'prefix_group' needs a 'prefix_len' column too")
        out["prefix_group"] = raw["prefix_group"].astype(str).to_numpy()
        out["prefix_len"] = _lengths(raw, "prefix_len", where, lowest=0).astype(np.int64)
    if "prompt_id" in raw.columns:
        out["prompt_id"] = raw["prompt_id"].astype(str).to_numpy()
    if "think_time" in raw.columns:
        t = pd.to_numeric(raw["think_time"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        if (t < 0).any() or not np.isfinite(t).all():
            row = int(np.flatnonzero((t < 0) | ~np.isfinite(t))[0])
            raise UserError(f"{where}: record {row}: think_time (expected seconds >= 0)")
        out["think_time"] = t


PEEK_BYTES = 1 << 20  # enough for any first record; a line longer than this is not a trace


def peek_format(path: Path) -> TraceFormat | None:
    """The file's trace format from its columns, or None (a text dataset, or unreadable)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return detect_format(list(pq.read_schema(path).names))
        if path.name.lower().endswith((".csv", ".csv.gz")):
            return detect_format(list(pd.read_csv(path, nrows=0).columns))
    except Exception:
        return None
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):  # the first record's keys (from 1 MiB at most)
        try:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                head = f.read(PEEK_BYTES)
            line = next((ln for ln in head.split(b"\n") if ln.strip()), b"")
            first = loads_json(line.decode("utf-8"), path) if line else None
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, UserError):
            return None
        return detect_format(list(first)) if isinstance(first, dict) else None
    if name.endswith((".json", ".json.gz")) and path.stat().st_size < (64 << 20):
        try:
            return detect_format(list(read_table(path).columns))
        except UserError:
            return None
    return None


def read_lengths_file(path: str | Path) -> pd.DataFrame:
    """A lengths-only file as a workload table (see the module docstring for the formats)."""
    path = Path(path)
    raw = read_table(path)
    fmt = detect_format(list(raw.columns))
    if fmt is None:
        found = ", ".join(map(str, raw.columns[:12])) or "none"
        raise UserError(
            f"{path}: missing fields 'prompt_len' and 'output_len' (found fields: {found}); "
            "expected a lengths file (prompt_len,output_len[,arrival_s,...]) or a trace "
            "(Azure, Mooncake, Vidur)"
        )
    return lengths_table(raw, fmt, str(path))
