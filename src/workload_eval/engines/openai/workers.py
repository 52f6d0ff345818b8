"""One open-loop schedule over several load workers: one plan, one clock, one record.

One Python process keeps about 2,000 requests/s of a schedule (benchmarks/loadgen.py); past
that the client, not the server, would be measured. So the plan is built once, here, and
split: the requests in send-time order are dealt round-robin, each of W workers getting every
W-th (its share keeps the schedule's shape at 1/W of the rate, interleaved with the others).
Every worker is started and handed its share first; only when all of them are ready is the
origin ``t0`` fixed, a little ahead, and sent to all, so each sends at ``t0 + arrival_time``
exactly as the single process would. Their outcomes come back by schedule position and are
merged into one ``LoadResult``: dispatch lag, achieved rate and every latency are measured
as for one process. Workers are processes on this machine (this module) or Ray actors on a
cluster (ray_workers.py). Only a plain open loop splits: follow-ups, load stages and closed
loops need one dispatcher that sees every finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable

from workload_eval.contracts import Schedule
from workload_eval.engines.openai import loadgen
from workload_eval.engines.openai.options import OpenAIOptions
from workload_eval.engines.openai.plan import RequestPlan
from workload_eval.engines.openai.worker import frame_share
from workload_eval.engines.openai.worker_wire import (
    Share,
    WireError,
    WorkerResult,
    decode_results,
    encode_share,
)
from workload_eval.errors import UserError

perf = time.perf_counter
# s between "every worker is ready" and the first send: the "go" line reaches each worker and
# its first requests are queued well before they are due
START_LEAD_S = 0.2
READY_TIMEOUT_S = 120.0  # a worker that has not parsed its share by then is broken
STOP_TIMEOUT_S = 30.0  # after Ctrl-C, how long workers get to send what they gathered


def check_splittable(schedule: Schedule, opts: OpenAIOptions) -> None:
    """Several workers need a plain open loop; anything else is a one-line UserError."""
    graph = schedule.graph
    why = ""
    if schedule.concurrency is not None:
        why = "a closed loop (--concurrency) releases each request at another's finish"
    elif graph.has_follow_ups:
        why = "its follow-up turns are released by their parents' finishes"
    elif schedule.stage_gap_s is not None:
        why = "its load stages wait for the previous stage to drain"
    elif opts.max_concurrency is not None:
        why = "--max-concurrency caps requests in flight across the whole run"
    if why:
        raise UserError(
            f"openai option workers={opts.workers}: several load workers split an open-loop "
            f"schedule only, and {why}; use workers=1"
        )


def split(plan: RequestPlan, headers: dict[str, str], n: int) -> list[Share]:
    """Deal the requests, in send-time order, round-robin over ``n`` shares."""
    items = plan.schedule.items
    order = sorted(range(len(items)), key=lambda i: (items[i].arrival_time, i))
    timeout = plan.opts.request_timeout
    shares = [Share(plan.url, headers, plan.chat, timeout) for _ in range(n)]
    for k, i in enumerate(order):
        body = plan.bodies[i]
        assert body is not None  # an open loop without follow-ups has every body up front
        shares[k % n].items.append((i, float(items[i].arrival_time), body))
        plan.bodies[i] = None  # the share holds it now
    return [s for s in shares if s.items]


def merge(
    schedule: Schedule,
    t0: float,
    shares: list[Share],
    results: list[WorkerResult | str],
    *,
    wall_s: float,
    cpu_s: float,
    cancelled: bool,
) -> loadgen.LoadResult:
    """Every worker's outcomes by schedule position; a worker that died fails its rest.
    ``cpu_s``: the parent's own CPU time (the workers' is added); ``wall_s``: the parent's
    wall time, used only when no worker reported its sending window."""
    n = len(schedule.items)
    outcomes: list[loadgen.Outcome | None] = [None] * n
    interrupted = cancelled
    for k, (share, res) in enumerate(zip(shares, results, strict=True)):
        got = res.outcomes if isinstance(res, WorkerResult) else {}
        why = res if isinstance(res, str) else "the worker stopped before reporting it"
        if isinstance(res, WorkerResult):
            interrupted |= res.interrupted
            cpu_s += res.cpu_s
        for i, _, _ in share.items:
            out = got.get(i)
            if out is None:
                out = loadgen.Outcome(status="failed", error=f"load worker {k}: {why}"[:300])
            outcomes[i] = out
    scheduled = [float(it.arrival_time) for it in schedule.items]
    # the sending window: the longest worker's (as one process's); start-up is not in it
    walls = [res.wall_s for res in results if isinstance(res, WorkerResult) and res.wall_s > 0]
    wall_s = max(walls, default=wall_s)
    result = loadgen.LoadResult(t0, outcomes, scheduled, interrupted, wall_s, cpu_s)
    result.workers = len(shares)
    return result


async def _start(share: Share) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workload_eval.engines.openai.worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(frame_share(encode_share(share)))
    await proc.stdin.drain()
    return proc


async def _ready(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
    except TimeoutError:
        raise UserError(
            f"openai: a load worker was not ready within {READY_TIMEOUT_S:g} s"
        ) from None
    if line != b"ready\n":
        err = (await proc.stderr.read()).decode(errors="replace").strip().splitlines()
        tail = err[-1] if err else f"exit code {await proc.wait()}"
        raise UserError(f"openai: a load worker did not start: {tail}"[:400])


async def _collect(proc: asyncio.subprocess.Process, share: Share, t0: float) -> WorkerResult | str:
    """The worker's results (or why there are none) once it has exited."""
    assert proc.stdout is not None and proc.stderr is not None
    out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
    code = await proc.wait()
    try:
        res = decode_results(out.splitlines(), t0, {i for i, _, _ in share.items})
    except WireError as e:
        return f"unreadable results ({e})"
    if not res.complete:
        lines = err.decode(errors="replace").strip().splitlines()
        return f"exited with code {code}" + (f": {lines[-1]}" if lines else "")
    return res


async def run_in_processes(
    plan: RequestPlan,
    headers: dict[str, str],
    n: int,
    *,
    on_start: Callable[[float], None] | None = None,
) -> loadgen.LoadResult:
    """Run ``plan`` (an open loop) split over ``n`` worker processes on this machine."""
    cpu0, wall0 = time.process_time(), perf()
    shares = split(plan, headers, n)
    procs: list[asyncio.subprocess.Process] = []
    try:
        for share in shares:
            procs.append(await _start(share))
        await asyncio.gather(*(_ready(p) for p in procs))
    except BaseException as e:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        if not isinstance(e, asyncio.CancelledError):
            raise
        current = asyncio.current_task()  # Ctrl-C before the start: nothing was sent
        if current is not None:
            current.uncancel()
        why = "not sent (interrupted before the workers started)"
        return merge(
            plan.schedule,
            perf(),
            shares,
            [why] * len(shares),
            wall_s=perf() - wall0,
            cpu_s=time.process_time() - cpu0,
            cancelled=True,
        )
    t0 = perf() + START_LEAD_S
    if on_start is not None:
        on_start(t0)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"go {t0!r}\n".encode())
        await p.stdin.drain()
    collecting = [
        asyncio.ensure_future(_collect(p, s, t0)) for p, s in zip(procs, shares, strict=True)
    ]
    cancelled = False
    try:
        await asyncio.wait(collecting)  # unlike gather, a Ctrl-C here leaves them running
        results = [c.result() for c in collecting]
    except asyncio.CancelledError:  # Ctrl-C: the workers stop and send what they gathered
        cancelled = True
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT)
        done, _ = await asyncio.wait(collecting, timeout=STOP_TIMEOUT_S)
        results = [
            c.result() if c in done else "stopped without results after Ctrl-C" for c in collecting
        ]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    return merge(
        plan.schedule,
        t0,
        shares,
        results,
        wall_s=perf() - wall0,
        cpu_s=time.process_time() - cpu0,
        cancelled=cancelled,
    )


__all__ = ["check_splittable", "merge", "run_in_processes", "split"]
