"""The one points table: every stored run as one row, flattened in one place.

The sweep store's index, the report's tables and figures and its ``summary.csv`` all read
these rows. A row's configuration comes from the typed run record (``runner.RunConfig``:
``spec`` and the engine's ``resolved`` report), its metrics from the summary's scalars.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import JsonValue

from workload_eval.contracts import Cell
from workload_eval.engines.base import ENGINES, parse_options
from workload_eval.errors import UserError
from workload_eval.metrics import Summary
from workload_eval.redaction import scrub_json
from workload_eval.runner import RunConfig, RunSpec, read_summary, run_config

# Configuration columns, in display order; `kv_blocks` is what the engine really had.
CONFIG_COLUMNS: tuple[str, ...] = (
    "engine",
    "model",
    "gpu",
    "kv_blocks",
    "block_size",
    "policy",
    "workload",
    "schedule",
    "num_requests",
    "rate",
    "duration",
    "seed",
)
# Metrics shown first; every other scalar of the summary follows them.
METRIC_COLUMNS: tuple[str, ...] = (
    "request_throughput",
    "token_throughput",
    "output_token_throughput",
    "normalized_latency_mean",
    "normalized_latency_p95",
    "ttft_mean",
    "ttft_p50",
    "ttft_p95",
    "ttft_p99",
    "tpot_mean",
    "tpot_p95",
    "e2e_latency_mean",
    "e2e_latency_p95",
    "num_requests_total",  # the summary's num_requests (num_requests is the schedule's)
    "num_completed",
    "num_failed",
    "duration_s",
    "preemptions",
)
CONFIG_JSON = "config_json"  # the whole run record, canonical JSON (the report shows it)
CONFIG_KEY = "config_key"  # the configuration without the seed (config_key())
# Summary keys that vary from run to run of the same point: never in the table, so a
# resumed sweep writes the same index as an uninterrupted one.
VOLATILE = re.compile(r"(^|[._])(wall|timestamp|started_at|finished_at|hostname|pid)", re.I)
# The other shared knobs of a RunSpec, one column each (spec_columns).
KNOB_COLUMNS: tuple[str, ...] = (
    "gpu_memory_utilization",
    "max_num_batched_tokens",
    "max_num_seqs",
    "max_model_len",
    "n",
    "enable_chunked_prefill",
    "enable_prefix_caching",
    "sampling",
    "source",
    "tokenizer",
    "slo",
)
# Engine options with a column of their own (the simulator's GPU and policy).
_OPTION_COLUMNS = ("gpu", "policy")
# Summary keys that are numbers whatever the engine (metrics.summarize), besides METRIC_COLUMNS.
_NUMERIC_KEYS = frozenset(
    {"num_ignored", "total_prompt_tokens", "total_generated_tokens", "goodput", "slo_attainment"}
)
_DISTRIBUTION = re.compile(r"^(ttft|tpot|itl|e2e_latency|send_lag|normalized_latency)_(mean|p\d+)$")
_SCHEDULE_COLUMNS = ("kind", "num_requests", "rate", "duration")


def canonical_json(obj: JsonValue) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cell(v: JsonValue) -> Cell:
    """A Parquet/CSV-friendly cell: lists and mappings as canonical JSON text."""
    if isinstance(v, list | tuple | dict):
        return canonical_json(v)
    return v


def spec_columns(spec: RunSpec) -> dict[str, Cell]:
    """The configuration columns a RunSpec fixes (before any run: capacity rows use it too)."""
    ec = spec.engine_config
    schedule = spec.schedule.model_dump(mode="json")
    effective = (
        parse_options(spec.engine, ec.options).model_dump(mode="json")
        if spec.engine in ENGINES
        else dict(ec.options)
    )
    row: dict[str, Cell] = {
        "engine": spec.engine,
        "model": ec.model,
        "gpu": cell(effective.get("gpu")),
        "kv_blocks": ec.kv_blocks,
        "block_size": ec.block_size,
        "policy": cell(effective.get("policy")),
        "workload": spec.workload,
        "schedule": schedule["kind"],
        "num_requests": schedule.get("num_requests"),
        "rate": schedule.get("rate"),
        "duration": schedule.get("duration"),
        "seed": spec.seed,
        "gpu_memory_utilization": ec.gpu_memory_utilization,
        "max_num_batched_tokens": ec.max_num_batched_tokens,
        "max_num_seqs": ec.max_num_seqs,
        "max_model_len": ec.max_model_len,
        "n": ec.n,
        "enable_chunked_prefill": ec.enable_chunked_prefill,
        "enable_prefix_caching": ec.enable_prefix_caching,
        "sampling": spec.sampling,
        "source": spec.source,
        "tokenizer": spec.tokenizer,
        "slo": ";".join(str(s) for s in spec.slo) if spec.slo else None,
    }
    row.update(
        {f"schedule.{k}": cell(v) for k, v in schedule.items() if k not in _SCHEDULE_COLUMNS}
    )
    row.update(
        {f"option.{k}": cell(v) for k, v in sorted(ec.options.items()) if k not in _OPTION_COLUMNS}
    )
    return row


def search_columns(spec: RunSpec, resolved_kv_blocks: int | None = None) -> dict[str, Cell]:
    """The configuration columns of a capacity search: a probe's, without its rate and seed
    (``kv_blocks``: what a probe's engine resolved, when the spec sized the KV by memory)."""
    row = spec_columns(spec)
    del row["rate"], row["seed"]
    row.pop("schedule.concurrency", None)  # a closed loop's search chooses its users
    if resolved_kv_blocks is not None:
        row["kv_blocks"] = resolved_kv_blocks
    return row


def config_columns(config: RunConfig) -> dict[str, Cell]:
    """The spec's columns plus what the engine resolved (its KV blocks, its own columns)."""
    row = spec_columns(config.spec)
    resolved = config.resolved
    if resolved.kv_blocks is not None:
        row["kv_blocks"] = resolved.kv_blocks
    row["workload_source"] = resolved.workload.source
    row.update(resolved.columns())
    return row


@functools.lru_cache(maxsize=4096)  # bounded: keys come from files too
def _numeric_metric(key: str) -> bool:
    return key in METRIC_COLUMNS or key in _NUMERIC_KEYS or bool(_DISTRIBUTION.match(key))


@functools.lru_cache(maxsize=4096)  # bounded: keys come from files too
def _volatile(key: str) -> bool:
    """Keys recur across every point of a sweep: each is matched once."""
    return bool(VOLATILE.search(key))


def metric_columns(
    summary: Mapping[str, JsonValue], *, problems: list[str] | None = None
) -> dict[str, Cell]:
    """Every scalar of a summary (lists as JSON text); the configuration and volatile keys out.

    A value that cannot be a measurement (NaN or infinite, or text where a metric is a
    number: a damaged or hand-edited file) is left empty and named in ``problems``."""
    row: dict[str, Cell] = {}
    for k, v in summary.items():
        if k == "config" or isinstance(v, dict) or _volatile(k):
            continue
        bad = (isinstance(v, float) and not math.isfinite(v)) or (
            _numeric_metric(k) and v is not None and (isinstance(v, bool) or not _is_number(v))
        )
        if bad:
            if problems is not None:
                problems.append(f"{k} is {str(v)[:40]!r}, not a number (left empty)")
            v = None
        row["num_requests_total" if k == "num_requests" else k] = cell(v)
    return row


def _is_number(v: object) -> bool:
    return isinstance(v, int | float)


def config_key(spec: RunSpec) -> str:
    """The run's configuration without its seed (and without machine-local paths and
    credentials), hashed: the points of one configuration under several seeds share it
    (analysis.seeds)."""
    data = spec.model_dump(mode="json")
    data.pop("seed", None)
    data["engine_config"].pop("seed", None)
    for name in ("data_dir", "tokenizer_dir"):
        data.pop(name, None)
    return hashlib.sha256(canonical_json(scrub_json(data)).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def point_row(
    summary: Summary, key: str, *, where: Path | None = None, problems: list[str] | None = None
) -> dict[str, Cell]:
    """One row of the points table: ``key`` (the point's id), configuration, metrics."""
    if not isinstance(summary.get("config"), dict):
        raise UserError(f"{where or key}: no run record (config) in it")
    config = run_config(summary, where or Path(key))
    return {
        "key": key,
        CONFIG_KEY: config_key(config.spec),
        **config_columns(config),
        **metric_columns(summary, problems=problems),
        CONFIG_JSON: canonical_json(summary["config"]),
    }


def points(rows: Iterable[Mapping[str, Cell]], *, by_key: bool = False) -> pd.DataFrame:
    """Rows -> the table: key, configuration, metrics, the rest (sorted), config_json.

    Sorted by configuration for reading, or by ``key`` (``by_key``) for byte-stable files.
    """
    df = pd.DataFrame(list(rows))
    for col in ("key", *CONFIG_COLUMNS, *METRIC_COLUMNS, CONFIG_JSON):
        if col not in df:
            df[col] = np.nan
    for col in ("engine", "model", "workload", "schedule"):
        df[col] = df[col].fillna("").astype(str)
    for col in ("kv_blocks", "num_requests", "rate", "duration", *METRIC_COLUMNS):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    head = ["key", *CONFIG_COLUMNS, *METRIC_COLUMNS]
    rest = sorted(c for c in df.columns if c not in head and c != CONFIG_JSON)
    df = df[[*head, *rest, CONFIG_JSON]]
    order = (
        ["key"]
        if by_key
        else ["model", "kv_blocks", "workload", "schedule", "num_requests", "rate", "key"]
    )
    return df.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)


def configuration_names(table: pd.DataFrame) -> list[str]:
    """The columns of a points table that a run's spec sets (not its metrics, not what the
    engine observed): the configuration columns, the knobs, ``schedule.*``, ``option.*``."""
    fixed = set(CONFIG_COLUMNS) | set(KNOB_COLUMNS)
    return [c for c in table.columns if c in fixed or c.startswith(("schedule.", "option."))]


def find_summaries(results_dir: str | Path) -> list[Path]:
    """Every summary.json under the folder (a points store, a run folder, or a tree of runs),
    none inside a hidden folder (a store's ``.tmp-*`` left by a kill -9, ``.git``)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(
            f"{root}: no such results folder (expected a folder written by "
            "`workload-eval sweep`, `run` or `reproduce`)"
        )
    return sorted(
        p
        for p in root.rglob("summary.json")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def load_points(results_dir: str | Path, *, problems: list[str] | None = None) -> pd.DataFrame:
    """One row per stored run under ``results_dir``; ``key`` is its folder relative to it.

    With ``problems`` given, a damaged summary (unreadable, not UTF-8, not JSON, no run
    record) is skipped and named there, and so is a metric that is not a number; without
    it the first damaged summary is the error."""
    root = Path(results_dir)
    rows = []
    for p in find_summaries(root):
        key = str(p.parent.relative_to(root)) or "."
        own: list[str] = []
        try:
            rows.append(point_row(read_summary(p), key, where=p, problems=own))
        except UserError as e:
            if problems is None:
                raise
            problems.append(f"skipped {p}: {str(e).removeprefix(f'{p}: ')}")
        if problems is not None:
            problems += [f"{p}: {m}" for m in own]
    return points(rows)


def offline_points(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["schedule"] == "offline"]


def online_points(table: pd.DataFrame) -> pd.DataFrame:
    """Rate-driven points (any arrival process with a rate)."""
    return table[(table["schedule"] != "offline") & table["rate"].notna()]


__all__ = [
    "CONFIG_COLUMNS",
    "CONFIG_JSON",
    "CONFIG_KEY",
    "KNOB_COLUMNS",
    "METRIC_COLUMNS",
    "canonical_json",
    "config_columns",
    "config_key",
    "configuration_names",
    "find_summaries",
    "load_points",
    "metric_columns",
    "offline_points",
    "online_points",
    "point_row",
    "points",
    "search_columns",
    "spec_columns",
]
