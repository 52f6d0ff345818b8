"""What an in-process vLLM run resolved: its version, device, KV blocks and engine args."""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from workload_eval.contracts import Cell, EngineReport
from workload_eval.engines.vllm.options import VllmOptions


class VllmReport(EngineReport):
    """``config.resolved`` of a vllm run (``kv_blocks``: vLLM's num_gpu_blocks)."""

    engine: Literal["vllm"] = "vllm"
    options: VllmOptions  # every option, defaults filled in
    vllm_version: str
    device: str
    dtype: str
    block_size: int
    enable_chunked_prefill: bool
    engine_args: dict[str, JsonValue]  # exactly what vLLM's EngineArgs got

    def columns(self) -> dict[str, Cell]:
        return {"device": self.device, "vllm_version": self.vllm_version}
