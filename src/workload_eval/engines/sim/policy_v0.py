"""vLLM V0's scheduler with chunked prefill (0.4-0.10, ``_schedule_chunked_prefill``).

Differences from V1, read from ``vllm/core/scheduler.py`` and the block managers of that era:
- a waiting request is admitted with blocks for its whole prompt (``can_allocate``, keeping the
  1% watermark free), then its prompt is computed in chunks of the remaining token budget;
- a running request (decode or prompt chunk) needs one free block to be scheduled
  (``can_append_slots`` counts one touched block per sequence), else the last running request
  is preempted by recomputation (or the request itself when it is the last);
- waiting requests are admitted even in a step that preempted (swapped requests are never
  simulated: preemption is by recomputation).
Without chunked prefill V0 is ``V02Scheduler(padding=False)``. Every step here is the literal
per-request walk; V0 configurations are rare next to V1's, so the fast path is not repeated.
"""

from __future__ import annotations

from workload_eval.engines.sim.kv_cache import WATERMARK
from workload_eval.engines.sim.policy_v1 import V1Scheduler
from workload_eval.engines.sim.sequence import FAILED, IGNORED


class V0ChunkedScheduler(V1Scheduler):
    """V0 chunked prefill: whole-prompt allocation with a watermark, FCFS chunks and decodes."""

    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]:
        done: list[int] = []
        return self._v0_step(now, done), done

    def _v0_step(self, now: float, done: list[int]) -> float:
        t, bs, pool = self.t, self.bs, self.pool
        plen, gen, computed, held = t.prompt_len, t.generated, self.computed, self.held
        running = self._explicit_running()
        budget = self.budget
        chunks: list[tuple[int, int]] = []
        preempted = 0
        i = 0
        while i < len(running) and budget > 0:
            gid = running[i]
            c = computed[gid]
            n = min(plen[gid] + gen[gid] - c, budget)
            if n <= 0:
                i += 1
                continue
            if pool.free < 1:  # can_append_slots: one touched block per sequence
                freed, scheduled = self._make_room(running, gid, 1)
                preempted += freed
                if not scheduled:
                    break
            need = max(0, -(-(c + n) // bs) - held[gid])
            pool.free -= need
            held[gid] += need
            chunks.append((gid, n))
            budget -= n
            i += 1
        self.pre = running
        self._admit_v0(budget, now, chunks, done)
        return self._execute_explicit(now, chunks, preempted, done)

    def _admit_v0(self, budget: int, now: float, chunks: list, done: list[int]) -> None:
        t, bs, pool, waiting = self.t, self.bs, self.pool, self.waiting
        watermark = int(WATERMARK * pool.total)
        limit = self.max_model_len
        while waiting and budget > 0 and len(self.pre) < self.max_num_seqs:
            gid = waiting[0]
            tokens = t.prompt_len[gid] + t.generated[gid]
            need = -(-tokens // bs)
            if tokens > limit or pool.total - need < watermark:
                waiting.popleft()
                status, why = (
                    (IGNORED, f"prompt of {tokens} tokens exceeds max_model_len {limit}")
                    if tokens > limit
                    else (FAILED, f"needs {need} KV blocks; the cache has {pool.total}")
                )
                t.status[gid], t.finish[gid], t.error[gid] = status, now, why
                done.append(gid)
                continue
            if pool.free - need < watermark:
                break
            waiting.popleft()
            pool.free -= need
            n = min(tokens, budget)
            self.rank[gid] = len(self.rank_gid)
            self.rank_gid.append(gid)
            self.computed[gid] = 0
            self.held[gid] = need
            self.pre.append(gid)
            chunks.append((gid, n))
            budget -= n
