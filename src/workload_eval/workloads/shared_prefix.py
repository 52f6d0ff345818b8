"""inference-perf's ``shared_prefix`` generator: its prompts, their order and prompt growth.

Rebuilds the request stream of ``../shared/real-gpu/INFERENCE_PERF_SHARED_PREFIX.md`` (read
from kubernetes-sigs/inference-perf; commit labels E0/E1/E2 as in that document):

- single-turn (E0, §1): ``num_groups`` system prompts, ``prompts_per_group`` questions each,
  generated group-major, then shuffled once (``random.shuffle``; here ``random.Random(seed)``,
  so inference-perf seeded with ``random.seed(seed)`` draws the same order). Request ``n`` of
  a stage uses prompt ``n % P`` (``P = num_groups * prompts_per_group``), restarting at 0 in
  every stage; every request asks for ``output_len`` tokens.
- multi-turn (E1/E2, §3): the P user sessions are shuffled, the questions are not; request
  ``k`` of a stage is a turn of user ``u = k % P`` (restarting each stage, but each user's
  conversation continues across stages); turn ``r`` of a user with system prompt S, question
  Q and replies R is ``S Q (R_j Q for j < r)``: about ``S + (r+1) Q + r O`` tokens. A user's
  turns are serialised: a turn is sent no earlier than its previous turn's completion.

Prompts are described, not spelled: each row carries ``prefix_group``/``prefix_len`` (the
group's system prompt), ``prompt_id`` (single-turn: the same prompt recurs every P requests)
or ``session_id``/``turn`` (multi-turn: the history); :mod:`.segments` turns them into
``PromptSegment`` keys, so every engine's ids and the simulator's prefix cache see the sharing.

Lengths: without ``measured_prompt_len`` a prompt is ``system_prompt_len + question_len``
tokens, ``system_prompt_len`` of them shared by the group. inference-perf decodes random ids
and the server re-tokenises the text, so real prompts differ (§1); with the corpus's
``measured_prompt_len`` ({mean, min, max}, BOS included) the lengths follow the measurement:
the shared part is ``1 + round(system_prompt_len * s)`` with ``s = (mean - 1) / (system +
question)`` (BOS plus the same re-tokenisation drift), and the P prompt lengths are the
stratified quantiles of a triangular distribution on [min, max] whose mean is the measured
mean, in a seeded order, so the stream's mean prompt length equals the measured mean.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import AliasChoices, ConfigDict, Field, model_validator

from workload_eval.contracts import Request
from workload_eval.limits import Seed
from workload_eval.strict import NoBoolNumbers

# Defaults of inference-perf's SharedPrefix config at E0 (config.py l.56-61 @b81afa4).
IP_DEFAULTS = {
    "num_groups": 10,
    "prompts_per_group": 10,
    "system_prompt_len": 100,
    "question_len": 50,
    "output_len": 50,
}
_LENGTHS_SALT = 0x5350  # the seeded order of measured prompt lengths ("SP")


class MeasuredPromptLen(NoBoolNumbers):
    """Server-side prompt lengths a real run measured (tokens, BOS included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: float = Field(ge=1, allow_inf_nan=False)
    min: float = Field(ge=1, allow_inf_nan=False)
    max: float = Field(ge=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> MeasuredPromptLen:
        if not self.min <= self.mean <= self.max:
            raise ValueError(
                f"expected min <= mean <= max (got {self.min}, {self.mean}, {self.max})"
            )
        return self


class SharedPrefixWorkload(NoBoolNumbers):
    """The corpus's ``scenario.workload`` block of kind ``shared_prefix``, as a workload.

    Field names are the corpus's; inference-perf's own names (``num_prompts_per_group``,
    E2's ``num_unique_system_prompts`` / ``num_users_per_system_prompt`` /
    ``enable_multi_turn_chat``) are accepted too. Keys that only describe how the measured
    run was made (``effective_unknown``, ``ignore_eos``, ``api``, ``streaming``,
    ``trace_file``) are accepted and kept, and change nothing here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    kind: Literal["shared_prefix"] = "shared_prefix"
    num_groups: int = Field(
        IP_DEFAULTS["num_groups"],
        ge=1,
        le=100_000,
        validation_alias=AliasChoices("num_groups", "num_unique_system_prompts"),
    )
    prompts_per_group: int = Field(
        IP_DEFAULTS["prompts_per_group"],
        ge=1,
        le=100_000,
        validation_alias=AliasChoices(
            "prompts_per_group", "num_prompts_per_group", "num_users_per_system_prompt"
        ),
    )
    system_prompt_len: int = Field(IP_DEFAULTS["system_prompt_len"], ge=0, le=10_000_000)
    question_len: int = Field(IP_DEFAULTS["question_len"], ge=1, le=10_000_000)
    output_len: int = Field(IP_DEFAULTS["output_len"], ge=1, le=10_000_000)
    multi_turn: bool = Field(
        False, validation_alias=AliasChoices("multi_turn", "enable_multi_turn_chat")
    )
    measured_prompt_len: MeasuredPromptLen | None = None
    seed: Seed | None = None  # overrides the run's seed for the prompt order
    # corpus-only: how the measured run was made
    effective_unknown: bool = False
    ignore_eos: bool = True
    api: Literal["completion", "chat"] = "completion"
    streaming: bool | None = True
    trace_file: str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> SharedPrefixWorkload:
        if self.num_groups * self.prompts_per_group > 10_000_000:
            raise ValueError("num_groups * prompts_per_group: expected at most 10,000,000 prompts")
        return self

    @property
    def num_prompts(self) -> int:
        return self.num_groups * self.prompts_per_group


@dataclass(frozen=True)
class PromptLengths:
    """Token lengths of the group-major prompts: the shared system part and each question."""

    system: int
    questions: np.ndarray  # question tokens of group-major prompt i (BOS, if any, in system)


def _triangular_quantiles(lo: float, mean: float, hi: float, n: int) -> np.ndarray:
    """Stratified quantiles ((k + 0.5) / n) of a triangular law on [lo, hi] with this mean."""
    if hi <= lo:
        return np.full(n, lo)
    mode = min(max(3 * mean - lo - hi, lo), hi)
    p = (np.arange(n) + 0.5) / n
    cut = (mode - lo) / (hi - lo)
    left = lo + np.sqrt(p * (hi - lo) * (mode - lo))
    right = hi - np.sqrt((1 - p) * (hi - lo) * (hi - mode))
    return np.where(p < cut, left, right)


def _integers_with_total(values: np.ndarray, total: int, lo: int, hi: int) -> np.ndarray:
    """Round ``values`` to integers in [lo, hi] summing to ``total`` where the bounds allow."""
    out = np.clip(np.floor(values).astype(np.int64), lo, hi)
    frac = values - np.floor(values)
    short = total - int(out.sum())
    step = 1 if short > 0 else -1
    order = np.argsort(-frac if step > 0 else frac, kind="stable")
    while short != 0:
        moved = False
        for i in order.tolist():
            if short == 0:
                break
            if lo <= out[i] + step <= hi:
                out[i] += step
                short -= step
                moved = True
        if not moved:
            break
    return out


def prompt_lengths(spec: SharedPrefixWorkload, seed: int) -> PromptLengths:
    """System and per-prompt question lengths (measured or configured), group-major."""
    n = spec.num_prompts
    m = spec.measured_prompt_len
    if m is None:
        return PromptLengths(spec.system_prompt_len, np.full(n, spec.question_len, np.int64))
    drift = (m.mean - 1) / (spec.system_prompt_len + spec.question_len)
    system = 1 + round(spec.system_prompt_len * drift)
    lo, hi = max(int(np.ceil(m.min)), system + 1), max(int(np.floor(m.max)), system + 1)
    totals = _integers_with_total(
        _triangular_quantiles(lo, min(max(m.mean, lo), hi), hi, n), round(m.mean * n), lo, hi
    )
    order = np.random.default_rng([seed, _LENGTHS_SALT]).permutation(n)
    return PromptLengths(system, totals[order] - system)


def prompt_order(spec: SharedPrefixWorkload, seed: int) -> list[int]:
    """inference-perf's one ``random.shuffle`` of P items (prompts, or multi-turn sessions)."""
    order = list(range(spec.num_prompts))
    random.Random(seed).shuffle(order)
    return order


def _check_sizes(stage_sizes: Sequence[int]) -> list[int]:
    sizes = [int(s) for s in stage_sizes]
    if not sizes or any(s < 0 for s in sizes):
        raise ValueError(f"stage_sizes: expected non-negative request counts (got {sizes})")
    return sizes


def shared_prefix_table(
    spec: SharedPrefixWorkload, stage_sizes: Sequence[int], seed: int = 0
) -> pd.DataFrame:
    """The request stream of consecutive load stages, one row per request in send order.

    Columns: ``stage``, ``index`` (n within its stage), ``prompt_len``, ``output_len``,
    ``prefix_group``, ``prefix_len``, and ``prompt_id`` (single-turn) or ``session_id`` /
    ``turn`` (multi-turn). ``spec.seed``, when set, replaces ``seed``.
    """
    seed = spec.seed if spec.seed is not None else seed
    sizes = _check_sizes(stage_sizes)
    P, U = spec.num_prompts, spec.prompts_per_group
    lengths = prompt_lengths(spec, seed)
    perm = np.asarray(prompt_order(spec, seed), dtype=np.int64)
    stage = np.repeat(np.arange(len(sizes)), sizes)
    index = np.concatenate([np.arange(s) for s in sizes]) if sizes else np.zeros(0, np.int64)
    pos = index % P  # position in the shuffled list, restarting every stage
    out = pd.DataFrame({"stage": stage, "index": index})
    if not spec.multi_turn:
        prompt = perm[pos]  # group-major prompt at shuffled position n % P
        out["prompt_len"] = lengths.system + lengths.questions[prompt]
        out["output_len"] = spec.output_len
        out["prefix_group"] = prompt // U
        out["prefix_len"] = lengths.system
        out["prompt_id"] = prompt
        return out
    # multi-turn: position u pairs session perm[u] (its group's system prompt) with question u
    turn = np.zeros(len(out), np.int64)
    done = np.zeros(P, np.int64)  # turns each user had in earlier stages
    start = 0
    for s in sizes:
        u = pos[start : start + s]
        turn[start : start + s] = done[u] + index[start : start + s] // P
        done += s // P + (np.arange(P) < s % P)
        start += s
    q = lengths.questions[pos]
    out["prompt_len"] = lengths.system + (turn + 1) * q + turn * spec.output_len
    out["output_len"] = spec.output_len
    out["prefix_group"] = perm[pos] // U
    out["prefix_len"] = lengths.system
    out["session_id"] = perm[pos]
    out["turn"] = turn
    return out


@dataclass
class SharedPrefixStream:
    """Requests of each load stage in send order, and the turn each multi-turn request waits for.

    ``after[request_id]`` is the id of the same user's previous turn: a serialised turn is sent
    at the later of its scheduled time and that turn's completion (E2 ``user_session.py``).
    """

    stages: list[list[Request]]
    after: dict[int, int]


def shared_prefix_requests(
    spec: SharedPrefixWorkload,
    stage_sizes: Sequence[int],
    *,
    seed: int = 0,
    workload: str = "shared_prefix",
    first_id: int = 0,
) -> SharedPrefixStream:
    """``contracts.Request`` objects of consecutive stages (ids continue across stages)."""
    from workload_eval.workloads.requests import to_requests

    table = shared_prefix_table(spec, stage_sizes, seed)
    table["workload"] = workload
    reqs = to_requests(table, first_id=first_id)
    stages: list[list[Request]] = []
    start = 0
    for s in _check_sizes(stage_sizes):
        stages.append(reqs[start : start + s])
        start += s
    after: dict[int, int] = {}
    if spec.multi_turn:
        last: dict[int, int] = {}
        for r in reqs:
            assert r.session_id is not None
            if r.session_id in last:
                after[r.request_id] = last[r.session_id]
            last[r.session_id] = r.request_id
    return SharedPrefixStream(stages=stages, after=after)
