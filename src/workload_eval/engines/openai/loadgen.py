"""Open-loop load generation for OpenAI-compatible servers: the schedule is kept under load.

Requests leave at *absolute* times measured from one monotonic run start (never "sleep the gap
since the last send", which lets lateness accumulate); every request is its own task over one
shared connection pool, so a slow answer never delays the next send. The lag between the
scheduled and the actual send is recorded per request; latencies are taken from the scheduled
time by the caller (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from workload_eval.contracts import Schedule
from workload_eval.dispatch import Dispatcher
from workload_eval.engines.openai.alarm import Alarm

perf = time.perf_counter
# s between two wake-ups of the pacer at least: each costs ~50 us of CPU here (epoll, the
# task switch); a wake per request at 4,000 req/s took 0.2 cores of the client and made
# the server's reads smaller. Requests due within one gap leave together (lag <= the gap).
MIN_WAKE_GAP = 0.0005
ADMIN_TIMEOUT_S = 10.0  # s: a side route (/metrics, cache reset) that takes longer is skipped


@dataclass(slots=True)
class Outcome:
    """What happened to one request; times are ``perf_counter()`` values, NaN when never reached.

    Filled in place while the request runs, so an interrupted run still has its partial state.
    """

    send_time: float = math.nan
    first_token_time: float = math.nan
    finish_time: float = math.nan
    token_times: list[float] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # streamed text, for session history
    prompt_tokens: int | None = None  # from the server's usage
    completion_tokens: int | None = None
    prompt_token_ids: list[int] | None = None  # as the server saw them, when it says (vLLM)
    status: str = "pending"  # pending | running | ok | failed
    error: str = ""
    side: str = ""  # who failed: "client" (never reached the server) | "server"
    attempts: int = 0  # sends: 2 when a stale pooled connection was met and retried fresh
    usage_mismatch: bool = False  # the server's usage disagreed with the streamed tokens

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass
class LoadResult:
    """Outcomes in schedule order (None: never sent), each scheduled send time, the run start."""

    t0: float
    outcomes: list[Outcome | None]
    scheduled: list[float]  # s from t0; NaN for a follow-up that was never scheduled
    interrupted: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0  # every client process's CPU time together
    workers: int = 1  # processes (or Ray actors) that sent the requests


SendFn = Callable[[int, Outcome], Awaitable[None]]


class _Pacer:
    """Starts each item when it is due: one alarm for the whole run, not one timer per request.

    The pacer sleeps until the earliest due time (``alarm.Alarm``: a timerfd on Linux, tens
    of microseconds late; else the loop's whole-millisecond timer), then starts every
    request that is due, so the loop never spins. A follow-up that becomes due before the
    pacer's wake-up re-sets the alarm.
    """

    def __init__(self, t0: float, spawn: Callable[[int], None]) -> None:
        self.t0, self.spawn = t0, spawn
        self.heap: list[tuple[float, int, int]] = []  # (due from t0, order, item)
        self.order = 0
        self.wake: asyncio.Future[None] | None = None
        self.alarm: Alarm | None = None
        self.target = math.inf  # the due time the alarm is set to

    def push(self, at: float, i: int) -> None:
        heapq.heappush(self.heap, (at, self.order, i))
        self.order += 1
        if at < self.target and self.alarm is not None:
            self.target = at
            self.alarm.set(self.t0 + at)

    def _ring(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def run(self, done: asyncio.Future[None]) -> None:
        """Until ``done``: start what is due, sleep to the next due time (or a push)."""
        loop = asyncio.get_running_loop()
        heap = self.heap
        self.alarm = alarm = Alarm(loop, self._ring)
        done.add_done_callback(lambda _: self._ring())
        try:
            while not done.done():
                now = perf() - self.t0
                while heap and heap[0][0] <= now:
                    self.spawn(heapq.heappop(heap)[2])
                self.target = math.inf
                if heap:  # the next due time, but not sooner than MIN_WAKE_GAP from now
                    self.target = max(heap[0][0], now + MIN_WAKE_GAP)
                    alarm.set(self.t0 + self.target)
                self.wake = loop.create_future()
                await self.wake
        finally:
            self.alarm = None
            alarm.close()


async def run_open_loop(
    schedule: Schedule,
    send: SendFn,
    *,
    max_concurrency: int | None = None,
    lead: float = 0.02,
    on_done: Callable[[int, Outcome], None] | None = None,
    on_start: Callable[[float], None] | None = None,
    t0: float | None = None,
) -> LoadResult:
    """Send every schedule item at its time through ``send`` (which fills the Outcome and never
    raises); items are indices into ``schedule.items``.

    The schedule's graph decides (``dispatch.Dispatcher``): a root leaves at its arrival time
    (from its stage's start), a follow-up when its parent ends plus think time (not before its
    own arrival time), a stage after the previous one drained; when the parent failed it is
    not sent and is recorded as failed. Cancellation (Ctrl-C) returns what was gathered.
    ``t0`` (a ``perf_counter()`` time) is the clock origin when several processes share one
    schedule (``workers.py``); by default the run starts ``lead`` seconds from now.
    """
    n = len(schedule.items)
    outcomes: list[Outcome | None] = [None] * n
    scheduled = [math.nan] * n
    dispatch = Dispatcher(schedule)
    first = dispatch.begin()  # by time
    for at, i in first:
        scheduled[i] = at
    sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    tasks: set[asyncio.Task] = set()
    remaining = n
    all_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cpu0, wall0 = time.process_time(), perf()
    t0 = perf() + lead if t0 is None else t0
    if on_start is not None:
        on_start(t0)

    def finish(i: int, out: Outcome) -> None:
        nonlocal remaining
        outcomes[i] = out
        remaining -= 1
        if on_done is not None:
            on_done(i, out)
        ended = out.finish_time - t0
        ok = out.status == "ok"
        due, failed = dispatch.finished(i, ended if ended == ended else perf() - t0, ok=ok)
        for at, c in due:
            scheduled[c] = at
            if t0 + at <= perf():  # due already (a closed loop without think time): go now
                spawn(c)
            else:
                pacer.push(at, c)
        for c in failed:
            error = f"not sent: the turn before it (item {i}) failed"
            finish(c, Outcome(status="failed", error=error, side="client"))
        if remaining == 0 and not all_done.done():
            all_done.set_result(None)

    async def one(i: int) -> None:
        out = Outcome(status="running")
        outcomes[i] = out
        try:
            if sem is None:
                await send(i, out)
            else:
                async with sem:
                    await send(i, out)
        except Exception as e:  # a bug in send must not hang the run or lose the record
            out.status, out.side = "failed", "client"
            out.error = f"client error: {type(e).__name__}: {e}"[:300]
        finish(i, out)

    def spawn(i: int) -> None:
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    pacer = _Pacer(t0, spawn)
    for at, i in first:
        pacer.push(at, i)
    interrupted = False
    try:
        if remaining:
            await pacer.run(all_done)
    except asyncio.CancelledError:
        interrupted = True
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for out in outcomes:
            if out is not None and out.status in ("pending", "running"):
                out.status, out.error = "failed", "interrupted (run cancelled)"
                out.side = "client"
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    return LoadResult(
        t0, outcomes, scheduled, interrupted, perf() - wall0, time.process_time() - cpu0
    )


def asked_tokens(body: bytes) -> int:
    """max_tokens x n of a request body (the bound its answer is checked against)."""
    p = json.loads(body)
    tokens = [p.get(k) for k in ("max_tokens", "max_completion_tokens")]
    asked = max((t for t in tokens if isinstance(t, int) and not isinstance(t, bool)), default=1)
    n = p.get("n") if isinstance(p.get("n"), int) else 1
    return max(1, asked) * max(1, n)


def admin_session() -> aiohttp.ClientSession:
    """A short-lived session for the server's side routes (/metrics, cache reset)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (less CPU per request), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
