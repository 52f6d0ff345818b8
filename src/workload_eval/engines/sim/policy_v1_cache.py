"""The V1 scheduler's prefix-cache bookkeeping: lookups, registrations and frees of blocks.

A request's prompt blocks that lie inside its shared segments have ids (``prefix_cache``);
its own blocks (prompt remainder, generated tokens) are counted, not named, unless a later
prompt repeats its answer. Mixed into ``V1Scheduler``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workload_eval.engines.sim.policy_v1 import V1Scheduler


class PrefixCachePaths:
    """Mixed into V1Scheduler; see the module docstring."""

    def _free(self: V1Scheduler, gid: int, preempted: bool) -> None:
        """Return a request's blocks to the pool (vLLM frees the last block first)."""
        held, pool = self.held[gid], self.pool
        self.held[gid] = 0
        self._changes += 1
        if not self.caching:
            pool.free += held
            return
        refs = self.refs[gid]
        nseg = len(self.segs[gid])
        if not nseg and not refs and not preempted and gid not in self.exported:
            pool.free_plain(held)  # nothing of it can be hit again
            return
        full = self.computed[gid] // self.bs
        own = max(0, min(full, held) - nseg)
        if preempted:
            pool.free_plain(held - len(refs) - own)
            pool.free_own(gid, own)
        elif gid in self.exported and self.hasher is not None and own:
            pool.free_plain(held - len(refs) - own)
            ids = self.hasher.block_ids(self._own_segments(gid))
            for j in range(min(nseg + own, len(ids)) - 1, nseg - 1, -1):
                pool.add_cached_free(ids[j])
        else:
            pool.free_plain(held - len(refs))
        pool.release_all(refs[::-1])
        self.refs[gid] = self._none
        self.reg_upto[gid] = 0

    def _own_segments(self: V1Scheduler, gid: int) -> tuple[tuple[str, int], ...]:
        """Its prompt and generated tokens as segments, the way later prompts repeat them."""
        before, key, offset = self.exported[gid]
        return (*before, (key, offset + self.t.generated[gid]))

    def _register(self: V1Scheduler, gid: int, upto_tokens: int) -> None:
        """Cache the segment blocks a chunk completes (vLLM caches them when it schedules)."""
        segs = self.segs[gid]
        stop = min(len(segs), upto_tokens // self.bs)
        pool, refs = self.pool, self.refs[gid]
        for j in range(self.reg_upto[gid], stop):
            block = segs[j]
            if not pool.cached(block):
                pool.register(block)
                refs.append(block)
                self._changes += 1
        if stop > self.reg_upto[gid]:
            self.reg_upto[gid] = stop

    def _lookup(self: V1Scheduler, gid: int, tokens: int) -> tuple[int, int, int]:
        """(cached segment blocks, own blocks reused, free-queue blocks the hit takes)."""
        pool = self.pool
        segs = self.segs[gid]
        limit = (tokens - 1) // self.bs
        stop = min(len(segs), limit)
        h = cost = 0
        ref = pool.ref
        while h < stop:
            r = ref.get(segs[h])
            if r is None:
                break
            if r == 0:
                cost += 1
            h += 1
        own = 0
        if h == len(segs) and h < limit:
            own = min(pool.own_cached(gid), limit - h)
            cost += own
        return h, own, cost
