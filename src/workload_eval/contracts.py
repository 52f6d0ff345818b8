"""Typed hand-overs between the stages: workload -> schedule -> engine -> records.

These shapes are the project's stable contracts (see docs/INTERFACES.md); engines, metrics and
reports depend on them, never on each other's internals.
"""

from __future__ import annotations

import itertools
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
    In a closed loop (``Schedule.concurrency``) a root's ``think_time`` is its user's pause
    between the previous request's finish and this one.
    """

    request: Request
    arrival_time: float
    depends_on: int | None = None
    think_time: float = 0.0
    stage: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleGraph:
    """Who is sent when. A root is due at its stage's start plus its ``arrival_time``; a
    follow-up at the later of that and ``think_time`` after the request it depends on
    finished. With stages (``Schedule.stage_gap_s``), stage k+1 starts ``stage_gap_s`` after
    every request of stage k finished. Indices are positions in ``Schedule.items``; every
    engine walks this one graph."""

    roots: tuple[int, ...]  # by (stage, arrival time), ties in schedule order
    parents: tuple[int | None, ...]  # per item: the item whose finish releases it
    children: tuple[tuple[int, ...], ...]  # per item: the follow-ups its finish releases
    stage_of: tuple[int, ...]  # per item: its load stage (0 for a schedule without stages)
    stage_roots: tuple[tuple[int, ...], ...]  # per stage: its roots, by arrival time

    @property
    def has_follow_ups(self) -> bool:
        return len(self.roots) < len(self.parents)

    @classmethod
    def of(cls, items: list[ScheduledRequest], *, staged: bool = False) -> ScheduleGraph:
        """The graph of ``items`` (``staged``: honour their ``stage``); a follow-up naming no
        request, one of a later stage, or never released is a one-line UserError."""
        from workload_eval.errors import UserError

        if not staged and all(it.depends_on is None for it in items):
            return cls._independent(items)
        index = {it.request.request_id: i for i, it in enumerate(items)}
        stage_of = tuple(it.stage for it in items) if staged else (0,) * len(items)
        if staged and any(k < 0 for k in stage_of):
            raise UserError("schedule: a request has a negative stage index")
        parents: list[int | None] = []
        children: list[list[int]] = [[] for _ in items]
        for i, it in enumerate(items):
            parent = None if it.depends_on is None else index.get(it.depends_on)
            if it.depends_on is not None and (parent is None or parent == i):
                raise UserError(
                    f"schedule item {i}: depends_on={it.depends_on} names no other request "
                    "of the schedule"
                )
            if parent is not None and stage_of[parent] > stage_of[i]:
                raise UserError(
                    f"schedule: request {it.request.request_id} (stage {stage_of[i]}) depends "
                    f"on request {it.depends_on} of a later stage {stage_of[parent]}"
                )
            parents.append(parent)
            if parent is not None:
                children[parent].append(i)
        roots = sorted(
            (i for i, p in enumerate(parents) if p is None),
            key=lambda i: (stage_of[i], items[i].arrival_time),
        )
        stage_roots: list[list[int]] = [[] for _ in range(max(stage_of, default=-1) + 1)]
        for i in roots:
            stage_roots[stage_of[i]].append(i)
        reached, todo = 0, list(roots)
        while todo:
            reached += 1
            todo.extend(children[todo.pop()])
        if reached < len(items):
            raise UserError(
                f"schedule: {len(items) - reached} item(s) are never sent (their depends_on "
                "chain is a cycle)"
            )
        return cls(
            tuple(roots),
            tuple(parents),
            tuple(tuple(c) for c in children),
            stage_of,
            tuple(tuple(r) for r in stage_roots),
        )

    @classmethod
    def _independent(cls, items: list[ScheduledRequest]) -> ScheduleGraph:
        """Every item a root of one stage (the usual open-loop schedule): the same graph
        ``of`` builds, without its per-item bookkeeping (a tenth of a simulated run's setup)."""
        times = [it.arrival_time for it in items]
        n = len(items)
        if all(a <= b for a, b in itertools.pairwise(times)):  # already in time order
            roots: tuple[int, ...] = tuple(range(n))
        else:  # stable: ties keep schedule order, as ``of``'s sort does
            roots = tuple(sorted(range(n), key=times.__getitem__))
        return cls(roots, (None,) * n, ((),) * n, (0,) * n, (roots,) if n else ())


@dataclass(slots=True)
class Schedule:
    """An arrival schedule: requests ordered by intended arrival time, and their graph.

    With ``stage_gap_s`` set the schedule runs in load stages, as inference-perf does: an
    item's ``arrival_time`` counts from its stage's start, stage 0 starts at 0 and stage
    k+1 starts ``stage_gap_s`` after every request of stage k has finished (a drain barrier,
    not a fixed offset). Items are then ordered by (stage, arrival_time).

    With ``concurrency`` set the schedule is a closed loop of that many users (GuideLLM's
    and AIPerf's concurrency): the first ``concurrency`` roots are due at their
    ``arrival_time``, and every time a user's request finishes with nothing to follow it
    (no follow-up turn) the next root in order is due ``think_time`` (that root's) later.
    A follow-up turn keeps its user: the conversation goes on before the user takes a new
    root. Latency still runs from each request's due time, its *intended* send time.
    """

    kind: str
    items: list[ScheduledRequest]
    params: dict[str, JsonValue] = field(default_factory=dict)
    stage_gap_s: float | None = None
    concurrency: int | None = None  # closed loop: users; None = open loop
    _graph: ScheduleGraph | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def graph(self) -> ScheduleGraph:
        """Roots, follow-ups and stages, built once; engines send by it."""
        if self._graph is None or len(self._graph.parents) != len(self.items):
            graph = ScheduleGraph.of(self.items, staged=self.stage_gap_s is not None)
            if self.concurrency is not None:
                _check_closed_loop(self, graph)
            self._graph = graph
        return self._graph


def _check_closed_loop(schedule: Schedule, graph: ScheduleGraph) -> None:
    """A closed loop needs users that each hold one request at a time: a positive number
    of them, no load stages, and follow-ups that form chains (one per finished request)."""
    from workload_eval.errors import UserError

    n = schedule.concurrency
    if n is None or isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"schedule: concurrency must be a positive integer (got {n!r})")
    if schedule.stage_gap_s is not None:
        raise UserError("schedule: a closed loop (concurrency) cannot also have load stages")
    for i, kids in enumerate(graph.children):
        if len(kids) > 1:
            rid = schedule.items[i].request.request_id
            raise UserError(
                f"schedule: request {rid} has {len(kids)} follow-ups; a closed loop "
                "(concurrency) needs each request to release at most one"
            )


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


# What happened to the engine's prefix cache before a run: emptied (``done``), empty anyway
# (``fresh``: a new simulator), could not be emptied (``refused``: the server has no such
# endpoint; ``failed``: it answered no), or not asked for (``off``).
CacheReset = Literal["done", "fresh", "refused", "failed", "off"]


class PrefixCacheReport(BaseModel):
    """The prefix cache of one run: the hit rate measured by the engine beside the hit rate
    the workload implies (``prefix_reuse.implied_reuse``: an unbounded cache, vLLM's rules),
    in prompt tokens, and whether the cache was emptied first (a rerun must not be faster
    because the cache remembered the previous run)."""

    model_config = ConfigDict(extra="forbid")

    block_size: int = Field(ge=1)
    implied_queries: int = Field(ge=0)  # prompt tokens looked up
    implied_hits: int = Field(ge=0)  # of them found in blocks earlier requests computed
    implied_hit_rate: MaybeFloat = None
    measured_queries: MaybeFloat = None  # the engine's own counters; None when unknown
    measured_hits: MaybeFloat = None
    measured_hit_rate: MaybeFloat = None
    measured_by: str = ""  # where the measured numbers come from
    reset: CacheReset = "off"
    reset_note: str = ""  # why a reset was refused or failed, and what it means


class EngineReport(BaseModel):
    """What an engine resolved and observed besides its tables; each engine extends it
    (SimReport, VllmReport, OpenAIReport) and registers the subclass with itself."""

    model_config = ConfigDict(extra="forbid")

    engine: str
    kv_blocks: int | None = Field(default=None, ge=0)  # KV blocks the engine really had
    interrupted: bool = False  # Ctrl-C: the records hold what was gathered
    error: str | None = None  # why the run stopped early, when it did
    workload: WorkloadReport = Field(default_factory=WorkloadReport)
    prefix_cache: PrefixCacheReport | None = None  # with prefix caching on

    def columns(self) -> dict[str, Cell]:
        """Engine-specific columns of the points table (results.py), e.g. the sim's gpu."""
        return {}

    def invalid_reasons(self) -> list[str]:
        """Why the run's numbers cannot be trusted as a measurement (empty: they can); an
        engine adds its own (the openai engine: the schedule not kept, token counts that
        disagree with the workload)."""
        reasons = ["interrupted"] if self.interrupted else []
        if self.error and not self.interrupted:
            reasons.append(f"the engine stopped early ({self.error})")
        return reasons


@dataclass
class RunRecords:
    """What an engine returns: per-request and per-step tables plus its typed report."""

    requests: pd.DataFrame
    steps: pd.DataFrame
    report: EngineReport = field(default_factory=lambda: EngineReport(engine=""))
