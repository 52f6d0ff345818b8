"""Rebuild an experiment's request stream: inference-perf's load stages and shared-prefix prompts.

Semantics (INFERENCE_PERF_SHARED_PREFIX.md, read from inference-perf's source):
- a constant stage sends ``N = int(rate * duration)`` requests at ``t0 + cumsum(gaps)`` where the
  ``N`` exponential gaps are rescaled to sum to ``duration`` (ConstantLoadTimer);
- stage k+1's ``t0`` is ``stage_gap_s`` after every request of stage k finished (drain barrier);
  a ``sweep`` is preceded by an unreported warm-up stage of 2000 requests in 5 s;
- request n of a stage uses prompt ``n % P`` of one shuffled list of ``P = groups x prompts``
  prompts (the index restarts every stage), so the prefix cache sees both the group's system
  prompt and whole-prompt repeats every P requests; every prompt is described by
  ``prefix_segments`` (system prompt keyed by group, question keyed by prompt);
- multi-turn (E1/E2 builds): user ``k % P`` sends turn r as its previous prompt + answer +
  question again, not before its previous turn finished; a prompt + max_tokens over
  max_model_len is rejected by the server (HTTP 400) and the user's context stays as it was.
Trace files give exact send offsets and prompt lengths instead (rows of stage k follow those of
stage k-1); the drain barrier between stages is still simulated, as in the real run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.validation.corpus import (
    Experiment,
    SharedPrefixWorkload,
    TraceRows,
    TraceWorkload,
    load_trace,
    trace_path,
)
from workload_eval.workloads.requests import to_requests
from workload_eval.workloads.shared_prefix import SharedPrefixWorkload as GeneratorSpec
from workload_eval.workloads.shared_prefix import shared_prefix_table

# inference-perf load.sweep defaults (load_generator.py @b81afa4 l.285-368): the unreported
# saturation probe before a sweep's stages.
SWEEP_WARMUP_REQUESTS = 2000
SWEEP_WARMUP_S = 5.0
# inference-perf: drain, then load.interval (1 s) sleep, then t0 = now + 1 s (l.219-220, 421-422).
DEFAULT_STAGE_GAP_S = 2.0
MAX_REQUESTS = 5_000_000  # one experiment; far beyond any published run (the corpus: <= 60k)


@dataclass
class Stream:
    """A schedule plus what scoring needs to know about each of its requests."""

    schedule: Schedule
    target_stage: list[int]  # per item: index into targets.stages, -1 for warm-up requests
    measured_failed: list[bool]  # per item: failed in the measured run (not in its statistics)
    rejected: dict[int, int] = field(default_factory=dict)  # target stage -> requests refused
    notes: list[str] = field(default_factory=list)
    stage_first_row: dict[int, tuple[float, float]] = field(default_factory=dict)
    # target stage -> (first send of the stage, last send of the previous stage) in the trace


def constant_load_offsets(rate: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    """inference-perf ConstantLoadTimer: N exponential gaps rescaled to sum to the duration."""
    n = int(rate * duration)
    if n <= 0:
        return np.zeros(0)
    gaps = rng.exponential(1.0 / rate, n)
    total = gaps.sum()
    gaps = gaps * (duration / total) if total > 0 else np.full(n, duration / n)
    return np.cumsum(gaps)


def poisson_load_offsets(rate: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    """inference-perf PoissonLoadTimer: a Poisson count per 1-s window, spread like constant."""
    parts = []
    start = 0.0
    while start < duration:
        width = min(1.0, duration - start)
        n = int(rng.poisson(rate * width))
        if n:
            gaps = rng.exponential(1.0 / rate, n)
            parts.append(start + np.cumsum(gaps * (width / gaps.sum())))
        start += width
    return np.concatenate(parts) if parts else np.zeros(0)


def stage_offsets(kind: str, rate: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "poisson":
        return poisson_load_offsets(rate, duration, rng)
    return constant_load_offsets(rate, duration, rng)


def _stage_plan(exp: Experiment) -> list[tuple[int, float, float]]:
    """(target stage, rate, duration) of every stage in run order; warm-up is stage -1."""
    plan: list[tuple[int, float, float]] = []
    if exp.scenario.load.kind == "sweep":
        plan.append((-1, SWEEP_WARMUP_REQUESTS / SWEEP_WARMUP_S, SWEEP_WARMUP_S))
    total = 0.0
    for k, st in enumerate(exp.scenario.load.stages):
        if st.rate is None or st.duration_s is None:
            raise ValueError(f"load.stages[{k}] has no rate or duration")
        plan.append((k, st.rate, st.duration_s))
        total += st.rate * st.duration_s
    if total > MAX_REQUESTS:
        raise ValueError(
            f"the load stages send {total:,.0f} requests; more than {MAX_REQUESTS:,} is not "
            "simulated by validate"
        )
    return plan


def generator_spec(wl: SharedPrefixWorkload, notes: list[str]) -> GeneratorSpec:
    """The corpus's workload block as the shared-prefix generator's spec (workloads/)."""
    measured = None
    m = wl.measured_prompt_len
    if m is not None:
        lo, hi = min(m.min, m.max), max(m.min, m.max)
        measured = {"mean": min(max(m.mean, lo), hi), "min": lo, "max": hi}
    else:
        notes.append(
            "no measured prompt length: prompts are system_prompt_len + question_len tokens "
            "(real re-tokenised prompts are a few % longer)"
        )
    if wl.question_len < 1:
        notes.append("question_len 0 is simulated as 1 token")
    return GeneratorSpec(
        num_groups=wl.num_groups,
        prompts_per_group=wl.prompts_per_group,
        system_prompt_len=wl.system_prompt_len,
        question_len=max(1, wl.question_len),
        output_len=wl.output_len,
        multi_turn=wl.multi_turn,
        measured_prompt_len=measured,
    )


def _trace_stage_rows(exp: Experiment, trace: TraceRows, notes: list[str]) -> list[slice] | None:
    """Rows of each target stage (count + num_failed consecutive rows), or None if they differ."""
    sizes = []
    for st in exp.targets.stages:
        if st.count is None:
            notes.append("trace not used: a stage has no recorded count")
            return None
        sizes.append(st.count + (st.num_failed or 0))
    if sum(sizes) != len(trace):
        notes.append(
            f"trace not used: {len(trace)} rows but the stages count {sum(sizes)} requests "
            "(the recipe's arrivals are simulated instead)"
        )
        return None
    out, start = [], 0
    for n in sizes:
        out.append(slice(start, start + n))
        start += n
    return out


def shared_prefix_stream(
    exp: Experiment, corpus_file: Path, *, max_model_len: int, seed: int
) -> Stream:
    """inference-perf's stream (workloads.shared_prefix) on the experiment's load stages."""
    wl = exp.scenario.workload
    assert isinstance(wl, SharedPrefixWorkload)
    notes: list[str] = []
    spec = generator_spec(wl, notes)
    rng = np.random.default_rng(seed)
    trace = rows = None
    if wl.trace_file and not wl.multi_turn:
        trace = load_trace(trace_path(corpus_file, wl.trace_file), where=str(corpus_file))
        rows = _trace_stage_rows(exp, trace, notes)
    if not wl.ignore_eos:
        notes.append("ignore_eos is false: every output is assumed to reach max_tokens")
    plan = _stage_plan(exp)
    offsets: list[np.ndarray] = []
    recorded: list[np.ndarray | None] = []  # per stage: the trace's prompt lengths (NaN: failed)
    stage_first_row: dict[int, tuple[float, float]] = {}
    for k, rate, duration in plan:
        sl = rows[k] if (rows is not None and trace is not None and k >= 0) else None
        if sl is None:
            kind = "constant" if k < 0 else exp.scenario.load.kind
            offsets.append(stage_offsets(kind, rate, duration, rng))
            recorded.append(None)
            continue
        arr = trace.arrival_s[sl]  # type: ignore[union-attr]
        first_gap = duration / len(arr) if len(arr) else 0.0
        offsets.append(arr - (arr[0] if len(arr) else 0.0) + first_gap)
        recorded.append(trace.prompt_len[sl])  # type: ignore[union-attr]
        if len(arr) and sl.start > 0:
            stage_first_row[k] = (float(arr[0]), float(trace.arrival_s[sl.start - 1]))  # type: ignore[union-attr]
    table = shared_prefix_table(spec, [len(o) for o in offsets], seed)
    failed = np.zeros(len(table), dtype=bool)
    lens = table["prompt_len"].to_numpy(dtype=np.int64).copy()
    start = 0
    for rec, off in zip(recorded, offsets, strict=True):
        n = len(off)
        if rec is not None:  # the recorded server-side prompt lengths replace the model's
            known = np.isfinite(rec)
            lens[start : start + n][known] = rec[known].astype(np.int64)
            failed[start : start + n] = ~known
        start += n
    table["prompt_len"] = lens
    table["prefix_len"] = np.minimum(table["prefix_len"].to_numpy(), lens)
    return _schedule(exp, table, plan, offsets, failed, max_model_len, notes, stage_first_row)


def _schedule(
    exp: Experiment,
    table: pd.DataFrame,
    plan: list[tuple[int, float, float]],
    offsets: list[np.ndarray],
    failed: np.ndarray,
    max_model_len: int,
    notes: list[str],
    stage_first_row: dict[int, tuple[float, float]],
) -> Stream:
    """Requests with their stage-relative send times, refusing those over max_model_len."""
    table["workload"] = "shared_prefix"
    reqs = to_requests(table)
    stage_of = table["stage"].to_numpy()
    multi = "session_id" in table.columns
    items: list[ScheduledRequest] = []
    target_stage: list[int] = []
    measured_failed: list[bool] = []
    rejected: dict[int, int] = {}
    last_turn: dict[object, int] = {}
    flat = np.concatenate(offsets) if offsets else np.zeros(0)
    for i, req in enumerate(reqs):
        k = plan[int(stage_of[i])][0]
        if req.prompt_len + req.output_len > max_model_len:
            rejected[k] = rejected.get(k, 0) + 1  # HTTP 400; a user's later turns are longer
            continue
        parent = last_turn.get(req.session_id) if multi else None
        if multi:
            last_turn[req.session_id] = req.request_id
        items.append(
            ScheduledRequest(req, float(flat[i]), depends_on=parent, stage=int(stage_of[i]))
        )
        target_stage.append(k)
        measured_failed.append(bool(failed[i]))
    if rejected:
        notes.append(
            f"{sum(rejected.values())} requests exceed max_model_len {max_model_len} with their "
            "max_tokens and are refused by the server (HTTP 400), as vLLM does"
        )
    gap = exp.scenario.load.stage_gap_s
    schedule = Schedule(
        kind="validation",
        items=items,
        params={"experiment": exp.id},
        stage_gap_s=DEFAULT_STAGE_GAP_S if gap is None else gap,
    )
    return Stream(schedule, target_stage, measured_failed, rejected, notes, stage_first_row)


def trace_stream(exp: Experiment, corpus_file: Path, *, max_model_len: int) -> Stream:
    """A ``trace`` workload: every row replayed at its recorded offset, one stage."""
    wl = exp.scenario.workload
    assert isinstance(wl, TraceWorkload) and wl.file is not None
    trace = load_trace(trace_path(corpus_file, wl.file), where=str(corpus_file))
    if len(trace) > MAX_REQUESTS:
        raise ValueError(f"the trace has {len(trace):,} rows; more than {MAX_REQUESTS:,}")
    notes: list[str] = []
    items: list[ScheduledRequest] = []
    target_stage: list[int] = []
    failed: list[bool] = []
    rejected = 0
    for i in range(len(trace)):
        p, o = trace.prompt_len[i], trace.output_len[i]
        if not (np.isfinite(p) and np.isfinite(o)):
            notes.append("trace rows without lengths are skipped (a trace workload has none)")
            continue
        if p + o > max_model_len:
            rejected += 1
            continue
        req = Request(request_id=i, prompt_len=int(p), output_len=int(o), workload="trace")
        items.append(ScheduledRequest(req, float(trace.arrival_s[i])))
        target_stage.append(0)
        failed.append(False)
    schedule = Schedule(kind="validation", items=items, params={"experiment": exp.id})
    return Stream(schedule, target_stage, failed, {0: rejected} if rejected else {}, notes)
