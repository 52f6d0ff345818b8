"""The event loop: arrivals in time order and a loop that lets the scheduler step in virtual time.

Arrivals known up front are a sorted list per load stage; follow-up turns of a session become
arrival events when their parent finishes (not before parent finish + think time, nor before
their own arrival time). With stage gaps, stage k+1's arrivals are released only once every
request of stage k has finished (inference-perf's drain barrier). In a closed loop
(``Schedule.concurrency``) only the first N roots arrive on their own; a finished request with
no follow-up releases the next root (at its finish plus that root's think time), as
``dispatch.Dispatcher`` does for the real-time engines. The scheduler does the rest.
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

from workload_eval.contracts import Schedule
from workload_eval.errors import UserError


class Scheduler(Protocol):
    """What the loop needs from a policy (vllm-0.2, vllm-v0 or vllm-v1)."""

    def add(self, gid: int, now: float) -> None: ...

    def has_work(self) -> bool: ...

    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]: ...


# ----------------------------------------------------------------- progress guard
# Every loop iteration must admit an arrival, finish a request or move virtual time
# forward. A scheduler may take a few zero-time steps (a decode step that only preempts),
# never an endless run of them: that would spin forever, so it is an error instead.
STALL_LIMIT = 10_000


class NoProgressError(UserError):
    """The scheduler stopped making progress: with the settings given (found so far: a
    negative max_paddings, a NaN arrival time) nothing it holds can ever be scheduled."""

    def __init__(self, before: float, after: float, scheduler: object) -> None:
        waiting = len(getattr(scheduler, "waiting", ()))
        running = len(getattr(scheduler, "running", ()))
        super().__init__(
            f"the simulator made no progress at t={before:.6g} s (next time {after!r}; "
            f"{waiting} waiting, {running} running): the engine settings can never schedule "
            "these requests; if they look valid this is a bug, please report it"
        )


class _Stages:
    """Which requests are released when (from the schedule's graph): roots per stage,
    children per parent, and how many requests of each stage are still to finish."""

    def __init__(self, schedule: Schedule) -> None:
        items, graph = schedule.items, schedule.graph
        stage_of = list(graph.stage_of)
        self.count = len(graph.stage_roots)
        self.stage_of = stage_of
        self.offset = [float(it.arrival_time) for it in items]
        self.roots: list[list[tuple[float, int]]] = [
            [(self.offset[g], g) for g in roots] for roots in graph.stage_roots
        ]
        self.children: dict[int, tuple[int, ...]] = (
            {gid: cs for gid, cs in enumerate(graph.children) if cs} if graph.has_follow_ups else {}
        )
        # closed loop: the roots no user has taken yet, in order (the first N start at once)
        self.users = schedule.concurrency
        self.queue: list[int] = []
        if self.users is not None and self.roots:
            self.queue = [g for _, g in self.roots[0][self.users :]]
            self.roots[0] = self.roots[0][: self.users]
        closed = self.users is not None
        self.think = [float(it.think_time) for it in items] if self.children or closed else []
        self.remaining = [0] * self.count
        if self.count == 1:
            self.remaining[0] = len(stage_of)
        else:
            for s in stage_of:
                self.remaining[s] += 1
        self.start: list[float] = [math.nan] * self.count
        self.parent_end: dict[int, float] = {}  # child gid -> when its parent finished

    def horizon(self, gap: float) -> float:
        if self.users is not None:  # a closed loop's end is not known ahead: none
            return 0.0
        return sum((r[-1][0] if r else 0.0) + gap for r in self.roots)


def simulate(
    schedule: Schedule,
    scheduler: Scheduler,
    finish: list[float],
    *,
    progress: bool = False,
) -> float:
    """Run every request of ``schedule`` to completion; return the simulated end time.

    ``gid`` is a request's position in ``schedule.items``; ``schedule.graph`` says which
    arrive on their own (per stage) and which a finished request releases (follow-ups).
    """
    staged = schedule.stage_gap_s is not None
    gap = float(schedule.stage_gap_s or 0.0)
    stages = _Stages(schedule)
    # a bar over simulated seconds up to the last arrival, redrawn once time passes `mark`
    bar, mark, horizon = None, math.inf, stages.horizon(gap)
    if progress:
        from workload_eval.console import progress_bar

        bar = progress_bar(horizon, description="simulating", unit="sim s")
        mark = bar.next_mark
    inf = math.inf
    follow: list[tuple[float, int]] = []  # heap of released follow-up turns
    children, stage_of, offset = stages.children, stages.stage_of, stages.offset
    queue, think = stages.queue, stages.think
    closed = stages.users is not None
    nq = 0  # closed loop: roots taken from the queue so far
    st: list[float] = []
    sg: list[int] = []
    i = ns = 0
    cur = -1  # the stage whose roots are being released

    def start_stage(k: int, at: float) -> None:
        nonlocal st, sg, i, ns, cur
        cur = k
        stages.start[k] = at
        roots = stages.roots[k]
        st = [at + off for off, _ in roots]
        sg = [g for _, g in roots]
        i, ns = 0, len(st)
        for child, parent_end in list(stages.parent_end.items()):
            if stage_of[child] == k:
                del stages.parent_end[child]
                release(child, parent_end)

    def release(child: int, parent_end: float) -> None:
        at = max(stages.start[stage_of[child]] + offset[child], parent_end + stages.think[child])
        heapq.heappush(follow, (at, child))

    def drained_until(k: int, at: float) -> None:
        """Start every stage after k whose predecessors are drained (empty stages chain on)."""
        while stages.remaining[k] == 0 and k + 1 < stages.count:
            at += gap
            start_stage(k + 1, at)
            k += 1

    if stages.count:
        start_stage(0, 0.0)
        if staged:
            drained_until(0, 0.0)
    add, step, has_work = scheduler.add, scheduler.step, scheduler.has_work
    remaining = stages.remaining
    now = 0.0
    stalled = 0  # progress guard: iterations in a row that moved nothing
    try:  # the bar is closed however the loop ends (Ctrl-C, an error)
        while True:
            # admit every arrival due by now, in time order
            if follow:
                while True:
                    ts = st[i] if i < ns else inf
                    tf = follow[0][0] if follow else inf
                    if ts <= tf:
                        if ts > now:
                            break
                        add(sg[i], ts)
                        i += 1
                    else:
                        if tf > now:
                            break
                        add(heapq.heappop(follow)[1], tf)
                nxt = min(st[i] if i < ns else inf, follow[0][0] if follow else inf)
            else:
                while i < ns and st[i] <= now:
                    add(sg[i], st[i])
                    i += 1
                nxt = st[i] if i < ns else inf
            if has_work():
                before = now
                now, done = step(now, nxt)
                # -- progress guard (see NoProgressError) --
                if not now > before and not done:
                    stalled += 1
                    if not now >= before or stalled > STALL_LIMIT:
                        raise NoProgressError(before, now, scheduler)
                else:
                    stalled = 0
                if done and (children or staged or closed):
                    last = -inf
                    for gid in done:
                        end = finish[gid] if finish[gid] == finish[gid] else now
                        kids = children.get(gid, ())
                        for child in kids:
                            if stages.start[stage_of[child]] == stages.start[stage_of[child]]:
                                release(child, end)
                            else:
                                stages.parent_end[child] = end
                        if closed and not kids and nq < len(queue):
                            root = queue[nq]  # the user is free: the next root is due
                            nq += 1
                            heapq.heappush(follow, (max(offset[root], end + think[root]), root))
                        if staged:
                            remaining[stage_of[gid]] -= 1
                            if end > last:
                                last = end
                    if staged and remaining[cur] == 0:
                        drained_until(cur, last)
                if now >= mark and bar is not None:
                    bar.update_to(min(now, horizon))
                    mark = bar.next_mark if now < horizon else inf
            elif nxt == inf:
                break
            elif nxt > now:
                now = nxt
            else:  # an arrival that is due but was not admitted (a NaN time): no progress
                raise NoProgressError(now, nxt, scheduler)
    finally:
        if bar is not None:
            bar.close()
    return now
