"""The simulator behind the Engine interface: resolve model, GPU and KV size, run, tabulate."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from workload_eval.contracts import (
    RunRecords,
    Schedule,
    ScheduledRequest,
    output_segment_key,
)
from workload_eval.engines.base import Engine, EngineConfig, validate_options
from workload_eval.engines.sim.backing import backing_for, profile_backing
from workload_eval.engines.sim.deployment import (
    Deployment,
    kv_blocks_for,
    perf_model_for,
    resolve_deployment,
)
from workload_eval.engines.sim.frames import prompt_digests, request_frame, step_frame
from workload_eval.engines.sim.hardware import GpuSpec
from workload_eval.engines.sim.kv_cache import KvPool, cdiv
from workload_eval.engines.sim.loop import simulate
from workload_eval.engines.sim.options import SimOptions
from workload_eval.engines.sim.perf_model import PerfModel
from workload_eval.engines.sim.policy_v0 import V0ChunkedScheduler
from workload_eval.engines.sim.policy_v02 import V02Scheduler
from workload_eval.engines.sim.policy_v1 import V1Scheduler
from workload_eval.engines.sim.prefix_cache import BlockHasher, BlockPool
from workload_eval.engines.sim.report import SimReport
from workload_eval.engines.sim.sequence import (
    FAILED,
    PENDING,
    RequestTable,
    StepLog,
)
from workload_eval.errors import UserError
from workload_eval.gc_pause import collector_off
from workload_eval.models import ModelSpec


class SimEngine(Engine):
    """A discrete-event simulation of a vLLM-style engine in virtual time.

    ``perf`` replaces the performance model built from (model, GPU), e.g. a measured one.
    """

    name = "sim"

    def __init__(self, perf: PerfModel | None = None) -> None:
        self.perf = perf

    def uses_token_ids(self, config: EngineConfig) -> bool:
        """Lengths and prefix segments are all a simulation reads; the dataset's own ids only
        matter when it records each request's prompt digest (``record_prompts``)."""
        return bool(validate_options(SimOptions, self.name, config.options).record_prompts)

    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        with collector_off():  # many small acyclic objects: see gc_pause
            return self._run(schedule, config, progress)

    def _run(self, schedule: Schedule, config: EngineConfig, progress: bool) -> RunRecords:
        setup = check_config(config, self.perf)
        opts, dep, model, kv_blocks, perf = (
            setup.opts,
            setup.dep,
            setup.model,
            setup.kv_blocks,
            setup.perf,
        )
        policy = opts.policy

        items = schedule.items
        reqs = [it.request for it in items]
        n = config.n
        table = RequestTable.build(
            [r.prompt_len for r in reqs],
            [r.output_len for r in reqs],
            [n] * len(reqs),
            max_model_len=config.max_model_len,
            record_token_times=opts.record_token_times,
        )
        log = StepLog(kv_blocks_total=kv_blocks)
        skip_ahead = opts.skip_ahead
        v0_chunked = policy == "vllm-v0" and bool(config.enable_chunked_prefill)
        if v0_chunked:
            scheduler = _v1_scheduler(
                table, perf, kv_blocks, log, config, opts, items, skip_ahead, V0ChunkedScheduler
            )
        elif policy in ("vllm-0.2", "vllm-v0"):
            scheduler: Any = V02Scheduler(
                table,
                perf,
                setup.pool,
                log,
                max_num_batched_tokens=config.max_num_batched_tokens,
                max_num_seqs=config.max_num_seqs,
                max_model_len=config.max_model_len,
                max_paddings=opts.max_paddings,
                padding=policy == "vllm-0.2",
                skip_ahead=skip_ahead,
                fast_walk=opts.walk == "fast",
            )
        else:
            scheduler = _v1_scheduler(table, perf, kv_blocks, log, config, opts, items, skip_ahead)
        interrupted = False
        try:
            end = simulate(schedule, scheduler, table.finish, progress=progress)
        except KeyboardInterrupt:  # Ctrl-C: keep what was simulated (Engine.run's contract)
            interrupted, end = True, float(np.nanmax(table.finish, initial=0.0))
        unfinished = "interrupted (Ctrl-C)" if interrupted else "not finished by the simulator"
        if PENDING in table.status:  # without Ctrl-C, defensive: the loop drains every queue
            for gid, status in enumerate(table.status):
                if status == PENDING:
                    table.status[gid], table.error[gid] = FAILED, unfinished

        report = SimReport(
            options=opts,
            kv_blocks=kv_blocks,
            model_spec=model.name,
            gpu_spec=dep.gpu.name,
            perf_model=type(perf).__name__,
            engine_generation=dep.generation,
            parallelism=dep.parallelism.label,
            num_gpus=dep.num_gpus,
            precision=dep.precision.label,
            backing=(
                profile_backing(opts.perf_profile)
                if opts.perf_profile and self.perf is None
                else backing_for(dep)
            ),
            sim_end_time=end,
            interrupted=interrupted,
        )
        if isinstance(scheduler, V1Scheduler) and scheduler.caching:
            # cached blocks the GPU prefix cache had to evict (a CPU offload tier keeps these)
            report.prefix_cache_evicted_blocks = scheduler.pool.evicted_cached
            # (imported here: prefix_reuse names blocks with this package's BlockHasher)
            from workload_eval.prefix_reuse import Reuse, cache_report, implied_reuse

            report.prefix_cache = cache_report(
                implied_reuse(reqs, config.block_size),
                config.block_size,
                measured=Reuse(scheduler.cache_queries, scheduler.cache_hits),
                measured_by="simulator (vLLM V1 block pool)",
                reset="fresh",
            )
        requests = request_frame(items, table)
        if opts.record_prompts:
            requests["prompt_digest"] = prompt_digests(items, model, config.seed)
        return RunRecords(requests=requests, steps=step_frame(log), report=report)


@dataclass
class SimSetup:
    """What a run resolves from its configuration before simulating anything."""

    opts: SimOptions
    dep: Deployment
    kv_blocks: int
    pool: KvPool
    perf: PerfModel

    @property
    def model(self) -> ModelSpec:
        return self.dep.model

    @property
    def gpu(self) -> GpuSpec:
        return self.dep.gpu


def check_config(config: EngineConfig, perf: PerfModel | None = None) -> SimSetup:
    """Everything the simulator would refuse about ``config``, found before any request is
    built (preflight calls this for every point of a run, sweep or capacity search)."""
    opts = validate_options(SimOptions, SimEngine.name, config.options)
    policy = opts.policy
    if policy in ("vllm-0.2", "vllm-v0") and config.enable_prefix_caching:
        raise UserError(
            f"--policy {policy} is simulated without prefix caching: use --policy vllm-v1"
        )
    if policy == "vllm-0.2" and config.enable_chunked_prefill:
        raise UserError("--policy vllm-0.2 has no chunked prefill: use --policy vllm-v1")
    if (
        policy == "vllm-v1"
        and config.enable_chunked_prefill is False
        and config.max_num_batched_tokens < config.max_model_len
    ):
        raise UserError(
            f"--max-num-batched-tokens {config.max_num_batched_tokens}: without chunked "
            f"prefill vLLM needs at least max_model_len ({config.max_model_len})"
        )
    dep = resolve_deployment(config.model, opts.gpu, policy, opts)
    kv_blocks = config.kv_blocks
    if kv_blocks is None:
        kv_blocks = kv_blocks_for(
            dep,
            utilization=config.gpu_memory_utilization,
            block_size=config.block_size,
            max_num_batched_tokens=config.max_num_batched_tokens,
            max_num_seqs=config.max_num_seqs,
        )
    pool = KvPool(kv_blocks, config.block_size)
    _validate(config, pool, watermark=policy != "vllm-v1")
    return SimSetup(opts, dep, kv_blocks, pool, perf or perf_model_for(dep, opts.perf_profile))


def _v1_scheduler(
    table: RequestTable,
    perf: PerfModel,
    kv_blocks: int,
    log: StepLog,
    config: EngineConfig,
    opts: SimOptions,
    items: list[ScheduledRequest],
    skip_ahead: bool,
    cls: type[V1Scheduler] = V1Scheduler,
) -> V1Scheduler:
    """vLLM V1's scheduler, with the block ids of every request's shared prompt segments."""
    threshold = opts.long_prefill_token_threshold
    caching = bool(config.enable_prefix_caching)
    segments = exported = hasher = None
    if caching:
        hasher = BlockHasher(config.block_size)
        segments, exported = _segment_blocks(items, hasher)
    return cls(
        table,
        perf,
        BlockPool(kv_blocks),
        log,
        block_size=config.block_size,
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_num_seqs=config.max_num_seqs,
        max_model_len=config.max_model_len,
        chunked_prefill=config.enable_chunked_prefill is not False,
        long_prefill_token_threshold=threshold,
        prefix_caching=caching,
        segment_blocks=segments,
        exported=exported,
        hasher=hasher,
        skip_ahead=skip_ahead,
        general=opts.walk == "general",
        async_scheduling=cls is V1Scheduler and bool(getattr(perf, "async_scheduling", False)),
    )


Exported = dict[int, tuple[tuple[tuple[str, int], ...], str, int]]


def _segment_blocks(
    items: list[ScheduledRequest], hasher: BlockHasher
) -> tuple[list[list[int]], Exported]:
    """Per request the ids of the blocks inside its shared segments, and the requests whose
    generated tokens a later prompt repeats, with how to hash them.

    A later prompt repeats a request's answer either as ``output_segment_key(request_id)``,
    or, in its follow-up turn (``depends_on``), by extending the key of its last segment
    beyond its length when its prompt is fully described by segments (prefix-stable keys
    such as ``session:<id>``: turn r+1 continues turn r's prompt and answer under one key).
    Exported: gid -> (segments before the answer, the answer's key, its offset in that key).
    """
    none: list[int] = []
    segments = [none] * len(items)
    keys_of: dict[int, tuple[tuple[str, int], ...]] = {}
    referenced: set[int] = set()  # request ids whose output key is used
    for gid, it in enumerate(items):
        if not it.request.prefix_segments:
            continue
        segs = tuple((s.key, s.length) for s in it.request.prefix_segments if s.length > 0)
        keys_of[gid] = segs
        segments[gid] = hasher.block_ids(segs)
        for key, _ in segs:
            if key.startswith("#") and key.endswith(">"):
                with contextlib.suppress(ValueError):
                    referenced.add(int(key[1:-1]))
    gid_of = {it.request.request_id: gid for gid, it in enumerate(items)}
    exported: Exported = {}
    for rid in referenced:
        gid = gid_of.get(rid)
        if gid is not None:
            req = items[gid].request
            segs = keys_of.get(gid, ())
            rest = req.prompt_len - sum(n for _, n in segs)
            tail = ((f"#{rid}<", rest),) if rest > 0 else ()
            exported[gid] = ((*segs, *tail), output_segment_key(rid), 0)
    for gid, it in enumerate(items):  # follow-up turns continuing their parent's last key
        parent = gid_of.get(it.depends_on) if it.depends_on is not None else None
        if parent is None or parent in exported:
            continue
        psegs, segs = keys_of.get(parent, ()), dict(keys_of.get(gid, ()))
        if (
            psegs
            and sum(n for _, n in psegs) == items[parent].request.prompt_len
            and segs.get(psegs[-1][0], 0) > psegs[-1][1]
        ):
            exported[parent] = (psegs[:-1], psegs[-1][0], psegs[-1][1])
    return segments, exported


def _validate(config: EngineConfig, pool: KvPool, *, watermark: bool) -> None:
    """Reject configurations the engine could never serve (vLLM would hang or refuse)."""
    if config.n > config.max_num_seqs:
        raise UserError(f"--n {config.n} exceeds --max-num-seqs {config.max_num_seqs}")
    need = config.n * cdiv(config.max_model_len, config.block_size)
    if need > pool.total or (watermark and not pool.fits_ever(need)):
        raise UserError(
            f"--kv-blocks {pool.total} is too few: one request of max_model_len="
            f"{config.max_model_len} tokens (n={config.n}) needs {need} blocks of "
            f"{config.block_size} tokens plus the {pool.watermark_blocks}-block watermark"
        )
