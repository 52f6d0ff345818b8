"""The event loop: a heap of arrivals and a loop that lets the scheduler step in virtual time.

Arrivals known up front (the schedule graph's roots) are a sorted list; follow-up turns of a
session become arrival events when their parent finishes (parent finish + think time). The
scheduler does the rest.
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

from workload_eval.contracts import Schedule


class Scheduler(Protocol):
    """What the loop needs from a policy (vllm-0.2 or vllm-v1)."""

    def add(self, gid: int, now: float) -> None: ...

    def has_work(self) -> bool: ...

    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]: ...


def simulate(
    schedule: Schedule,
    scheduler: Scheduler,
    finish: list[float],
    *,
    progress: bool = False,
) -> float:
    """Run every request to completion; return the simulated end time.

    ``gid`` is a request's position in ``schedule.items``; the schedule's graph says which
    arrive on their own (roots) and which a finished request releases (follow-ups).
    """
    items, graph = schedule.items, schedule.graph
    children: dict[int, list[tuple[int, float]]] = {
        gid: [(c, items[c].think_time) for c in cs] for gid, cs in enumerate(graph.children) if cs
    }
    follow: list[tuple[float, int]] = []  # heap of session follow-ups
    st = [float(items[g].arrival_time) for g in graph.roots]
    sg = list(graph.roots)
    # a bar over simulated seconds up to the last arrival, redrawn once time passes `mark`
    bar, mark, horizon = None, math.inf, st[-1] if st else 0.0
    if progress:
        from workload_eval.console import progress_bar

        bar = progress_bar(horizon, description="simulating", unit="sim s")
        mark = bar.next_mark
    inf = math.inf
    i, ns = 0, len(st)
    add, step, has_work = scheduler.add, scheduler.step, scheduler.has_work
    now = 0.0
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
            now, done = step(now, nxt)
            if children and done:
                for gid in done:
                    for child, think in children.get(gid, ()):
                        parent_end = finish[gid] if finish[gid] == finish[gid] else now
                        heapq.heappush(follow, (parent_end + think, child))
            if now >= mark and bar is not None:
                bar.update_to(min(now, horizon))
                mark = bar.next_mark if now < horizon else inf
        elif nxt == inf:
            break
        else:
            now = max(now, nxt)
    if bar is not None:
        bar.close()
    return now
