"""vLLM 0.2's decode-step walk over the running groups: ``can_append_slot`` needs one free
block per running sequence of a group; when it fails the newest running group is preempted
(recomputation), or the group itself when it is the last one."""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from workload_eval.engines.sim.kv_cache import group_blocks

if TYPE_CHECKING:
    from workload_eval.engines.sim.policy_v02 import V02Scheduler


class PreemptionWalk:
    """Mixed into V02Scheduler; see the module docstring."""

    def _walk(self: V02Scheduler) -> int:
        """vLLM 0.2.1's decode-step walk over every running group, in arrival order."""
        t, D, bs, running = self.t, self.D, self.bs, self.running
        free = self.pool.free
        i = 0
        while i < len(running):
            gid = self.rank_gid[running[i]]
            n = t.n[gid]
            held = self._held(gid)
            need = group_blocks(t.prompt_len[gid], D + self.base[gid], n, bs) - held
            preempted_self = False
            while free < n:  # can_append_slot: one free block per running sequence
                if len(running) - 1 > i:
                    free += self._preempt_last()
                else:
                    free += self._preempt_last()
                    preempted_self = True
                    break
            if preempted_self:
                break
            free -= need
            i += 1
        return free

    def _walk_fast(self: V02Scheduler) -> int:
        """The same walk when every running group has n = 1: visit only groups needing a block.

        With one sequence per group the check fails exactly when no block is free, so the walk
        is decided by the groups that allocate (this step's phase bucket) and the newest ones.
        """
        running = self.running
        free = self.pool.free
        pend = sorted(self.members[self.D % self.bs])
        pi = 0
        pos = -1
        while True:
            if free >= 1:
                if pi >= len(pend):
                    break
                pos = pend[pi]
                pi += 1
                free -= 1
                continue
            idx = bisect_right(running, pos)
            if idx >= len(running):
                break
            j = running[idx]
            preempted_self = False
            while free < 1:
                if running[-1] != j:
                    v = running[-1]
                    free += self._preempt_last()
                    if pend and pend[-1] == v:
                        pend.pop()
                else:
                    free += self._preempt_last()
                    preempted_self = True
                    break
            if preempted_self:
                break
            if pi < len(pend) and pend[pi] == j:
                pi += 1
                free -= 1
            pos = j
        return free
