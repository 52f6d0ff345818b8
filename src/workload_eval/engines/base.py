"""The Engine interface every backend implements: schedule + configuration -> RunRecords."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workload_eval.contracts import RunRecords, Schedule
from workload_eval.errors import UserError
from workload_eval.limits import MAX_BLOCK_SIZE, MAX_INT, MAX_SAMPLES, Seed


class EngineConfig(BaseModel):
    """Knobs shared by every engine; vLLM's names and the seed's defaults.

    Engine-specific settings (a server URL, a performance profile, ...) go in ``options``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    gpu: str = "a100-40gb"
    kv_blocks: int | None = Field(default=None, gt=0, le=MAX_INT)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    block_size: int = Field(default=16, gt=0, le=MAX_BLOCK_SIZE)
    max_num_batched_tokens: int = Field(default=2560, gt=0, le=MAX_INT)
    max_num_seqs: int = Field(default=2048, gt=0, le=MAX_INT)
    max_model_len: int = Field(default=2048, gt=0, le=MAX_INT)
    policy: Literal["vllm-0.2", "vllm-v0", "vllm-v1"] = "vllm-0.2"
    enable_chunked_prefill: bool | None = None  # None: the policy's default
    enable_prefix_caching: bool = False
    n: int = Field(default=1, ge=1, le=MAX_SAMPLES)  # parallel samples per request
    seed: Seed = 0
    options: dict[str, Any] = Field(default_factory=dict)


class Engine(ABC):
    """Runs a schedule and returns per-request and per-step records.

    Latencies are taken from each request's *intended* arrival time.
    """

    name: str = ""
    # False: the engine needs only lengths (the simulator), so no token id is handed over
    uses_token_ids: bool = True

    @abstractmethod
    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        """Execute every request of ``schedule``; never raise for per-request failures.

        On KeyboardInterrupt return the records gathered so far: unfinished requests get
        status "failed" with an error mentioning "interrupted", and
        ``records.config["interrupted"] = True``.
        """


# engine name -> "module:Class"; modules are imported only when the engine is used.
ENGINES: dict[str, str] = {
    "sim": "workload_eval.engines.sim:SimEngine",
    "vllm": "workload_eval.engines.vllm_engine:VllmEngine",
    "openai": "workload_eval.engines.openai_engine:OpenAIEngine",
}


def known_engines() -> list[str]:
    return list(ENGINES)


def get_engine(name: str) -> Engine:
    target = ENGINES.get(name)
    if target is None:
        raise UserError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")
    module, cls = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"engine {name!r} is not available: {e}") from None
    return getattr(mod, cls)()
