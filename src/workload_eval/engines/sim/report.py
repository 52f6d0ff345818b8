"""What a simulated run resolved: the effective options, the model, GPU and KV size it ran."""

from __future__ import annotations

from typing import Literal

from workload_eval.contracts import EngineReport
from workload_eval.engines.sim.options import SimOptions


class SimReport(EngineReport):
    """``config.resolved`` of a sim run."""

    engine: Literal["sim"] = "sim"
    options: SimOptions  # every option, defaults filled in
    model_spec: str  # the model shape that was simulated
    gpu_spec: str  # the GPU datasheet that was used
    perf_model: str  # which performance model timed the steps
    sim_end_time: float  # simulated seconds until the last request left
    prefix_cache_evicted_blocks: int | None = None  # cached blocks evicted (prefix caching)
