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


class _Progress:
    """A bar over simulated seconds, advanced about every 1% of the horizon."""

    def __init__(self, horizon: float, enabled: bool) -> None:
        self.bar = None
        self.next_mark = math.inf
        if enabled:
            from tqdm.auto import tqdm

            self.horizon = max(horizon, 1e-9)
            self.bar = tqdm(
                total=round(self.horizon, 1), unit="sim s", desc="simulating", leave=False
            )
            self.shown = 0.0
            self.next_mark = self.horizon / 100

    def update(self, now: float) -> None:
        if now >= self.next_mark and self.bar is not None:
            target = round(min(now, self.horizon), 1)
            self.bar.update(target - self.shown)
            self.shown = target
            self.next_mark = now + self.horizon / 100 if now < self.horizon else math.inf

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    bar = _Progress(st[-1] if st else 0.0, progress)
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
            if now >= bar.next_mark:
                bar.update(now)
        elif nxt == inf:
            break
        else:
            now = max(now, nxt)
    bar.close()
    return now
