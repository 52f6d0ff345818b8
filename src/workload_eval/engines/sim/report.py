"""What a simulated run resolved: the effective options, the model, GPU and KV size it ran,
the deployment it simulated and which measurements back it."""

from __future__ import annotations

from typing import Literal

from workload_eval.contracts import EngineReport
from workload_eval.engines.sim.backing import Backing
from workload_eval.engines.sim.options import SimOptions


class SimReport(EngineReport):
    """``config.resolved`` of a sim run."""

    engine: Literal["sim"] = "sim"
    options: SimOptions  # every option, defaults filled in
    model_spec: str  # the model shape that was simulated
    gpu_spec: str  # the GPU datasheet that was used
    perf_model: str  # which performance model timed the steps
    # The deployment simulated (deployment.py) and which measurements back it; None only in
    # runs stored before the simulator resolved deployments.
    engine_generation: str | None = None  # whose constants: vllm-0.2, vllm-v0, vllm-v1(-sync)
    parallelism: str | None = None  # the parallel layout, e.g. "TP2xPP2"
    num_gpus: int | None = None  # GPUs the deployment occupies (TP x PP x DP)
    precision: str | None = None  # number formats, e.g. "weights fp16, KV cache 16-bit"
    backing: Backing | None = None  # the measurements behind this run, or what it extrapolates
    sim_end_time: float  # simulated seconds until the last request left
    prefix_cache_evicted_blocks: int | None = None  # cached blocks evicted (prefix caching)
