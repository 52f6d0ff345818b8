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


def output_segment_key(request_id: int) -> str:
    """The segment key of a request's generated tokens, for the prompts that repeat them.

    A follow-up turn whose prompt contains an earlier request's answer lists it as
    ``PromptSegment(output_segment_key(earlier_id), answer_tokens)``; the simulator's prefix
    cache then reuses the KV blocks that request generated.
    """
    return f"#{request_id}>"


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
    """A request with its intended send time (seconds from run start, or from its stage's start).

    A follow-up turn of a session has ``depends_on`` set to the previous turn's id: it is
    sent ``think_time`` seconds after that turn finishes, and not before ``arrival_time``
    (inference-perf's multi-turn users wait for their previous turn and for their slot).
    ``stage`` is the load stage the request belongs to (see ``Schedule.stage_gap_s``).
    """

    request: Request
    arrival_time: float
    depends_on: int | None = None
    think_time: float = 0.0
    stage: int = 0


@dataclass(slots=True)
class Schedule:
    """An arrival schedule: requests ordered by intended arrival time.

    With ``stage_gap_s`` set the schedule runs in load stages, as inference-perf does: an
    item's ``arrival_time`` counts from its stage's start, stage 0 starts at 0 and stage
    k+1 starts ``stage_gap_s`` after every request of stage k has finished (a drain barrier,
    not a fixed offset). Items are then ordered by (stage, arrival_time).
    """

    kind: str
    items: list[ScheduledRequest]
    params: dict[str, Any] = field(default_factory=dict)
    stage_gap_s: float | None = None

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
