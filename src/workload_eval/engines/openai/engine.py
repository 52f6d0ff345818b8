"""Drives any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, ...) with a schedule.

Token-id prompts where the server accepts them, ``max_tokens`` + ``ignore_eos`` so outputs
follow the workload, streaming for TTFT/ITL, the server's ``usage`` for token counts, its
Prometheus ``/metrics`` sampled into the step timeline. Failures become records, never crashes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
from collections.abc import Coroutine
from typing import TYPE_CHECKING, TypeVar

from workload_eval.console import warn_once
from workload_eval.contracts import RunRecords, Schedule
from workload_eval.engines.base import Engine, EngineConfig, validate_options
from workload_eval.engines.openai import loadgen, ray_workers, workers
from workload_eval.engines.openai.cache_hygiene import CacheWatch
from workload_eval.engines.openai.options import OpenAIOptions
from workload_eval.engines.openai.plan import RequestPlan
from workload_eval.engines.openai.prometheus import Timeline, sample_metrics
from workload_eval.engines.openai.records import build_records
from workload_eval.engines.openai.stream import Ask, Client
from workload_eval.gc_pause import gc_paused

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")


class OpenAIEngine(Engine):
    """The ``openai`` engine: an open-loop HTTP client; see the module docstring."""

    name = "openai"

    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        opts = validate_options(OpenAIOptions, self.name, config.options)
        if opts.workers > 1 or opts.worker_backend == "ray":
            workers.check_splittable(schedule, opts)
        plan = RequestPlan(schedule, config, opts)
        plan.build()
        headers = {"Content-Type": "application/json"}
        if (key := opts.api_key()) is not None:
            headers["Authorization"] = f"Bearer {key}"
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(schedule), desc="requests", unit="req")
        try:
            with gc_paused():  # the plan is built: no collector pauses while sending
                result, timeline, cache = _run_loop(_drive(plan, headers, bar))
        finally:
            if bar is not None:
                bar.close()
        records = build_records(plan, result, timeline)
        records.report.prefix_cache = cache.report(
            [it.request for it in schedule.items], config.block_size
        )
        return records


def _run_loop(coro: Coroutine[object, object, T]) -> T:
    """Run on a fresh (uv)loop; from inside a running loop (a notebook) use a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        box: list[T] = []
        with asyncio.Runner(loop_factory=loadgen.new_event_loop) as runner:
            # the result leaves through ``box``, not the task: restoring the SIGINT handler
            # at exit makes a repr of the main task, result included (0.3 s for 16k outcomes)
            runner.run(_into(coro, box))
        return box[0]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro)).result()


async def _into(coro: Coroutine[object, object, T], box: list[T]) -> None:
    box.append(await coro)


async def _drive(
    plan: RequestPlan, headers: dict[str, str], bar: tqdm | None
) -> tuple[loadgen.LoadResult, Timeline, CacheWatch]:
    """The open loop over the run's client (or its load workers); returns the outcomes, the
    sampled timeline and what the server's prefix cache did around the run."""
    opts = plan.opts
    url, chat = plan.url, plan.chat
    timeline = Timeline(kv_blocks_total=float(plan.config.kv_blocks or math.nan))
    murl = (opts.metrics_url or plan.root + "/metrics") if opts.metrics else None
    cache = CacheWatch()
    async with loadgen.admin_session() as admin:
        await cache.start(admin, plan.root, murl, headers, reset=opts.reset_prefix_cache)
    if cache.reset in ("refused", "failed"):
        warn_once(plan.root, f"prefix cache of {plan.root} not emptied: {cache.note}")
    client = Client(opts.request_timeout)
    outcomes: dict[int, loadgen.Outcome] = {}
    start: list[float] = []

    async def send(i: int, out: loadgen.Outcome) -> None:
        body = plan.bodies[i]
        if body is None:  # a later session turn sent as text: it carries the parent's reply
            parent = plan.schedule.graph.parents[i]
            assert parent is not None
            body = plan.follow_up_body(i, outcomes[parent].text)
        plan.bodies[i] = None  # free memory as we go
        ask = Ask(tokens=plan.asked_tokens(i), body_bytes=len(body))
        await client.send(url, body, out, ask, chat=chat, headers=headers)

    def on_done(i: int, out: loadgen.Outcome) -> None:
        outcomes[i] = out
        if bar is not None:
            bar.update(1)

    stop = asyncio.Event()
    sampler = None
    if murl is not None:
        sampler = asyncio.create_task(
            sample_metrics(murl, opts.metrics_interval, start, timeline, stop)
        )
    try:
        if opts.worker_backend == "ray":
            result = await ray_workers.run_in_actors(
                plan, headers, opts.workers, address=opts.ray_address, on_start=start.append
            )
        elif opts.workers > 1:
            result = await workers.run_in_processes(
                plan, headers, opts.workers, on_start=start.append
            )
        else:
            result = await loadgen.run_open_loop(
                plan.schedule,
                send,
                max_concurrency=opts.max_concurrency,
                on_done=on_done,
                on_start=start.append,
            )
        if bar is not None and result.workers > 1:  # workers report at their end
            bar.update(len(result.outcomes) - bar.n)
    finally:
        stop.set()
        if sampler is not None:
            # the sampler never decides the run: its failure only leaves the timeline short
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(sampler, timeout=5)
        await client.close()
    async with loadgen.admin_session() as admin:
        await cache.finish(admin, murl)
    return result, timeline, cache
