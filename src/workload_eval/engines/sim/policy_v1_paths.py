"""The V1 scheduler's two other paths: the literal per-request step and runs of decode steps.

``_general_step`` is vLLM's ``schedule()`` request by request (preemption, decoders left out of
the budget, any running order); it turns the decoders into explicit requests, steps, and puts
them back. ``_decode_run`` advances k identical decode steps at once when no prompt is in
flight and no waiting request can start before the next finish, arrival or block shortage.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

from workload_eval.engines.sim.perf_model import DecodeRun

if TYPE_CHECKING:
    from workload_eval.engines.sim.policy_v1 import V1Scheduler


class SlowPaths:
    """Mixed into V1Scheduler; see the module docstring."""

    # -- the literal step ---------------------------------------------------------------------
    def _general_step(self: V1Scheduler, now: float, done: list[int]) -> float:
        t, bs, pool = self.t, self.bs, self.pool
        plen, gen, computed, held = t.prompt_len, t.generated, self.computed, self.held
        running = self._explicit_running()
        budget, threshold = self.budget, self.threshold
        chunks: list[tuple[int, int]] = []
        preempted = 0
        i = 0
        while i < len(running) and budget > 0:
            gid = running[i]
            c = computed[gid]
            n = plen[gid] + gen[gid] - c
            if 0 < threshold < n:
                n = threshold
            if n > budget:
                n = budget
            if n <= 0:
                i += 1
                continue
            need = -(-(c + n) // bs) - held[gid]
            if need > pool.free:
                freed, scheduled = self._make_room(running, gid, need)
                preempted += freed
                if not scheduled:
                    break
            if self.caching:
                pool.allocate(need)
                if self.segs[gid]:
                    self._register(gid, c + n)
            else:
                pool.free -= need
            held[gid] += need
            chunks.append((gid, n))
            budget -= n
            i += 1
        self.pre = running
        if not preempted:
            self._admit(budget, now, chunks, done)
        return self._execute_explicit(now, chunks, preempted, done)

    def _execute_explicit(
        self: V1Scheduler,
        now: float,
        chunks: list[tuple[int, int]],
        preempted: int,
        done: list[int],
    ) -> float:
        """Run one step over explicit requests (``self.pre``), then rebuild the decoders."""
        t = self.t
        plen, gen, computed = t.prompt_len, t.generated, self.computed
        if not chunks:
            if preempted:
                self._log_explicit(now, 0.0, "decode", 0, preempted, [])
            elif not self.pre and self.waiting and not done:
                self._refuse_head(now, done)
            self._rebuild(self.pre)
            return now
        pre_tok = pre_sq = pre_seqs = dec_seqs = dec_ctx = 0
        for gid, n in chunks:
            c = computed[gid]
            if n == 1 and gen[gid] > 0 and c == plen[gid] + gen[gid] - 1:
                dec_seqs += 1
                dec_ctx += c + 1
            else:
                pre_seqs += 1
                pre_tok += n
                pre_sq += n * (2 * c + n)
        perf = self.perf
        if not dec_seqs:
            kind, duration = "prefill", perf.prefill_time(pre_seqs, pre_tok, pre_sq)
        elif not pre_seqs:
            kind, duration = "decode", perf.decode_time(dec_seqs, dec_ctx)
        else:
            kind, duration = "mixed", perf.mixed_time(pre_tok, pre_sq, dec_seqs, dec_ctx)
        end = now + duration
        self._last_start, self._last_end = now, end
        self._log_explicit(now, duration, kind, pre_tok + dec_seqs, preempted, chunks)
        self.D += 1
        tt = t.token_times
        finished: list[int] = []
        for gid, n in chunks:
            computed[gid] += n
            if computed[gid] == plen[gid] + gen[gid]:  # all known tokens computed: sample one
                if gen[gid] == 0:
                    t.first_token[gid] = end
                gen[gid] += 1
                if tt is not None:
                    tt[gid].append(end)
                if gen[gid] >= t.target[gid]:
                    finished.append(gid)
        for gid in finished:
            self.pre.remove(gid)
            self._finish(gid, end, done)
        self._rebuild(self.pre)
        return end

    def _explicit_running(self: V1Scheduler) -> list[int]:
        """Every running request as an explicit one (decoders leave their fast form), in
        running order: what a literal per-request step walks."""
        decoders = [self.rank_gid[r] for r in self.dec]
        for gid in decoders:
            self._leave_all(gid)
        self.dec, self.heap, self.ctx_base = [], [], 0
        self.cnt = [0] * self.bs
        return sorted(decoders + self.pre, key=self.rank.__getitem__)

    def _make_room(
        self: V1Scheduler, running: list[int], gid: int, blocks: int
    ) -> tuple[int, bool]:
        """Preempt from the tail of ``running`` (recompute) until ``blocks`` KV blocks are
        free: how many were preempted, and whether ``gid`` itself still runs."""
        pool = self.pool
        preempted = 0
        while pool.free < blocks:
            victim = running.pop()
            self._preempt(victim)
            preempted += 1
            if victim == gid:
                return preempted, False
        return preempted, True

    def _leave_all(self: V1Scheduler, gid: int) -> None:
        """A decoder becomes an explicit request (generated count, computed tokens, blocks)."""
        base = self.base[gid]
        p = self.t.prompt_len[gid]
        g = self.D + base
        self.epoch[gid] += 1
        self.t.generated[gid] = g
        self.computed[gid] = p + g - 1
        self.held[gid] = -(-(p + g - 1) // self.bs)

    def _rebuild(self: V1Scheduler, running: list[int]) -> None:
        """Explicit running requests back into decoders and prompt chunks, in running order."""
        t = self.t
        pre: list[int] = []
        for gid in running:
            g = t.generated[gid]
            if g > 0 and self.computed[gid] == t.prompt_len[gid] + g - 1:
                self._enter(gid, g)
            else:
                pre.append(gid)
        self.pre = pre

    def _preempt(self: V1Scheduler, gid: int) -> None:
        self._free(gid, preempted=True)
        self.computed[gid] = 0
        self.t.preemptions[gid] += 1
        self.waiting.appendleft(gid)

    def _log_explicit(
        self: V1Scheduler,
        now: float,
        duration: float,
        kind: str,
        tokens: int,
        preempted: int,
        chunks: list[tuple[int, int]],
    ) -> None:
        used = self.pool.total - self.pool.free
        logical = sum(self.computed[g] for g in self.pre)
        self.log.add(now, duration, kind, tokens, len(self.pre), len(self.waiting), preempted,
                     used, logical, used * self.bs)  # fmt: skip

    # -- runs of decode steps -----------------------------------------------------------------
    def _head_blocked(self: V1Scheduler, budget_left: int, first_demand: int) -> bool:
        """Whether the waiting queue's head cannot start until a request finishes."""
        if len(self.dec) + len(self.pre) >= self.max_num_seqs or budget_left <= 0:
            return True
        gid = self.waiting[0]
        if self.async_sched and self.t.arrival[gid] > self._visible:
            return False  # it becomes visible at the next step: no run
        blocked = self._blocked
        stamp = self._changes + self.pool.evicted_cached
        # (with caching the run also needs a hit that cannot shrink: checked below)
        if (
            blocked == (stamp, gid, blocked[2])
            and budget_left >= blocked[2]
            and (not self.caching or not (self.segs[gid] or self.pool.own))
        ):
            return True
        t, bs = self.t, self.bs
        tokens = t.prompt_len[gid] + t.generated[gid]
        if tokens > self.max_model_len:
            return False  # it is refused at the next step
        h = own = cost = 0
        if self.caching and (self.segs[gid] or self.pool.own):
            h, own, cost = self._lookup(gid, tokens)
            if cost:  # the run's allocations could evict part of its hit: step by step
                return False
        hit = (h + own) * bs
        n = tokens - hit
        if 0 < self.threshold < n:
            n = self.threshold
        if not self.chunked and n > budget_left:
            return True
        n = min(n, budget_left)
        need = -(-(hit + n) // bs) - h - own
        return need + cost > self.pool.free - first_demand

    def _run_blocks(self: V1Scheduler, k: int) -> int:
        """Blocks the decoders allocate over the next k steps."""
        bs, cnt, d = self.bs, self.cnt, self.D
        total = (k // bs) * sum(cnt)
        for j in range(k % bs):
            total += cnt[(d + j) % bs]
        return total

    def _decode_run(
        self: V1Scheduler, now: float, next_arrival: float, done: list[int]
    ) -> float | None:
        nd = len(self.dec)
        bs, cnt, d = self.bs, self.cnt, self.D
        heap, epoch = self.heap, self.epoch
        while heap and heap[0][3] != epoch[heap[0][2]]:
            heapq.heappop(heap)
        kmax = heap[0][0] - d + 1
        if kmax < 2:
            return None
        if self.waiting:
            if not self._head_blocked(self.budget - nd, cnt[d % bs]):
                return None
            by_arrival = False
        else:
            by_arrival = next_arrival != math.inf
        free = self.pool.free
        cycle = sum(cnt)
        full = kmax // bs if not cycle else min(kmax // bs, free // cycle)
        k, need = full * bs, full * cycle
        while k < kmax:
            step_need = cnt[(d + k) % bs]
            if need + step_need > free:
                break
            need += step_need
            k += 1
        if k < 2:
            return None
        perf = self.perf
        ctx = self.ctx_base + nd * d
        tt = self.t.token_times
        times: list[float] = []
        # The step that starts at or after the arrival admits it; with asynchronous
        # scheduling it was scheduled when the step before started, so the one after does.
        lag = 1 if self.async_sched else 0
        if tt is not None:
            end = now
            starts = [now]
            for j in range(k):
                if by_arrival and j > lag and starts[j - lag] >= next_arrival:
                    break
                end += perf.decode_time(nd, ctx + nd * j)
                times.append(end)
                starts.append(end)
            k = len(times)
        else:
            run = DecodeRun(perf, nd, ctx)
            if by_arrival:  # the first j steps end at or after the arrival
                j = run.steps_to_reach(k, now, next_arrival)
                if j <= k:
                    k = min(k, j + lag)
            end = now + run.time(k)
        if k < 2:
            return None
        self._last_end = end
        self._last_start = times[-2] if times else now + run.time(k - 1)
        blocks = self._run_blocks(k)
        if self.caching:
            self.pool.allocate(blocks)
        else:
            self.pool.free -= blocks
        if tt is not None:
            rank_gid = self.rank_gid
            for r in self.dec:
                tt[rank_gid[r]].extend(times)
        used = self.pool.total - self.pool.free
        self.log.add(now, end - now, "decode", nd * k, nd, len(self.waiting), 0, used,
                     ctx + nd * (k - 1) - nd, used * bs, k)  # fmt: skip
        self.D = d + k
        self._finish_due(end, done)
        return end
