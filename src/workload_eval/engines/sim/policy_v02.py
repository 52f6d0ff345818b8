"""vLLM 0.2.1's scheduler (the paper's engine), step for step, in O(1) per uneventful decode step.

With ``padding=False`` it is the V0 scheduler of vLLM 0.3-0.10 without chunked prefill
(``_schedule_default``): the same prefill-first steps, watermark and recompute preemption, but
the token budget counts real prompt tokens (no padded batch, no max_paddings).

Semantics follow ``vllm/core/scheduler.py`` and ``block_manager.py`` of vLLM 0.2.1:
- each step is a prefill step or a decode step; prefill first;
- the waiting queue is walked in order: a prompt longer than min(max_model_len,
  max_num_batched_tokens) is ignored; the walk stops at the first group that cannot be
  allocated (1% watermark), whose padded batch ``count * max_len`` would exceed
  max_num_batched_tokens, that would exceed max_num_seqs sequences, or whose padding
  ``count * max_len - sum`` would exceed max_paddings (256); the step computes the padded
  batch: ``count * max_len`` tokens through the linear layers and ``count * max_len^2``
  attention pairs (the fork's ``BlockDiagonalCausalMask.from_seqlens([max_prompt_len] *
  num_prompts)``);
- a decode step walks the running groups in arrival order; ``can_append_slot`` needs one free
  block per running sequence of the group (whether or not it needs a new block); when it fails
  the newest running group is preempted by recomputation (freed, put at the front of the
  waiting queue), or the group itself when it is the last one.
Deviation: vLLM 0.2.1 swaps n > 1 groups to CPU instead of recomputing them; the paper ran with
swap space 0 and n = 1. Here every preemption is by recomputation.

How it is fast: a running group's generated count is ``D + base`` (D = decode steps so far), so a
decode step never touches the groups. Groups are bucketed by the step phase (mod block size)
at which they need a new block, so a step's block demand is one lookup; finishes sit in a heap
keyed by decode step. Runs of decode steps with no event (finish, possible preemption, arrival
that could be admitted) are advanced at once with ``decode_run_time`` (skip-ahead).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections import deque

from workload_eval.engines.sim.kv_cache import KvPool, group_blocks, prefill_blocks
from workload_eval.engines.sim.perf_model import PerfModel
from workload_eval.engines.sim.policy_v02_walk import PreemptionWalk
from workload_eval.engines.sim.sequence import FAILED, IGNORED, OK, RequestTable, StepLog

MAX_PADDINGS = 256  # vLLM 0.2 SchedulerConfig.max_paddings


class V02Scheduler(PreemptionWalk):
    """Prefill-first continuous batching with recompute preemption of the newest group."""

    def __init__(
        self,
        table: RequestTable,
        perf: PerfModel,
        pool: KvPool,
        log: StepLog,
        *,
        max_num_batched_tokens: int,
        max_num_seqs: int,
        max_model_len: int,
        max_paddings: int = MAX_PADDINGS,
        padding: bool = True,
        skip_ahead: bool = True,
        fast_walk: bool = True,
    ) -> None:
        self.t, self.perf, self.pool, self.log = table, perf, pool, log
        self.bs = pool.block_size
        self.mbt, self.max_num_seqs, self.max_paddings = (
            max_num_batched_tokens,
            max_num_seqs,
            max_paddings,
        )
        self.prompt_limit = min(max_model_len, max_num_batched_tokens)
        self.skip_ahead, self.fast_walk = skip_ahead, fast_walk
        self.padding = padding
        size = len(table)
        self.waiting: deque[int] = deque()
        self.running: list[int] = []  # ranks (arrival order), sorted
        self.rank_gid: list[int] = []
        self.rank_of = [-1] * size
        self.base = [0] * size  # generated = D + base while running
        self.epoch = [0] * size
        self.cow_at = [-1] * size  # decode step of a pending copy-on-write (n > 1)
        self.D = 0
        self.cnt = [0] * self.bs  # sequences needing a new block, by step phase
        self.members: list[set[int]] = [set() for _ in range(self.bs)]
        self.extra: dict[int, int] = {}  # decode step -> copy-on-write blocks
        self.n_big = 0  # running groups with n > 1
        self.batch = 0  # running sequences
        self.ctx_base = 0  # context tokens = ctx_base + batch * D
        self.logical_base = 0  # stored KV tokens = logical_base + batch * (D - 1)
        self.heap: list[tuple[int, int, int, int]] = []  # (finish step, rank, gid, epoch)
        self.preempted_total = 0

    # -- arrivals -------------------------------------------------------------------------
    def add(self, gid: int, now: float) -> None:
        self.rank_of[gid] = len(self.rank_gid)
        self.rank_gid.append(gid)
        self.t.arrival[gid] = now
        self.waiting.append(gid)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- one scheduler iteration ----------------------------------------------------------
    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]:
        """Run one prefill step or one (run of) decode step(s); return the new time, done gids."""
        done: list[int] = []
        if self.waiting:
            end = self._prefill(now, done)
            if end is not None:
                return end, done
        if self.running:
            now = self._decode(now, next_arrival, done)
        return now, done

    # -- running-set bookkeeping ----------------------------------------------------------
    def _held(self, gid: int) -> int:
        """Blocks a running group holds before the allocation of decode step D."""
        t = self.t
        n = t.n[gid]
        if n == 1:
            return -(-(t.prompt_len[gid] + self.D + self.base[gid] - 1) // self.bs)
        held = group_blocks(t.prompt_len[gid], self.D + self.base[gid] - 1, n, self.bs)
        if self.cow_at[gid] == self.D:
            held -= n - 1
        return held

    def _enter(self, gid: int, generated: int, fresh: bool) -> None:
        t, D, bs = self.t, self.D, self.bs
        n, p0 = t.n[gid], t.prompt_len[gid]
        base = generated - D
        self.base[gid] = base
        rank = self.rank_of[gid]
        insort(self.running, rank)
        phase = (1 - p0 - base) % bs
        self.cnt[phase] += n
        self.members[phase].add(rank)
        self.batch += n
        self.ctx_base += n * (p0 + base)
        self.logical_base += p0 + n * base
        if n > 1:
            self.n_big += 1
            if fresh and p0 % bs:
                self.cow_at[gid] = D
                self.extra[D] = self.extra.get(D, 0) + n - 1
        finish_step = t.target[gid] - 1 - base
        heapq.heappush(self.heap, (finish_step, rank, gid, self.epoch[gid]))

    def _leave(self, gid: int, idx: int) -> None:
        t = self.t
        n, p0, base = t.n[gid], t.prompt_len[gid], self.base[gid]
        rank = self.rank_of[gid]
        del self.running[idx]
        phase = (1 - p0 - base) % self.bs
        self.cnt[phase] -= n
        self.members[phase].discard(rank)
        self.batch -= n
        self.ctx_base -= n * (p0 + base)
        self.logical_base -= p0 + n * base
        self.epoch[gid] += 1
        if n > 1:
            self.n_big -= 1
            at = self.cow_at[gid]
            if at >= self.D:
                left = self.extra[at] - (n - 1)
                if left:
                    self.extra[at] = left
                else:
                    del self.extra[at]
            self.cow_at[gid] = -1

    def _preempt_last(self) -> int:
        """Recompute-preempt the newest running group; return the blocks it frees."""
        rank = self.running[-1]
        gid = self.rank_gid[rank]
        held = self._held(gid)
        t = self.t
        t.generated[gid] = self.D + self.base[gid]
        t.preemptions[gid] += 1
        self._leave(gid, len(self.running) - 1)
        self.waiting.appendleft(gid)
        self.preempted_total += 1
        return held

    def _finish(self, gid: int, now: float, done: list[int]) -> None:
        t = self.t
        t.status[gid] = OK
        t.finish[gid] = now
        t.generated[gid] = t.target[gid]
        done.append(gid)

    # -- prefill --------------------------------------------------------------------------
    def _prefill(self, now: float, done: list[int]) -> float | None:
        t, pool, bs = self.t, self.pool, self.bs
        waiting = self.waiting
        gen, plen, nn = t.generated, t.prompt_len, t.n
        limit, wm, mbt, max_pad = (
            self.prompt_limit,
            pool.watermark_blocks,
            self.mbt,
            self.max_paddings,
        )
        seqs = self.batch
        count = longest = total = sum_sq = 0
        admitted: list[tuple[int, int]] = []
        free = pool.free
        while waiting:
            gid = waiting[0]
            g, n = gen[gid], nn[gid]
            p = plen[gid] + g
            if p > limit:
                waiting.popleft()
                t.status[gid], t.finish[gid] = IGNORED, now
                t.error[gid] = f"prompt of {p} tokens exceeds the limit of {limit}"
                done.append(gid)
                continue
            need = -(-p // bs) if n == 1 else prefill_blocks(plen[gid], g, n, bs)
            if free - need < wm:
                if not pool.fits_ever(need):  # would wait forever (later vLLM: AllocStatus.NEVER)
                    waiting.popleft()
                    t.status[gid], t.finish[gid] = FAILED, now
                    t.error[gid] = f"needs {need} KV blocks; the cache has {pool.total}"
                    done.append(gid)
                    continue
                break
            c = count + 1
            m = p if p > longest else longest
            if seqs + n > self.max_num_seqs:
                break
            if self.padding:
                if c * m > mbt or c * m - (total + p) > max_pad:
                    break
            elif total + p > mbt:
                break
            waiting.popleft()
            free -= need
            count, longest, total, sum_sq, seqs = c, m, total + p, sum_sq + p * p, seqs + n
            admitted.append((gid, need))
        pool.free = free
        if not admitted:
            return None
        batched = count * longest if self.padding else total
        attn_sq = count * longest * longest if self.padding else sum_sq
        duration = self.perf.prefill_time(count, batched, attn_sq)
        end = now + duration
        tt = t.token_times
        finished_blocks = finished_tokens = 0
        for gid, need in admitted:
            g = t.generated[gid]
            if g == 0:
                t.first_token[gid] = end
            if tt is not None:
                tt[gid].append(end)
            g += 1
            if g >= t.target[gid]:
                self._finish(gid, end, done)
                finished_blocks += need
                finished_tokens += t.prompt_len[gid] + g - 1
            else:
                self._enter(gid, g, fresh=(g == 1))
        used = pool.total - pool.free
        logical = self.logical_base + self.batch * (self.D - 1) + finished_tokens
        self.log.add(
            now,
            duration,
            "prefill",
            batched,
            len(self.running),
            len(waiting),
            0,
            used,
            logical,
            used * bs,
        )
        pool.free += finished_blocks
        return end

    # -- decode ---------------------------------------------------------------------------
    def _decode(self, now: float, next_arrival: float, done: list[int]) -> float:
        D, bs, cnt, extra = self.D, self.bs, self.cnt, self.extra
        heap, epoch = self.heap, self.epoch
        while heap and heap[0][3] != epoch[heap[0][2]]:
            heapq.heappop(heap)
        kmax = heap[0][0] - D + 1 if self.skip_ahead else 1
        nmax = 1 if not self.n_big else max(self.t.n[self.rank_gid[r]] for r in self.running)
        batch, ctx = self.batch, self.ctx_base + self.batch * D
        by_arrival = not self.waiting and next_arrival != math.inf
        perf = self.perf
        tt = self.t.token_times
        step_times: list[float] | None = [] if (by_arrival or tt is not None) else None
        free = self.pool.free
        k = 0
        end = now
        while k < kmax:
            d = D + k
            need = cnt[d % bs] + (extra.get(d, 0) if extra else 0)
            if free - need < nmax:
                break
            if step_times is not None:
                if by_arrival and k and end >= next_arrival:
                    break
                end += perf.decode_time(batch, ctx + batch * k)
                step_times.append(end)
            free -= need
            k += 1
        preempted = 0
        if k == 0:  # the exact walk: this step may preempt
            before = self.preempted_total
            free = self._walk_fast() if (self.fast_walk and not self.n_big) else self._walk()
            preempted = self.preempted_total - before
            if not self.running:
                self.pool.free = free
                self.log.add(
                    now,
                    0.0,
                    "decode",
                    0,
                    0,
                    len(self.waiting),
                    preempted,
                    self.pool.total - free,
                    0,
                    (self.pool.total - free) * bs,
                    0,
                )
                return now
            batch, ctx = self.batch, self.ctx_base + self.batch * D
            end = now + perf.decode_time(batch, ctx)
            if tt is not None:
                step_times = [end]
            k = 1
        elif step_times is None:
            end = now + (
                perf.decode_time(batch, ctx) if k == 1 else perf.decode_run_time(batch, ctx, k)
            )
        self.pool.free = free
        self.D = D + k
        if tt is not None and step_times:
            rank_gid = self.rank_gid
            for r in self.running:
                tt[rank_gid[r]].extend(step_times)
        used = self.pool.total - free
        self.log.add(
            now,
            end - now,
            "decode",
            batch * k,
            len(self.running),
            len(self.waiting),
            preempted,
            used,
            self.logical_base + batch * (self.D - 1),
            used * bs,
            k,
        )
        self._finish_due(end, done)
        return end

    def _finish_due(self, now: float, done: list[int]) -> None:
        heap, epoch, D, t, bs = self.heap, self.epoch, self.D, self.t, self.bs
        running, pool = self.running, self.pool
        while heap and heap[0][0] < D:
            _, rank, gid, ep = heapq.heappop(heap)
            if ep != epoch[gid]:
                continue
            n = t.n[gid]
            tokens = t.prompt_len[gid] + t.target[gid] - 1
            pool.free += (
                -(-tokens // bs)
                if n == 1
                else group_blocks(t.prompt_len[gid], t.target[gid] - 1, n, bs)
            )
            self._leave(gid, bisect_left(running, rank))
            t.status[gid] = OK
            t.finish[gid] = now
            t.generated[gid] = t.target[gid]
            done.append(gid)
