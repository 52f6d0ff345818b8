"""The simulator behind the Engine interface: resolve model, GPU and KV size, run, tabulate."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pandas as pd

from workload_eval.contracts import (
    REQUEST_COLUMNS,
    STEP_COLUMNS,
    RunRecords,
    Schedule,
    ScheduledRequest,
)
from workload_eval.engines.base import Engine, EngineConfig, validate_options
from workload_eval.engines.sim import hardware
from workload_eval.engines.sim.kv_cache import KvPool, cdiv
from workload_eval.engines.sim.loop import simulate
from workload_eval.engines.sim.options import SimOptions
from workload_eval.engines.sim.perf_model import PerfModel, build_perf_model
from workload_eval.engines.sim.policy_v02 import V02Scheduler
from workload_eval.engines.sim.policy_v1 import V1Scheduler
from workload_eval.engines.sim.report import SimReport
from workload_eval.engines.sim.sequence import FAILED, PENDING, RequestTable, StepLog
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec, resolve_model

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default


class SimEngine(Engine):
    """A discrete-event simulation of a vLLM-style engine in virtual time.

    ``perf`` replaces the performance model built from (model, GPU), e.g. a measured one.
    """

    name = "sim"

    def __init__(self, perf: PerfModel | None = None) -> None:
        self.perf = perf

    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        # The run allocates many small acyclic objects; cyclic-GC passes would cost about
        # half of its time, so the collector pauses for the run (reference counting still frees).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(schedule, config, progress)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _run(self, schedule: Schedule, config: EngineConfig, progress: bool) -> RunRecords:
        opts = validate_options(SimOptions, self.name, config.options)
        model = resolve_model(config.model)
        gpu = hardware.resolve_gpu(opts.gpu)
        kv_blocks = config.kv_blocks
        if kv_blocks is None:
            kv_blocks = hardware.kv_blocks_for_memory(
                model,
                gpu,
                config.gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION,
                config.block_size,
                max_num_batched_tokens=config.max_num_batched_tokens,
                max_num_seqs=config.max_num_seqs,
            )
        pool = KvPool(kv_blocks, config.block_size)
        _validate(config, pool)
        perf = self.perf or build_perf_model(model, gpu, profile=opts.perf_profile)

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
        if opts.policy == "vllm-0.2":
            if config.enable_chunked_prefill or config.enable_prefix_caching:
                raise UserError(
                    "--policy vllm-0.2 has neither chunked prefill nor prefix "
                    "caching: use --policy vllm-v1"
                )
            scheduler: Any = V02Scheduler(
                table,
                perf,
                pool,
                log,
                max_num_batched_tokens=config.max_num_batched_tokens,
                max_num_seqs=config.max_num_seqs,
                max_model_len=config.max_model_len,
                max_paddings=opts.max_paddings,
                skip_ahead=skip_ahead,
                fast_walk=opts.walk == "fast",
            )
        else:
            if config.enable_prefix_caching:
                raise UserError(
                    "the sim's vllm-v1 policy does not model prefix caching yet: "
                    "drop --enable-prefix-caching"
                )
            scheduler = V1Scheduler(
                table,
                perf,
                pool,
                log,
                max_num_batched_tokens=config.max_num_batched_tokens,
                max_num_seqs=config.max_num_seqs,
                max_model_len=config.max_model_len,
                chunked_prefill=config.enable_chunked_prefill is not False,
                skip_ahead=skip_ahead,
            )
        interrupted = False
        try:
            end = simulate(schedule, scheduler, table.finish, progress=progress)
        except KeyboardInterrupt:  # Ctrl-C: keep what was simulated (Engine.run's contract)
            interrupted, end = True, float(np.nanmax(table.finish, initial=0.0))
        unfinished = "interrupted (Ctrl-C)" if interrupted else "not finished by the simulator"
        for gid, status in enumerate(table.status):
            if status == PENDING:  # without Ctrl-C, defensive: the loop drains every queue
                table.status[gid], table.error[gid] = FAILED, unfinished

        report = SimReport(
            options=opts,
            kv_blocks=kv_blocks,
            model_spec=model.name,
            gpu_spec=gpu.name,
            perf_model=type(perf).__name__,
            sim_end_time=end,
            interrupted=interrupted,
        )
        requests = _request_frame(items, table)
        if opts.record_prompts:
            requests["prompt_digest"] = _prompt_digests(items, model, config.seed)
        return RunRecords(requests=requests, steps=_step_frame(log), report=report)


def _validate(config: EngineConfig, pool: KvPool) -> None:
    """Reject configurations the engine could never serve (vLLM would hang or refuse)."""
    if config.n > config.max_num_seqs:
        raise UserError(f"--n {config.n} exceeds --max-num-seqs {config.max_num_seqs}")
    need = config.n * cdiv(config.max_model_len, config.block_size)
    if not pool.fits_ever(need):
        raise UserError(
            f"--kv-blocks {pool.total} is too few: one request of max_model_len="
            f"{config.max_model_len} tokens (n={config.n}) needs {need} blocks of "
            f"{config.block_size} tokens plus the {pool.watermark_blocks}-block watermark"
        )


def _request_frame(items: list[ScheduledRequest], table: RequestTable) -> pd.DataFrame:
    reqs = [it.request for it in items]
    arrival = np.asarray(table.arrival, dtype=float)
    tt = table.token_times
    frame = pd.DataFrame(
        {
            "request_id": np.fromiter(
                (r.request_id for r in reqs), dtype=np.int64, count=len(reqs)
            ),
            "workload": [r.workload for r in reqs],
            "session_id": pd.array([r.session_id for r in reqs], dtype="Int64"),
            "turn": np.fromiter((r.turn for r in reqs), dtype=np.int64, count=len(reqs)),
            "arrival_time": arrival,
            "send_time": arrival,
            "first_token_time": np.asarray(table.first_token, dtype=float),
            "finish_time": np.asarray(table.finish, dtype=float),
            "prompt_tokens": np.asarray(table.prompt_len, dtype=np.int64),
            "generated_tokens": np.asarray(table.generated, dtype=np.int64),
            "expected_output_tokens": np.asarray(table.expected, dtype=np.int64),
            "num_preemptions": np.asarray(table.preemptions, dtype=np.int64),
            "status": table.status,
            "error": table.error,
            "token_times": tt if tt is not None else [[] for _ in reqs],
            "prompt_digest": "",
        }
    )
    # ignored/failed requests were dropped, not finished (their time only releases a session)
    frame.loc[frame["status"] != "ok", "finish_time"] = np.nan
    return frame[list(REQUEST_COLUMNS)]


def _prompt_digests(items: list[ScheduledRequest], model: ModelSpec, seed: int) -> list[str]:
    """What a real engine would be sent for each request (the one synthesizer's ids)."""
    from workload_eval.workloads.synthesizer import PromptSynthesizer, Vocab, prompt_digest

    synth = PromptSynthesizer(Vocab.for_model(model), seed)
    return [prompt_digest(synth.prompt_ids(it.request)) for it in items]


def _step_frame(log: StepLog) -> pd.DataFrame:
    cols = log.columns()
    ints = (
        "batched_tokens",
        "num_running",
        "num_waiting",
        "num_preempted",
        "kv_blocks_used",
        "logical_tokens",
        "physical_tokens",
        "num_steps",
    )
    frame: dict[str, Any] = {
        "time": np.asarray(cols["time"], dtype=float),
        "duration": np.asarray(cols["duration"], dtype=float),
        "kind": pd.Categorical(cols["kind"], categories=["prefill", "decode", "mixed"]),
        **{name: np.asarray(cols[name], dtype=np.int64) for name in ints},
        "kv_blocks_total": np.full(len(log), log.kv_blocks_total, dtype=np.int64),
    }
    return pd.DataFrame(frame)[list(STEP_COLUMNS)]
