"""Typed hand-overs between the stages: workload -> schedule -> engine -> records.

These shapes are the project's stable contracts (see docs/INTERFACES.md); engines, metrics and
reports depend on them, never on each other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

RequestStatus = Literal["ok", "failed", "ignored"]


@dataclass(frozen=True, slots=True)
class PromptSegment:
    """A shared piece of a prompt: every segment with the same ``key`` has identical token ids.

    This is how a workload says what a prefix cache could reuse (a group's system prompt, a
    Mooncake hash block, a session's history) without carrying token ids; the one prompt
    synthesizer turns segments into ids for every engine.
    """

    key: str
    length: int


@dataclass(slots=True)
class Request:
    """One inference request. Without token ids the prompt is synthesized from its length.

    ``prefix_segments`` are the prompt's leading shared parts, in order; the rest of the
    prompt (``prompt_len`` minus their total) is unique to the request.
    """

    request_id: int
    prompt_len: int
    output_len: int
    prompt_token_ids: list[int] | None = None
    workload: str = ""
    session_id: int | None = None
    turn: int = 0
    prefix_hash_ids: tuple[int, ...] = ()
    prompt_text: str | None = None
    prefix_segments: tuple[PromptSegment, ...] = ()


@dataclass(slots=True)
class ScheduledRequest:
    """A request with its intended send time (seconds from run start).

    A follow-up turn of a session has ``depends_on`` set to the previous turn's id: it is
    sent ``think_time`` seconds after that turn finishes, and ``arrival_time`` is ignored.
    """

    request: Request
    arrival_time: float
    depends_on: int | None = None
    think_time: float = 0.0


@dataclass(slots=True)
class Schedule:
    """An arrival schedule: requests ordered by intended arrival time."""

    kind: str
    items: list[ScheduledRequest]
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


# Column names of RunRecords tables (Parquet). One place, so every engine writes the same.
REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id",  # int
    "workload",  # str
    "session_id",  # nullable int
    "turn",  # int
    "arrival_time",  # intended send time, s from run start
    "send_time",  # actual send/admit time, s
    "first_token_time",  # s, NaN if none
    "finish_time",  # s, NaN if not finished
    "prompt_tokens",  # int, as processed by the engine
    "generated_tokens",  # int
    "expected_output_tokens",  # int, from the workload
    "num_preemptions",  # int
    "status",  # "ok" | "failed" | "ignored"
    "error",  # str, "" when ok
    "token_times",  # list[float] of every token time where the engine streams; may be empty
)

STEP_COLUMNS: tuple[str, ...] = (
    "time",  # step start, s
    "duration",  # s
    "kind",  # "prefill" | "decode" | "mixed"
    "batched_tokens",  # tokens computed in the step
    "num_running",
    "num_waiting",
    "num_preempted",  # preemptions that happened in this step
    "kv_blocks_used",
    "kv_blocks_total",
    "logical_tokens",  # tokens held by running sequences
    "physical_tokens",  # tokens the allocated blocks could hold (blocks * block_size)
    "num_steps",  # engine iterations in the row: the sim merges runs of decode steps (k > 1);
    # count steps with it, not with rows (duration, batched_tokens are the run's totals)
)


@dataclass
class RunRecords:
    """What an engine returns: per-request and per-step tables plus the run's configuration."""

    requests: pd.DataFrame
    steps: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
