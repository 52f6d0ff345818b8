"""vLLM V1's scheduler (0.8+): running requests first, then waiting ones, under one token budget.

Follows ``vllm/v1/core/sched/scheduler.py`` (FCFS): each running request, in order, is given
``min(remaining tokens, budget)`` tokens (capped at ``long_prefill_token_threshold``); when
``allocate_slots`` finds too few free blocks the last running request is preempted by
recomputation (freed, put at the front of the waiting queue), or the request itself when it is
the last. Waiting requests are admitted only in a step without preemption, while budget,
``max_num_seqs`` and free blocks allow (no watermark); without chunked prefill a prompt must fit
the remaining budget whole. With prefix caching a new request starts after its longest cached
block chain (``prefix_cache``). A request samples a token in the step that computes its last
known token.

How it is fast (the vllm-0.2 policy's trick): a decoding request's generated count is
``D + base`` (D = steps so far), so a step never touches the decoders; they are bucketed by the
step phase (mod block size) at which they need a new block and their finishes sit in a heap.
Only prompt chunks are handled one by one. Steps that would preempt, that leave decoders out of
the budget, or whose running order is not "decoders, then prompts" take the literal per-request
path (``_general_step``), which is also the reference the tests compare the fast path with.
Runs of decode steps in which nothing but token counts can change are advanced at once.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque

from workload_eval.engines.sim.perf_model import PerfModel
from workload_eval.engines.sim.policy_v1_admit import Admission
from workload_eval.engines.sim.policy_v1_cache import PrefixCachePaths
from workload_eval.engines.sim.policy_v1_paths import SlowPaths
from workload_eval.engines.sim.prefix_cache import PLAIN, BlockHasher, BlockPool
from workload_eval.engines.sim.sequence import FAILED, OK, RequestTable, StepLog


class V1Scheduler(Admission, PrefixCachePaths, SlowPaths):
    """Chunked prefill mixed with decodes; recompute preemption of the newest running request."""

    def __init__(
        self,
        table: RequestTable,
        perf: PerfModel,
        pool: BlockPool,
        log: StepLog,
        *,
        block_size: int,
        max_num_batched_tokens: int,
        max_num_seqs: int,
        max_model_len: int,
        chunked_prefill: bool = True,
        long_prefill_token_threshold: int = 0,
        prefix_caching: bool = False,
        segment_blocks: list[list[int]] | None = None,
        exported: dict[int, tuple[tuple[tuple[str, int], ...], str, int]] | None = None,
        hasher: BlockHasher | None = None,
        skip_ahead: bool = True,
        general: bool = False,
        async_scheduling: bool = False,
    ) -> None:
        if any(x > 1 for x in table.n):
            from workload_eval.errors import UserError

            raise UserError("--n > 1 is simulated by --policy vllm-0.2 only")
        self.t, self.perf, self.pool, self.log = table, perf, pool, log
        self._arrival = table.arrival
        self.bs = block_size
        self.budget, self.max_num_seqs, self.max_model_len = (
            max_num_batched_tokens,
            max_num_seqs,
            max_model_len,
        )
        self.chunked, self.threshold = chunked_prefill, long_prefill_token_threshold
        self.skip_ahead, self.general = skip_ahead, general
        # vLLM >= 0.14 schedules step N+1 while step N runs: a request that arrived after
        # step N started is first scheduled into step N+2 (busy engine only)
        self.async_sched = async_scheduling
        self._last_start = self._last_end = -1.0
        self._visible = 0.0  # arrivals up to this time can be scheduled in this step
        self.caching = prefix_caching
        size = len(table)
        self._none: list[int] = []  # shared, never mutated: "no blocks"
        none = self._none
        self.segs: list[list[int]] = segment_blocks or [none] * size
        self.exported = exported or {}
        self.hasher = hasher
        self.refs: list[list[int]] = [none] * size  # cached blocks held (a fresh list if any)
        self.reg_upto = [0] * size  # segment blocks looked up or registered so far
        self.waiting: deque[int] = deque()
        self.pre: list[int] = []  # running requests with prompt tokens left, in running order
        self.dec: list[int] = []  # ranks of decoding requests, sorted
        self.rank_gid: list[int] = []
        self.rank = [0] * size
        self.computed = [0] * size
        self.held = [0] * size
        self.base = [0] * size
        self.epoch = [0] * size
        self.D = 0
        self.cnt = [0] * self.bs  # decoders needing a new block, by step phase
        self.ctx_base = 0  # decoders' context tokens = ctx_base + len(dec) * D
        self.heap: list[tuple[int, int, int, int]] = []  # (finish step, rank, gid, epoch)
        # events that can unblock the waiting queue's head: blocks freed, blocks newly cached
        # or taken (its hit grows, or a hit costs no free block), cached blocks evicted (a
        # shorter hit can need fewer blocks when the chunk is capped); the head's failed
        # attempt is not repeated until one happens or the budget shrinks
        self._changes = 0
        self._blocked: tuple[int, int, int] = (-1, -1, 0)  # (frees, head, budget) at a failure
        # vLLM's prefix-cache counters: prompt tokens looked up and found, new requests only
        self.cache_queries = self.cache_hits = 0

    # -- arrivals and bookkeeping ---------------------------------------------------------
    def add(self, gid: int, now: float) -> None:
        self._arrival[gid] = now
        self.waiting.append(gid)

    def has_work(self) -> bool:
        return bool(self.waiting or self.pre or self.dec)

    def _enter(self, gid: int, generated: int) -> None:
        """A request whose known tokens are all computed but the last joins the decoders."""
        base = generated - self.D
        self.base[gid] = base
        p = self.t.prompt_len[gid]
        rank, dec = self.rank[gid], self.dec
        if not dec or rank > dec[-1]:
            dec.append(rank)  # the usual case: the newest request starts decoding
        else:
            insort(dec, rank)
        self.cnt[(1 - p - base) % self.bs] += 1
        self.ctx_base += p + base
        key = (self.t.target[gid] - 1 - base, self.rank[gid], gid, self.epoch[gid])
        heapq.heappush(self.heap, key)

    # -- one step -------------------------------------------------------------------------
    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]:
        """One scheduler iteration (or a run of pure decode steps); return new time, done gids."""
        done: list[int] = []
        dec, pre, waiting = self.dec, self.pre, self.waiting
        if self.async_sched:
            busy = now == self._last_end and (dec or pre)
            self._visible = self._last_start if busy else now
        if self.general:
            return self._general_step(now, done), done
        nd = len(dec)
        d = self.D
        if nd:
            if nd > self.budget or (pre and self.rank[pre[0]] < dec[-1]):
                return self._general_step(now, done), done
            if (
                not pre
                and self.skip_ahead
                and self.heap[0][0] > d  # no finish in this step: a run may be possible
                and (not waiting or self._head_may_wait(waiting[0], nd))
            ):
                end = self._decode_run(now, next_arrival, done)
                if end is not None:
                    return end, done
        bs, pool, t = self.bs, self.pool, self.t
        dem = self.cnt[d % bs]
        budget = self.budget - nd
        free = pool.free - dem
        if free < 0:
            return self._general_step(now, done), done
        chunks: list[tuple[int, int]] = []
        computed, held = self.computed, self.held
        if pre:
            plen, gen = t.prompt_len, t.generated
            threshold = self.threshold
            for gid in pre:
                if budget <= 0:
                    break
                c = computed[gid]
                n = plen[gid] + gen[gid] - c
                if 0 < threshold < n:
                    n = threshold
                if n > budget:
                    n = budget
                need = -(-(c + n) // bs) - held[gid]
                if need > free:
                    return self._general_step(now, done), done
                free -= need
                chunks.append((gid, n))
                budget -= n
        # no preemption possible now: allocate in running order, then admit
        if self.caching:
            if dem:
                head = pool.queue[0]
                if head[0] == PLAIN and head[2] > dem:  # plain blocks at the head: no eviction
                    head[2] -= dem
                    pool.free -= dem
                else:
                    pool.allocate(dem)
            for gid, n in chunks:
                need = -(-(computed[gid] + n) // bs) - held[gid]
                if need:
                    pool.allocate(need)
                held[gid] += need
                if self.segs[gid]:
                    self._register(gid, computed[gid] + n)
        else:
            pool.free = free
            for gid, n in chunks:
                held[gid] = -(-(computed[gid] + n) // bs)
        if waiting:
            self._admit(budget, now, chunks, done)
        if not chunks:
            if not nd:
                if not pre and waiting and not done:
                    self._refuse_head(now, done)  # nothing runs and cannot start: vLLM hangs
                return now, done
            end = self._decode_step(now, nd, done)
            if waiting and not done and end < next_arrival and self.async_sched:
                # the head was unseen during this step; the next one sees it and nothing else
                # arrives before: schedule it now instead of a round trip through the loop
                return self.step(end, next_arrival)
            return end, done
        return self._execute_fast(now, nd, chunks, done), done

    def _head_may_wait(self, head: int, nd: int) -> bool:
        """Whether a run of decode steps is worth trying with ``head`` waiting: not when the
        scheduler sees it only next step (asynchronous scheduling: one step at a time), nor
        when it was never tried and there is room and budget (this step admits it, or records
        why not)."""
        if self.async_sched and self.t.arrival[head] > self._visible:
            return False
        return self._blocked[1] == head or nd >= self.max_num_seqs or nd >= self.budget

    def _decode_step(self, now: float, nd: int, done: list[int]) -> float:
        """A step of decodes only (the common one)."""
        d = self.D
        ctx = self.ctx_base + nd * d
        duration = self.perf.decode_time(nd, ctx)
        end = now + duration
        self._last_start, self._last_end = now, end
        pool = self.pool
        used = pool.total - pool.free
        self.log.rows.append((now, duration, "decode", nd, nd, len(self.waiting), 0, used,
                              ctx - nd, used * self.bs, 1))  # fmt: skip
        tt = self.t.token_times
        if tt is not None:
            rank_gid = self.rank_gid
            for r in self.dec:
                tt[rank_gid[r]].append(end)
        self.D = d + 1
        heap = self.heap
        if heap and heap[0][0] <= d:
            self._finish_due(end, done)
        return end

    def _refuse_head(self, now: float, done: list[int]) -> None:
        gid = self.waiting.popleft()
        t = self.t
        t.status[gid], t.finish[gid] = FAILED, now
        t.error[gid] = (
            "cannot be scheduled on an idle engine (prompt over the token budget without "
            "chunked prefill, or over the KV cache)"
        )
        done.append(gid)

    def _execute_fast(
        self, now: float, nd: int, chunks: list[tuple[int, int]], done: list[int]
    ) -> float:
        t, computed, perf = self.t, self.computed, self.perf
        ctx = self.ctx_base + nd * self.D
        pre_tok = pre_sq = pre_seqs = 0
        logical = ctx - nd
        dec_seqs, dec_ctx = nd, ctx
        plen, gen = t.prompt_len, t.generated
        for gid, n in chunks:
            c = computed[gid]
            logical += c
            if n == 1 and gen[gid] and c == plen[gid] + gen[gid] - 1:  # a resumed last token
                dec_seqs += 1
                dec_ctx += c + 1
                continue
            pre_seqs += 1
            pre_tok += n
            pre_sq += n * (2 * c + n)
        if not dec_seqs:
            kind, duration = "prefill", perf.prefill_time(pre_seqs, pre_tok, pre_sq)
        elif not pre_seqs:
            kind, duration = "decode", perf.decode_time(dec_seqs, dec_ctx)
        else:
            kind, duration = "mixed", perf.mixed_time(pre_tok, pre_sq, dec_seqs, dec_ctx)
        end = now + duration
        self._last_start, self._last_end = now, end
        used = self.pool.total - self.pool.free
        self.log.rows.append((now, duration, kind, pre_tok + dec_seqs, nd + len(self.pre),
                              len(self.waiting), 0, used, logical, used * self.bs, 1))  # fmt: skip
        tt = t.token_times
        if tt is not None and nd:
            rank_gid = self.rank_gid
            for r in self.dec:
                tt[rank_gid[r]].append(end)
        self.D = d = self.D + 1
        heap = self.heap
        if heap and heap[0][0] < d:
            self._finish_due(end, done)  # decoders come first in the running order
        target = t.target
        pre = self.pre
        for gid, n in chunks:
            c = computed[gid] + n
            computed[gid] = c
            if c == plen[gid] + gen[gid]:  # all known tokens computed: sample one
                g = gen[gid]
                if g == 0:
                    t.first_token[gid] = end
                if tt is not None:
                    tt[gid].append(end)
                gen[gid] = g + 1
                pre.remove(gid)
                if g + 1 >= target[gid]:
                    self._finish(gid, end, done)
                else:
                    self._enter(gid, g + 1)
            elif gen[gid] and c == plen[gid] + gen[gid] - 1:
                pre.remove(gid)  # a resumed request one token short: it decodes now
                self._enter(gid, gen[gid])
        return end

    def _finish(self, gid: int, now: float, done: list[int]) -> None:
        t = self.t
        self._free(gid, preempted=False)
        t.status[gid], t.finish[gid] = OK, now
        done.append(gid)

    def _finish_due(self, now: float, done: list[int]) -> None:
        heap, epoch, D = self.heap, self.epoch, self.D
        t, bs, dec, cnt, base_of = self.t, self.bs, self.dec, self.cnt, self.base
        plen, generated, status, finish = t.prompt_len, t.generated, t.status, t.finish
        caching, pool = self.caching, self.pool
        ctx_base = self.ctx_base
        while heap and heap[0][0] < D:
            _, rank, gid, ep = heapq.heappop(heap)
            if ep != epoch[gid]:
                continue
            # _leave + _finish, inlined: this runs once per request
            p, base = plen[gid], base_of[gid]
            del dec[bisect_left(dec, rank)]
            cnt[(1 - p - base) % bs] -= 1
            ctx_base -= p + base
            epoch[gid] = ep + 1
            g = D + base
            generated[gid] = g
            if caching and (self.segs[gid] or gid in self.exported):
                self.computed[gid] = p + g - 1
                self.held[gid] = -(-(p + g - 1) // bs)
                self._free(gid, preempted=False)
            elif caching:  # nothing of it can be hit again: plain blocks at the queue's tail
                held = -(-(p + g - 1) // bs)
                queue = pool.queue
                if queue and queue[-1][0] == PLAIN:
                    queue[-1][2] += held
                else:
                    queue.append([PLAIN, 0, held])
                pool.free += held
                self._changes += 1
            else:
                pool.free += -(-(p + g - 1) // bs)
                self._changes += 1
            status[gid], finish[gid] = OK, now
            done.append(gid)
        self.ctx_base = ctx_base
