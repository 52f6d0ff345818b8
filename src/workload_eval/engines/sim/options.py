"""What the simulator can be told beyond the shared knobs (``EngineConfig.options``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from workload_eval.engines.base import EngineOptions
from workload_eval.engines.sim.deployment import PhysicsOptions
from workload_eval.engines.sim.policy_v02 import MAX_PADDINGS
from workload_eval.limits import MAX_INT


class SimOptions(EngineOptions, PhysicsOptions):
    """The sim engine's options (CLI: --gpu, --policy, --perf-profile, --engine-option K=V).

    Typed and range-checked: a wrong type or a value that would stall the scheduler is
    refused before the run. The deployment knobs (parallelism, number formats, vLLM
    version, an inline HF config) come from PhysicsOptions, under vLLM's names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    gpu: str = "a100-40gb"  # the simulated GPU (engines/sim/hardware.py's catalog)
    # the scheduler simulated: vLLM 0.2 (the paper's), V0 (0.3-0.10), V1 (0.8+)
    policy: Literal["vllm-0.2", "vllm-v0", "vllm-v1"] = "vllm-0.2"
    perf_profile: str | None = None  # measured step times (`workload-eval profile`) to use
    record_token_times: bool = False  # every token's time (ITL); costs memory on long runs
    record_prompts: bool = False  # each request's prompt_digest: the ids a real engine gets
    skip_ahead: bool = True  # advance runs of identical decode steps at once (same results)
    max_paddings: int = Field(default=MAX_PADDINGS, ge=0, le=MAX_INT)  # vllm-0.2's padding budget
    walk: Literal["fast", "general"] = "fast"  # fast or literal scheduler walk (same results)
    # vllm-v1: cap a prefill chunk (0: no cap)
    long_prefill_token_threshold: int = Field(default=0, ge=0, le=MAX_INT)
