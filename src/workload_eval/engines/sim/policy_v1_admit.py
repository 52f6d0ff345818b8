"""The V1 scheduler's admission: waiting requests (FCFS) into the running tail, while the
token budget, ``max_num_seqs`` and free blocks allow (no watermark); with prefix caching a
request starts after its longest cached block chain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workload_eval.engines.sim.prefix_cache import PLAIN
from workload_eval.engines.sim.sequence import IGNORED

if TYPE_CHECKING:
    from workload_eval.engines.sim.policy_v1 import V1Scheduler


class Admission:
    """Mixed into V1Scheduler; see the module docstring."""

    def _admit(
        self: V1Scheduler, budget: int, now: float, chunks: list[tuple[int, int]], done: list[int]
    ) -> int:
        """Admit waiting requests (FCFS) into the running tail; return the budget left."""
        waiting = self.waiting
        if not waiting or budget <= 0:
            return budget
        head = waiting[0]
        if self.async_sched and self.t.arrival[head] > self._visible:
            return budget  # not seen yet by the scheduler (asynchronous scheduling)
        blocked = self._blocked
        if (
            blocked[1] == head
            and blocked[0] == self._changes + self.pool.evicted_cached
            and budget >= blocked[2]
        ):
            return budget  # nothing changed since the head last failed with less budget
        t, bs, pool = self.t, self.bs, self.pool
        plen, gen = t.prompt_len, t.generated
        caching, threshold, pre = self.caching, self.threshold, self.pre
        room = self.max_num_seqs - len(pre) - len(self.dec)
        visible = self._visible if self.async_sched else now
        while waiting and budget > 0 and room > 0:
            gid = waiting[0]
            if t.arrival[gid] > visible:
                break  # not seen yet by the scheduler (asynchronous scheduling)
            tokens = plen[gid] + gen[gid]
            if tokens > self.max_model_len:
                waiting.popleft()
                t.status[gid], t.finish[gid] = IGNORED, now
                t.error[gid] = (
                    f"prompt of {tokens} tokens exceeds max_model_len {self.max_model_len}"
                )
                done.append(gid)
                continue
            h = own = cost = 0
            if caching and (self.segs[gid] or pool.own):
                h, own, cost = self._lookup(gid, tokens)
            hit = (h + own) * bs
            n = tokens - hit
            if 0 < threshold < n:
                n = threshold
            if n > budget:
                if not self.chunked:
                    break
                n = budget
            need = -(-(hit + n) // bs) - h - own
            if need + cost > pool.free:
                self._blocked = (self._changes + pool.evicted_cached, gid, budget)
                break
            waiting.popleft()
            if caching:
                if not t.preemptions[gid]:  # counted at admission, as vLLM does
                    self.cache_queries += tokens
                    self.cache_hits += hit
                segs = self.segs[gid]
                if h or own:
                    self._changes += 1  # touched blocks cost the next head nothing now
                    pool.touch_all(segs[:h])
                if pool.own:
                    pool.take_own(gid, own)
                head = pool.queue[0] if need else None
                if head is not None and head[0] == PLAIN and head[2] > need:
                    head[2] -= need  # plain blocks at the head: no eviction
                    pool.free -= need
                else:
                    pool.allocate(need)
                if segs:
                    self.refs[gid] = segs[:h]
                    self.reg_upto[gid] = h
                    self._register(gid, hit + n)
            else:
                pool.free -= need
            self.rank[gid] = len(self.rank_gid)
            self.rank_gid.append(gid)
            self.computed[gid] = hit
            self.held[gid] = h + own + need
            pre.append(gid)
            chunks.append((gid, n))
            budget -= n
            room -= 1
        return budget
