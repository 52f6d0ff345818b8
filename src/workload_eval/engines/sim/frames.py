"""The simulator's tables as the contract's DataFrames (REQUEST_COLUMNS, STEP_COLUMNS),
built column by column from the loop's lists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, ScheduledRequest
from workload_eval.engines.sim.sequence import STEP_FIELDS, RequestTable, StepLog
from workload_eval.models import ModelSpec


def request_frame(items: list[ScheduledRequest], table: RequestTable) -> pd.DataFrame:
    n = len(items)
    reqs = [it.request for it in items]
    arrival = np.asarray(table.arrival, dtype=float)
    finish = np.asarray(table.finish, dtype=float)
    status = table.status
    # ignored/failed requests were dropped, not finished (their time only releases a session)
    if status.count("ok") != n:
        finish[np.asarray(status, dtype=object) != "ok"] = np.nan
    tt = table.token_times
    sessions = [r.session_id for r in reqs]
    frame = pd.DataFrame(
        {
            "request_id": np.asarray([r.request_id for r in reqs], dtype=np.int64),
            "workload": _str_column([r.workload for r in reqs]),
            "session_id": (
                pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
                if sessions.count(None) == n  # no sessions: skip the per-value conversion
                else pd.array(sessions, dtype="Int64")
            ),
            "turn": np.asarray([r.turn for r in reqs], dtype=np.int64),
            "arrival_time": arrival,
            "send_time": arrival,
            "first_token_time": np.asarray(table.first_token, dtype=float),
            "finish_time": finish,
            "prompt_tokens": np.asarray(table.prompt_len, dtype=np.int64),
            "generated_tokens": np.asarray(table.generated, dtype=np.int64),
            "expected_output_tokens": np.asarray(table.expected, dtype=np.int64),
            "num_preemptions": np.asarray(table.preemptions, dtype=np.int64),
            "status": _str_column(status),
            "error": _str_column(table.error),
            "token_times": tt if tt is not None else _empty_tuples(n),  # shared, immutable
            "prompt_digest": "",
        }
    )
    if tuple(frame.columns) != REQUEST_COLUMNS:  # built in contract order; reindex otherwise
        frame = frame[list(REQUEST_COLUMNS)]
    return frame


def prompt_digests(items: list[ScheduledRequest], model: ModelSpec, seed: int) -> list[str]:
    """What a real engine would be sent for each request (the one synthesizer's ids)."""
    from workload_eval.workloads.synthesizer import PromptSynthesizer, Vocab, prompt_digest

    synth = PromptSynthesizer(Vocab.for_model(model), seed)
    return [prompt_digest(synth.prompt_ids(it.request)) for it in items]


def _str_column(values: list[str]) -> pd.api.extensions.ExtensionArray | list[str]:
    """A string column; one value repeated (the usual status, error, workload) is a take of
    one element, not n conversions."""
    if values and values.count(values[0]) == len(values):
        return pd.array(values[:1], dtype="str").take(np.zeros(len(values), dtype=np.intp))
    return values


def _empty_tuples(n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out.fill(())
    return out


_KINDS = ["prefill", "decode", "mixed"]
_KIND_CODE = {kind: code for code, kind in enumerate(_KINDS)}


def step_frame(log: StepLog) -> pd.DataFrame:
    rows = log.rows
    n = len(rows)
    cols = dict(zip(STEP_FIELDS, zip(*rows, strict=True), strict=True)) if n else {}

    def ints(name: str) -> np.ndarray:
        return np.fromiter(cols.get(name, ()), dtype=np.int64, count=n)

    codes = np.fromiter(map(_KIND_CODE.__getitem__, cols.get("kind", ())), np.int8, count=n)
    frame: dict[str, Any] = {
        "time": np.fromiter(cols.get("time", ()), dtype=float, count=n),
        "duration": np.fromiter(cols.get("duration", ()), dtype=float, count=n),
        "kind": pd.Categorical.from_codes(codes, categories=_KINDS),
        "batched_tokens": ints("batched_tokens"),
        "num_running": ints("num_running"),
        "num_waiting": ints("num_waiting"),
        "num_preempted": ints("num_preempted"),
        "kv_blocks_used": ints("kv_blocks_used"),
        "kv_blocks_total": np.full(n, log.kv_blocks_total, dtype=np.int64),
        "logical_tokens": ints("logical_tokens"),
        "physical_tokens": ints("physical_tokens"),
        "num_steps": ints("num_steps"),
    }
    steps = pd.DataFrame(frame)
    return steps if tuple(frame) == STEP_COLUMNS else steps[list(STEP_COLUMNS)]
