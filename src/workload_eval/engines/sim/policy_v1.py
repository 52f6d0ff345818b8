"""vLLM V1's scheduler: decodes first, then prompt chunks, under one token budget per step.

Follows ``vllm/v1/core/sched/scheduler.py`` (FCFS): running requests are scheduled in order,
each taking ``min(remaining tokens, budget)`` tokens; when ``allocate_slots`` finds too few
free blocks the last running request is preempted by recomputation (freed, put at the front
of the waiting queue), or the request itself when it is the last. New requests are admitted
from the waiting queue only in a step without preemption, while budget, ``max_num_seqs`` and
free blocks allow (no watermark in V1). A request samples a token in the step that computes
its last known token. Prefix caching is not modelled. Runs of pure decode steps with nothing
waiting are advanced at once (skip-ahead).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from workload_eval.engines.sim.kv_cache import KvPool, cdiv
from workload_eval.engines.sim.perf_model import PerfModel
from workload_eval.engines.sim.sequence import IGNORED, OK, RequestTable, StepLog


class V1Scheduler:
    """Chunked prefill mixed with decodes; recompute preemption of the newest running request."""

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
        chunked_prefill: bool = True,
        skip_ahead: bool = True,
    ) -> None:
        if any(x > 1 for x in table.n):
            from workload_eval.errors import UserError

            raise UserError("--n > 1 is simulated by --policy vllm-0.2 only")
        self.t, self.perf, self.pool, self.log = table, perf, pool, log
        self.bs = pool.block_size
        self.budget, self.max_num_seqs, self.max_model_len = (
            max_num_batched_tokens,
            max_num_seqs,
            max_model_len,
        )
        self.chunked, self.skip_ahead = chunked_prefill, skip_ahead
        size = len(table)
        self.waiting: deque[int] = deque()
        self.running: list[int] = []
        self.computed = [0] * size
        self.held = [0] * size

    def add(self, gid: int, now: float) -> None:
        self.t.arrival[gid] = now
        self.waiting.append(gid)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _tokens(self, gid: int) -> int:
        return self.t.prompt_len[gid] + self.t.generated[gid]

    def _preempt_last(self) -> int:
        gid = self.running.pop()
        self.held[gid] = 0
        self.computed[gid] = 0
        self.t.preemptions[gid] += 1
        self.waiting.appendleft(gid)
        return gid

    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]:
        """One scheduler iteration (or a run of pure decode steps); return new time, done gids."""
        done: list[int] = []
        if self.skip_ahead and not self.waiting:
            end = self._decode_run(now, next_arrival, done)
            if end is not None:
                return end, done
        t, bs, pool = self.t, self.bs, self.pool
        budget = self.budget
        running, computed, held = self.running, self.computed, self.held
        plen, gen = t.prompt_len, t.generated
        scheduled: list[tuple[int, int]] = []
        preempted = 0
        i = 0
        while i < len(running) and budget > 0:
            gid = running[i]
            num_new = min(plen[gid] + gen[gid] - computed[gid], budget)
            if num_new <= 0:
                i += 1
                continue
            need = cdiv(computed[gid] + num_new, bs) - held[gid]
            ok = True
            while need > pool.free:
                victim = running[-1]
                pool.free += held[victim]
                self._preempt_last()
                preempted += 1
                if victim == gid:
                    ok = False
                    break
            if not ok:
                break
            pool.free -= need
            held[gid] += need
            scheduled.append((gid, num_new))
            budget -= num_new
            i += 1
        if not preempted:
            waiting = self.waiting
            while waiting and budget > 0 and len(running) < self.max_num_seqs:
                gid = waiting[0]
                num_new = self._tokens(gid)
                if num_new > self.max_model_len:
                    waiting.popleft()
                    t.status[gid], t.finish[gid] = IGNORED, now
                    t.error[gid] = (
                        f"prompt of {num_new} tokens exceeds max_model_len {self.max_model_len}"
                    )
                    done.append(gid)
                    continue
                if not self.chunked and num_new > budget:
                    break
                num_new = min(num_new, budget)
                need = cdiv(num_new, bs)
                if need > pool.free:
                    break
                waiting.popleft()
                running.append(gid)
                pool.free -= need
                held[gid] = need
                scheduled.append((gid, num_new))
                budget -= num_new
        if not scheduled:
            if preempted:
                self._log(now, 0.0, "decode", 0, preempted)
            return now, done
        pre_tok = pre_sq = pre_seqs = dec_seqs = dec_ctx = 0
        for gid, num_new in scheduled:
            c = computed[gid]
            if num_new == 1 and t.generated[gid] > 0 and c == self._tokens(gid) - 1:
                dec_seqs += 1
                dec_ctx += c + 1
            else:
                pre_seqs += 1
                pre_tok += num_new
                pre_sq += num_new * (2 * c + num_new)
        if not dec_seqs:
            kind, duration = "prefill", self.perf.prefill_time(pre_seqs, pre_tok, pre_sq)
        elif not pre_seqs:
            kind, duration = "decode", self.perf.decode_time(dec_seqs, dec_ctx)
        else:
            kind = "mixed"
            duration = self.perf.mixed_time(pre_tok, pre_sq, dec_seqs, dec_ctx)
        end = now + duration
        self._log(now, duration, kind, pre_tok + dec_seqs, preempted)
        tt = t.token_times
        finished: list[int] = []
        for gid, num_new in scheduled:
            computed[gid] += num_new
            if computed[gid] == self._tokens(gid):  # all known tokens computed: sample one
                if t.generated[gid] == 0:
                    t.first_token[gid] = end
                t.generated[gid] += 1
                if tt is not None:
                    tt[gid].append(end)
                if t.generated[gid] >= t.target[gid]:
                    finished.append(gid)
        for gid in finished:
            self._finish(gid, end, done)
        return end, done

    def _finish(self, gid: int, now: float, done: list[int]) -> None:
        t = self.t
        self.running.remove(gid)
        self.pool.free += self.held[gid]
        self.held[gid] = 0
        t.status[gid], t.finish[gid] = OK, now
        done.append(gid)

    def _log(
        self, now: float, duration: float, kind: str, tokens: int, preempted: int, steps: int = 1
    ) -> None:
        used = self.pool.total - self.pool.free
        logical = sum(self.computed[g] for g in self.running)
        self.log.add(
            now,
            duration,
            kind,
            tokens,
            len(self.running),
            len(self.waiting),
            preempted,
            used,
            logical,
            used * self.bs,
            steps,
        )

    def _decode_run(self, now: float, next_arrival: float, done: list[int]) -> float | None:
        """Advance k pure decode steps at once when nothing can change but token counts."""
        running, t, bs = self.running, self.t, self.bs
        if not running or len(running) > self.budget:
            return None
        batch = len(running)
        if next_arrival <= now + self.perf.decode_time(batch, 0):
            return None  # an arrival lands within the first step: nothing to skip
        plen, gen_, target, comp_ = t.prompt_len, t.generated, t.target, self.computed
        tok_list = [plen[g] + gen_[g] for g in running]
        kmax = min(target[g] - gen_[g] for g in running)
        if kmax < 2:
            return None
        for g, tk in zip(running, tok_list, strict=True):
            if gen_[g] == 0 or comp_[g] != tk - 1:
                return None  # a prefill is in flight
        tokens = np.asarray(tok_list, dtype=np.int64)
        first = (1 - tokens) % bs  # run step at which each sequence needs its next block

        def blocks(k: int) -> int:
            return int(np.maximum(0, (k - 1 - first) // bs + 1).sum())

        free = self.pool.free
        if blocks(kmax) > free:
            lo, hi = 0, kmax  # largest k with blocks(k) <= free
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if blocks(mid) <= free:
                    lo = mid
                else:
                    hi = mid - 1
            kmax = lo
        ctx = int(tokens.sum())
        if next_arrival != math.inf or t.token_times is not None:
            times: list[float] = []
            end = now
            for k in range(kmax):
                if k and end >= next_arrival:
                    break
                end += self.perf.decode_time(batch, ctx + batch * k)
                times.append(end)
            k = len(times)
        else:
            k = kmax
            times = []
            end = now + self.perf.decode_run_time(batch, ctx, k)
        if k < 2:
            return None
        used_blocks = blocks(k)
        self.pool.free -= used_blocks
        tt = t.token_times
        finished = []
        for j, gid in enumerate(running):
            self.held[gid] = cdiv(int(tokens[j]) + k - 1, bs)
            t.generated[gid] += k
            self.computed[gid] += k
            if tt is not None:
                tt[gid].extend(times)
            if t.generated[gid] >= t.target[gid]:
                finished.append(gid)
        used = self.pool.total - self.pool.free
        self.log.add(
            now,
            end - now,
            "decode",
            batch * k,
            batch,
            0,
            0,
            used,
            ctx + batch * (k - 1),
            used * bs,
            k,
        )
        for gid in finished:
            self._finish(gid, end, done)
        return end
