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

from workload_eval.contracts import (
    PromptSegment,
    Request,
    Schedule,
    ScheduledRequest,
    output_segment_key,
)
from workload_eval.validation.corpus import (
    Experiment,
    SharedPrefixWorkload,
    TraceRows,
    TraceWorkload,
    load_trace,
    trace_path,
)

# inference-perf load.sweep defaults (load_generator.py @b81afa4 l.285-368): the unreported
# saturation probe before a sweep's stages.
SWEEP_WARMUP_REQUESTS = 2000
SWEEP_WARMUP_S = 5.0
# inference-perf: drain, then load.interval (1 s) sleep, then t0 = now + 1 s (l.219-220, 421-422).
DEFAULT_STAGE_GAP_S = 2.0


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


def _stage_plan(exp: Experiment) -> list[tuple[int, float, float]]:
    """(target stage, rate, duration) of every stage in run order; warm-up is stage -1."""
    plan: list[tuple[int, float, float]] = []
    if exp.scenario.load.kind == "sweep":
        plan.append((-1, SWEEP_WARMUP_REQUESTS / SWEEP_WARMUP_S, SWEEP_WARMUP_S))
    for k, st in enumerate(exp.scenario.load.stages):
        if st.rate is None or st.duration_s is None:
            raise ValueError(f"load.stages[{k}] has no rate or duration")
        plan.append((k, st.rate, st.duration_s))
    return plan


@dataclass
class _Prompts:
    """The P prompts of a shared-prefix workload: group and token lengths per list position."""

    group: np.ndarray
    system_len: np.ndarray  # per group, BOS included
    total_len: np.ndarray  # per position (single-turn prompt length)
    question_len: np.ndarray  # per position

    def segments(self, j: int) -> tuple[PromptSegment, ...]:
        g = int(self.group[j])
        return (
            PromptSegment(f"sys{g}", int(self.system_len[g])),
            PromptSegment(f"q{j}", int(self.question_len[j])),
        )


def _prompts(
    wl: SharedPrefixWorkload, rng: np.random.Generator, known: np.ndarray | None, notes: list[str]
) -> _Prompts:
    """Group of each shuffled position and prompt lengths that match the measured ones."""
    groups, per = wl.num_groups, wl.prompts_per_group
    count = groups * per
    group = rng.permutation(count) // per
    nominal = wl.system_prompt_len + wl.question_len
    measured = wl.measured_prompt_len
    if known is not None and np.isfinite(known).any():
        fill = float(np.nanmean(known))
        total = np.where(np.isfinite(known), known, fill).round()
    elif measured is not None:
        lo, hi = measured.min, max(measured.max, measured.min)
        x = rng.uniform(lo, hi, count) if hi > lo else np.full(count, lo)
        total = np.clip(np.round(x + (measured.mean - x.mean())), lo, hi)
    else:
        total = np.full(count, nominal + 1.0)
        notes.append(
            "no measured prompt length: prompts are system_prompt_len + question_len + BOS tokens "
            "(real re-tokenised prompts are a few % longer)"
        )
    scale = (float(total.mean()) - 1.0) / nominal if nominal else 1.0
    system_len = np.full(groups, 1 + round(wl.system_prompt_len * scale), dtype=np.int64)
    total = np.maximum(total.astype(np.int64), 1)
    sys_of_pos = system_len[group]
    question = np.maximum(total - sys_of_pos, 0)
    # a prompt shorter than its system prompt (a re-tokenisation extreme) shares what it has
    short = question == 0
    if short.any():
        system_len = np.minimum(system_len, int(total.min()))
        question = total - system_len[group]
    return _Prompts(group=group, system_len=system_len, total_len=total, question_len=question)


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
    wl = exp.scenario.workload
    assert isinstance(wl, SharedPrefixWorkload)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    count = wl.num_groups * wl.prompts_per_group
    trace = rows = None
    if wl.trace_file and not wl.multi_turn:
        trace = load_trace(trace_path(corpus_file, wl.trace_file), where=str(corpus_file))
        rows = _trace_stage_rows(exp, trace, notes)
    known = None
    if trace is not None and rows is not None:
        # position n % P of every stage is the same prompt: its recorded lengths agree
        known = np.full(count, np.nan)
        for sl in rows:
            lens = trace.prompt_len[sl]
            for j in range(min(count, len(lens))):
                vals = lens[j::count]
                vals = vals[np.isfinite(vals)]
                if len(vals) and not np.isfinite(known[j]):
                    known[j] = float(np.median(vals))
    prompts = _prompts(wl, rng, known, notes)
    if not wl.ignore_eos:
        notes.append("ignore_eos is false: every output is assumed to reach max_tokens")
    plan = _stage_plan(exp)
    items: list[ScheduledRequest] = []
    target_stage: list[int] = []
    failed: list[bool] = []
    rejected: dict[int, int] = {}
    stage_first_row: dict[int, tuple[float, float]] = {}
    history: list[list[tuple[int, int]]] = [[] for _ in range(count)]  # (request id, out len)
    context_len = prompts.total_len.copy()  # multi-turn prompt length of each user's next turn
    rid = 0
    for internal, (k, rate, duration) in enumerate(plan):
        sl = rows[k] if (rows is not None and k >= 0) else None
        if sl is not None:
            assert trace is not None
            arr = trace.arrival_s[sl]
            n = len(arr)
            first_gap = duration / n if n else 0.0
            offsets = arr - (arr[0] if n else 0.0) + first_gap
            lens = trace.prompt_len[sl]
            was_failed = ~np.isfinite(lens)
            if n and sl.start > 0:
                stage_first_row[k] = (float(arr[0]), float(trace.arrival_s[sl.start - 1]))
        else:
            offsets = constant_load_offsets(rate, duration, rng)
            n = len(offsets)
            lens = None
            was_failed = np.zeros(n, dtype=bool)
        for i in range(n):
            j = i % count
            if wl.multi_turn:
                prompt_len = int(context_len[j])
                segs = prompts.segments(j)
                for prev_id, out_len in history[j]:
                    segs += (
                        PromptSegment(output_segment_key(prev_id), out_len),
                        PromptSegment(f"q{j}", int(prompts.question_len[j])),
                    )
            else:
                prompt_len = int(prompts.total_len[j])
                if lens is not None and np.isfinite(lens[i]):
                    prompt_len = int(lens[i])
                segs = prompts.segments(j)
                covered = sum(s.length for s in segs)
                if covered != prompt_len:  # this repeat re-tokenised differently
                    segs = (
                        segs[0],
                        PromptSegment(f"q{j}:{prompt_len}", prompt_len - segs[0].length),
                    )
            if prompt_len + wl.output_len > max_model_len:
                rejected[k] = rejected.get(k, 0) + 1
                continue
            parent = history[j][-1][0] if (wl.multi_turn and history[j]) else None
            req = Request(
                request_id=rid,
                prompt_len=prompt_len,
                output_len=wl.output_len,
                workload="shared_prefix",
                session_id=j if wl.multi_turn else None,
                turn=len(history[j]) if wl.multi_turn else 0,
                prefix_segments=tuple(s for s in segs if s.length > 0),
            )
            items.append(
                ScheduledRequest(req, float(offsets[i]), depends_on=parent, stage=internal)
            )
            target_stage.append(k)
            failed.append(bool(was_failed[i]))
            if wl.multi_turn:
                history[j].append((rid, wl.output_len))
                context_len[j] = prompt_len + wl.output_len + int(prompts.question_len[j])
            rid += 1
    if rejected:
        total = sum(rejected.values())
        notes.append(
            f"{total} requests exceed max_model_len {max_model_len} with their max_tokens and "
            "are refused by the server (HTTP 400), as vLLM does"
        )
    gap = exp.scenario.load.stage_gap_s
    schedule = Schedule(
        kind="validation",
        items=items,
        params={"experiment": exp.id},
        stage_gap_s=DEFAULT_STAGE_GAP_S if gap is None else gap,
    )
    return Stream(schedule, target_stage, failed, rejected, notes, stage_first_row)


def trace_stream(exp: Experiment, corpus_file: Path, *, max_model_len: int) -> Stream:
    """A ``trace`` workload: every row replayed at its recorded offset, one stage."""
    wl = exp.scenario.workload
    assert isinstance(wl, TraceWorkload) and wl.file is not None
    trace = load_trace(trace_path(corpus_file, wl.file), where=str(corpus_file))
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
