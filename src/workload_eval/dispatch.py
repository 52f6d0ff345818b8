"""When schedule items become due as requests finish: the schedule graph's rules in real time.

A root is due at its stage's start plus its ``arrival_time``; a follow-up at the later of that
and its parent's end plus ``think_time``; with stages (``Schedule.stage_gap_s``), stage k+1
starts ``stage_gap_s`` after every request of stage k finished (inference-perf's drain
barrier). In a closed loop (``Schedule.concurrency`` = N users) only the first N roots are
due at the start; each finished request with no follow-up frees its user, and the next root
in order is due at the later of its arrival time and that finish plus the root's
``think_time`` (its intended send time). The engines that run in real time (vllm, openai)
ask a Dispatcher; the simulator's event loop applies the same rules inline on its hot path
(``engines/sim/loop.py``).
"""

from __future__ import annotations

import math
from collections import deque

from workload_eval.contracts import Schedule

Due = list[tuple[float, int]]  # (time from the run's start, item position)


class Dispatcher:
    """One run's release state: call :meth:`begin` once, then :meth:`finished` per request."""

    def __init__(self, schedule: Schedule) -> None:
        self.items, self.graph = schedule.items, schedule.graph
        self.staged = schedule.stage_gap_s is not None
        self.gap = float(schedule.stage_gap_s or 0.0)
        stages = len(self.graph.stage_roots)
        self.started = [math.nan] * stages  # when each stage started (NaN: not yet)
        self.remaining = [0] * stages  # requests of each stage still to finish
        for k in self.graph.stage_of:
            self.remaining[k] += 1
        self.last_end = [-math.inf] * stages
        self.waiting: dict[int, float] = {}  # follow-up -> parent's end, its stage not started
        self.current = -1
        self.users = schedule.concurrency  # closed loop: users; None = open loop
        self.queue: deque[int] = deque()  # closed loop: roots no user has taken yet

    def begin(self) -> Due:
        """What is due from the start (stage 0's roots, and any empty stages after it)."""
        if not self.started:
            return []
        if self.users is not None:  # a closed loop has one stage (checked by the graph)
            self.current, self.started[0] = 0, 0.0
            roots = self.graph.stage_roots[0]
            self.queue.extend(roots[self.users :])
            return sorted((float(self.items[i].arrival_time), i) for i in roots[: self.users])
        due = self._open(0, 0.0)
        return sorted(due + self._drained(0, 0.0))

    def finished(self, item: int, end: float, *, ok: bool = True) -> tuple[Due, list[int]]:
        """``item`` left the engine at ``end``: what became due, and the follow-ups that will
        never be sent because ``item`` failed (``ok=False``; report each back as finished)."""
        due: Due = []
        failed: list[int] = []
        stage_of = self.graph.stage_of
        for c in self.graph.children[item]:
            if not ok:
                failed.append(c)
            elif self.started[stage_of[c]] == self.started[stage_of[c]]:
                due.append((self._due(c, end), c))
            else:
                self.waiting[c] = end
        if self.users is not None and not self.graph.children[item] and self.queue:
            nxt = self.queue.popleft()  # the user is free: it takes the next root
            due.append((self._due(nxt, end), nxt))
        if self.staged:
            k = stage_of[item]
            self.remaining[k] -= 1
            self.last_end[k] = max(self.last_end[k], end)
            if k == self.current and self.remaining[k] == 0:
                due += self._drained(k, self.last_end[k])
        return due, failed

    def _due(self, item: int, parent_end: float) -> float:
        it = self.items[item]
        start = self.started[self.graph.stage_of[item]] + float(it.arrival_time)
        return max(start, parent_end + float(it.think_time))

    def _open(self, stage: int, at: float) -> Due:
        self.current, self.started[stage] = stage, at
        due = [(at + float(self.items[i].arrival_time), i) for i in self.graph.stage_roots[stage]]
        for c, end in list(self.waiting.items()):
            if self.graph.stage_of[c] == stage:
                del self.waiting[c]
                due.append((self._due(c, end), c))
        return due

    def _drained(self, stage: int, at: float) -> Due:
        """Open every stage after ``stage`` whose predecessors have drained (empty ones chain)."""
        due: Due = []
        while self.staged and self.remaining[stage] == 0 and stage + 1 < len(self.started):
            at += self.gap
            stage += 1
            due += self._open(stage, at)
        return due


__all__ = ["Dispatcher", "Due"]
