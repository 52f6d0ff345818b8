"""Typed hand-overs between the stages: workload -> schedule -> engine -> records.

These shapes are the project's stable contracts (see docs/INTERFACES.md); engines, metrics and
reports depend on them, never on each other's internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

RequestStatus = Literal["ok", "failed", "ignored"]


@dataclass(frozen=True, slots=True)
class PromptSegment:
    """A shared piece of a prompt: every segment with the same ``key`` has identical token ids.

    This is how a workload says what a prefix cache could reuse (a group's system prompt, a
    Mooncake hash block, a session's history) without carrying token ids; the one prompt
    synthesizer (workloads/synthesizer.py) turns segments into ids for every engine. A key
    names one stream of ids and a segment is its first ``length`` ids, so a shorter segment
    of a key is a prefix of a longer one.
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


@dataclass(frozen=True, slots=True)
class ScheduleGraph:
    """Who is sent when: a root at its ``arrival_time``, a follow-up ``think_time`` after the
    request it depends on finished. Indices are positions in ``Schedule.items``; every engine
    walks this one graph (roots first, then ``children[i]`` when item ``i`` finishes)."""

    roots: tuple[int, ...]  # by arrival time, ties in schedule order
    parents: tuple[int | None, ...]  # per item: the item whose finish releases it
    children: tuple[tuple[int, ...], ...]  # per item: the follow-ups its finish releases

    @property
    def has_follow_ups(self) -> bool:
        return len(self.roots) < len(self.parents)

    @classmethod
    def of(cls, items: list[ScheduledRequest]) -> ScheduleGraph:
        """The graph of ``items``; a follow-up naming no request, or never released, is an
        error (a one-line UserError naming the item)."""
        from workload_eval.errors import UserError

        index = {it.request.request_id: i for i, it in enumerate(items)}
        parents: list[int | None] = []
        children: list[list[int]] = [[] for _ in items]
        for i, it in enumerate(items):
            parent = None if it.depends_on is None else index.get(it.depends_on)
            if it.depends_on is not None and (parent is None or parent == i):
                raise UserError(
                    f"schedule item {i}: depends_on={it.depends_on} names no other request "
                    "of the schedule"
                )
            parents.append(parent)
            if parent is not None:
                children[parent].append(i)
        roots = sorted(
            (i for i, p in enumerate(parents) if p is None), key=lambda i: items[i].arrival_time
        )
        reached, todo = 0, list(roots)
        while todo:
            reached += 1
            todo.extend(children[todo.pop()])
        if reached < len(items):
            raise UserError(
                f"schedule: {len(items) - reached} item(s) are never sent (their depends_on "
                "chain is a cycle)"
            )
        return cls(tuple(roots), tuple(parents), tuple(tuple(c) for c in children))


@dataclass(slots=True)
class Schedule:
    """An arrival schedule: requests ordered by intended arrival time, and their graph."""

    kind: str
    items: list[ScheduledRequest]
    params: dict[str, JsonValue] = field(default_factory=dict)
    _graph: ScheduleGraph | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def graph(self) -> ScheduleGraph:
        """Roots and follow-ups (sessions), built once; engines send by it."""
        if self._graph is None or len(self._graph.parents) != len(self.items):
            self._graph = ScheduleGraph.of(self.items)
        return self._graph


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
    "prompt_digest",  # str: fingerprint of the prompt ids the engine was sent; "" if unknown
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


Cell = str | int | float | bool | None  # one value of a points-table column


def _nan_to_none(v: object) -> object:
    return None if isinstance(v, float) and math.isnan(v) else v


# A float that may be undefined (NaN in memory, null in JSON).
MaybeFloat = Annotated[float | None, BeforeValidator(_nan_to_none)]


class WorkloadReport(BaseModel):
    """What the workload loader resolved (filled by the runner, not the engine)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None  # hub | local | profile | generated: where requests came from
    tokenizer: str | None = None  # the tokenizer (family) that counted the tokens
    requests: int | None = None  # requests loaded
    spec: dict[str, JsonValue] | None = None  # a generated workload's full spec


class EngineReport(BaseModel):
    """What an engine resolved and observed besides its tables; each engine extends it
    (SimReport, VllmReport, OpenAIReport) and registers the subclass with itself."""

    model_config = ConfigDict(extra="forbid")

    engine: str
    kv_blocks: int | None = Field(default=None, ge=0)  # KV blocks the engine really had
    interrupted: bool = False  # Ctrl-C: the records hold what was gathered
    error: str | None = None  # why the run stopped early, when it did
    workload: WorkloadReport = Field(default_factory=WorkloadReport)

    def columns(self) -> dict[str, Cell]:
        """Engine-specific columns of the points table (results.py), e.g. the sim's gpu."""
        return {}


@dataclass
class RunRecords:
    """What an engine returns: per-request and per-step tables plus its typed report."""

    requests: pd.DataFrame
    steps: pd.DataFrame
    report: EngineReport = field(default_factory=lambda: EngineReport(engine=""))
