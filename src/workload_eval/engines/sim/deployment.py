"""Resolve what the simulator simulates: model x GPU x number formats x parallelism x engine.

One place turns the engine configuration (and the sim's physics options) into a typed
``Deployment``: the model shape, the GPU, the precision, the parallel layout, the engine
generation whose constants apply, the KV-cache blocks and the performance model. The engine
and ``validate`` both go through it, so a run and its validation cost the same physics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ConfigDict, Field, ValidationError

from workload_eval.engines.sim import hardware, memory
from workload_eval.engines.sim.hardware import GpuSpec
from workload_eval.engines.sim.parallelism import GpuShard, Parallelism, shard_model
from workload_eval.engines.sim.perf_model import (
    PerfModel,
    build_perf_model,
    engine_generation,
    parse_version,
)
from workload_eval.engines.sim.precision import Precision, resolve_precision
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec, resolve_model, spec_from_config
from workload_eval.strict import NoBoolNumbers

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default
CUDAGRAPH_PROFILING_SINCE = (
    0,
    21,
)  # "CUDA graph memory profiling is enabled (default since v0.21.0)"


class PhysicsOptions(NoBoolNumbers):
    """The sim's deployment knobs (vLLM's engine-argument names), read from engine options."""

    model_config = ConfigDict(extra="ignore")

    tensor_parallel_size: int = Field(default=1, ge=1, le=1024)
    pipeline_parallel_size: int = Field(default=1, ge=1, le=1024)
    data_parallel_size: int = Field(default=1, ge=1, le=1024)
    enable_expert_parallel: bool = False
    dtype: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    vllm_version: str | None = None
    async_scheduling: bool | None = None
    # HF config.json fields of the model, inline (``validate`` passes a corpus's config).
    hf_config: dict | None = None
    # GPU memory in GB when the GPU name leaves the board size open (a corpus's gpu_memory_gb).
    gpu_memory_gb: float | None = Field(default=None, gt=0, le=10_000)


PHYSICS_OPTIONS = frozenset(PhysicsOptions.model_fields)


def physics_options(options: Mapping[str, object]) -> PhysicsOptions:
    """The physics knobs among an engine's options; a bad value is a one-line error."""
    picked = {k: v for k, v in options.items() if k in PHYSICS_OPTIONS}
    try:
        return PhysicsOptions.model_validate(picked)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(v) for v in err["loc"])
        raise UserError(f"engine option {loc}: {err['msg']}") from None


@dataclass(frozen=True)
class Deployment:
    model: ModelSpec
    gpu: GpuSpec
    precision: Precision
    parallelism: Parallelism
    generation: str
    shard: GpuShard
    vllm_version: str | None = None

    @property
    def num_gpus(self) -> int:
        return self.parallelism.num_gpus


def resolve_deployment(
    model_name: str, gpu_name: str, policy: str, opts: PhysicsOptions
) -> Deployment:
    if opts.hf_config is not None:
        model = spec_from_config(opts.hf_config, name=model_name, where="engine option hf_config")
    else:
        model = resolve_model(model_name)
    gpu = hardware.resolve_gpu(gpu_name, opts.gpu_memory_gb)
    precision = resolve_precision(
        model,
        gpu,
        dtype=opts.dtype,
        quantization=opts.quantization,
        kv_cache_dtype=opts.kv_cache_dtype,
    )
    par = Parallelism(
        tensor=opts.tensor_parallel_size,
        pipeline=opts.pipeline_parallel_size,
        data=opts.data_parallel_size,
        expert=opts.enable_expert_parallel,
    )
    if policy == "vllm-0.2" and (
        par.num_gpus > 1 or precision.weight_format not in ("fp16", "bf16")
    ):
        raise UserError(
            "--policy vllm-0.2 reproduces the paper's single-GPU 16-bit setup: use "
            "--policy vllm-v1 for tensor/pipeline parallelism or quantized weights"
        )
    return Deployment(
        model=model,
        gpu=gpu,
        precision=precision,
        parallelism=par,
        generation=engine_generation(policy, opts.vllm_version, opts.async_scheduling),
        shard=shard_model(model, precision, par),
        vllm_version=opts.vllm_version,
    )


def kv_blocks_for(
    dep: Deployment,
    *,
    utilization: float | None,
    block_size: int,
    max_num_batched_tokens: int,
    max_num_seqs: int,
) -> int:
    """Blocks of the instance's KV pool as vLLM would size them (per GPU x DP ranks)."""
    util = utilization or DEFAULT_GPU_MEMORY_UTILIZATION
    if dep.generation == "vllm-0.2":
        return memory.kv_blocks_for_memory(
            dep.model,
            dep.gpu,
            util,
            block_size,
            max_num_batched_tokens=max_num_batched_tokens,
            max_num_seqs=max_num_seqs,
        )
    v = parse_version(dep.vllm_version)
    per_gpu = memory.vllm_kv_blocks(
        dep.model,
        dep.shard,
        dep.precision,
        dep.gpu,
        util,
        block_size,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
        cudagraph_profiling=v is not None and v >= CUDAGRAPH_PROFILING_SINCE,
    )
    return per_gpu * dep.parallelism.data


def perf_model_for(dep: Deployment, profile: str | None = None) -> PerfModel:
    return build_perf_model(
        dep.model,
        dep.gpu,
        profile=profile,
        generation=dep.generation,
        precision=dep.precision,
        parallelism=dep.parallelism,
    )
