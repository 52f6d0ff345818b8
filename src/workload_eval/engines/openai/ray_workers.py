"""Load workers as Ray actors, for more load than one machine's cores can send.

The same split and merge as workers.py, and the same worker (worker.serve), in an actor per
share. Machines share no monotonic clock, so the origin travels as wall-clock time
(``time.time()``, NTP-synchronized) and each actor turns it into its own ``perf_counter()``
origin: on one machine the dispatch lag is exact, across machines it also holds the clocks'
offset (typically well under a millisecond with NTP; check ``chronyc tracking``). Shares and
results cross Ray as bytes in worker_wire's format: Ray's own transport serializes them, no
object of ours is pickled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from workload_eval.engines.openai import loadgen
from workload_eval.engines.openai.plan import RequestPlan
from workload_eval.engines.openai.worker import serve
from workload_eval.engines.openai.worker_wire import (
    WireError,
    WorkerResult,
    decode_results,
    decode_share,
    encode_share,
)
from workload_eval.engines.openai.workers import merge, split
from workload_eval.errors import UserError
from workload_eval.gc_pause import gc_paused

perf = time.perf_counter
# s between "every actor holds its share" and the first send: the go call reaches each
# actor through Ray's scheduler, slower than a pipe
RAY_START_LEAD_S = 1.0


class LoadActor:
    """One share of the plan, sent from inside a Ray actor's process."""

    def __init__(self) -> None:
        self.share = None

    def prepare(self, share: bytes) -> int:
        self.share = decode_share(share)
        return len(self.share.items)

    def go(self, t0_wall: float) -> bytes:
        """Send at ``t0_wall`` (wall clock) + each item's time; the result lines as bytes."""
        assert self.share is not None
        t0 = perf() + (t0_wall - time.time())
        lines: list[bytes] = []
        with gc_paused(), asyncio.Runner(loop_factory=loadgen.new_event_loop) as runner:
            runner.run(serve(self.share, t0, lines.append))
        return b"".join(lines)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(
            "openai option worker_backend=ray: Ray is not installed "
            "(pip install 'llm-workload-eval[ray]')"
        ) from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` (None: RAY_ADDRESS or a new local instance); True if we started it."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"openai option ray_address={address}: cannot connect ({e})") from None
    return True


async def run_in_actors(
    plan: RequestPlan,
    headers: dict[str, str],
    n: int,
    *,
    address: str | None = None,
    on_start: Callable[[float], None] | None = None,
) -> loadgen.LoadResult:
    """Run ``plan`` (an open loop) split over ``n`` Ray actors (one CPU each)."""
    ray = _ray()
    started = _connect(ray, address)
    cpu0, wall0 = time.process_time(), perf()
    shares = split(plan, headers, n)
    actor = ray.remote(num_cpus=1)(LoadActor)
    actors = [actor.remote() for _ in shares]
    cancelled = False
    try:
        await asyncio.gather(
            *(a.prepare.remote(encode_share(s)) for a, s in zip(actors, shares, strict=True))
        )
        t0_wall = time.time() + RAY_START_LEAD_S
        t0 = perf() + (t0_wall - time.time())
        if on_start is not None:
            on_start(t0)
        refs = [a.go.remote(t0_wall) for a in actors]
        raw: list[bytes | str] = []
        try:  # an actor that died fails its share; the others are kept
            got = await asyncio.gather(*refs, return_exceptions=True)
            raw = [g if isinstance(g, bytes) else f"ray: {type(g).__name__}: {g}" for g in got]
        except asyncio.CancelledError:
            cancelled = True
            raw = ["stopped by Ctrl-C (a Ray actor's partial results are lost)"] * len(refs)
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
    results: list[WorkerResult | str] = []
    for share, data in zip(shares, raw, strict=True):
        if isinstance(data, str):
            results.append(data)
            continue
        try:
            results.append(decode_results(data.splitlines(), t0, {i for i, _, _ in share.items}))
        except WireError as e:
            results.append(f"unreadable results ({e})")
    return merge(
        plan.schedule,
        t0,
        shares,
        results,
        wall_s=perf() - wall0,
        cpu_s=time.process_time() - cpu0,
        cancelled=cancelled,
    )


__all__ = ["LoadActor", "run_in_actors"]
