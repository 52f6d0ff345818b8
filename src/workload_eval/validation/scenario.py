"""An experiment's serving setup as the simulator's EngineConfig, or why it cannot be expressed.

Null engine fields took the vLLM version's defaults in the real run; ``VLLM_DEFAULTS`` below
holds them with their sources, so a resolved value is never a silent guess.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workload_eval.engines.base import EngineConfig
from workload_eval.validation.corpus import Experiment

# vLLM defaults for fields a corpus leaves null, with where they come from.
DEFAULT_BLOCK_SIZE = 16  # CacheConfig.block_size default on CUDA (every version 0.2-0.15)
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # CacheConfig default (every version)
# V1 online serving (vllm serve) on a GPU with >= 70 GiB that is not an A100: 8192 batched tokens
# (EngineArgs._set_default_args, vLLM >= 0.8; installed 0.32: get_batch_defaults); else 2048.
V1_MAX_BATCHED_TOKENS_LARGE_GPU = 8192
V1_MAX_BATCHED_TOKENS = 2048
V1_MAX_NUM_SEQS = 1024  # same function, >= 70 GiB non-A100 GPUs (vLLM >= 0.10); else 256
V1_MAX_NUM_SEQS_SMALL_GPU = 256
# V0 SchedulerConfig: without chunked prefill max(max_model_len, 2048); with it 512 before 0.7
# ("the best balance between ITL and TTFT on A100"), 2048 after.
V0_MAX_BATCHED_TOKENS = 2048
V0_CHUNKED_MAX_BATCHED_TOKENS_OLD = 512
# V0 EngineArgs (0.6+): chunked prefill on by default for max_model_len > 32K.
V0_CHUNKED_DEFAULT_ABOVE = 32768
V0_MAX_NUM_SEQS = 256  # V0 SchedulerConfig.max_num_seqs default
LARGE_GPU_GB = 70

SOURCES = {
    "block_size": "vLLM CacheConfig default (16 on CUDA)",
    "gpu_memory_utilization": "vLLM CacheConfig default (0.9)",
    "max_num_batched_tokens": (
        "vLLM EngineArgs defaults for `vllm serve`: V1 8192 on >= 70 GiB non-A100 GPUs, else "
        "2048, raised to max_model_len without chunked prefill; V0 max(max_model_len, 2048)"
    ),
    "max_num_seqs": "vLLM EngineArgs: V1 1024 on >= 70 GiB non-A100 GPUs, else 256; V0 256",
    "enable_prefix_caching": "vLLM default: on for V1, off for V0",
    "enable_chunked_prefill": "vLLM default: on for V1; V0 (0.6+) only above 32K max_model_len",
}


@dataclass
class Setup:
    """What to simulate, or the reason it cannot be."""

    config: EngineConfig | None
    reason: str = ""
    policy: str = ""
    defaults_used: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model_family: str = ""


def _version(text: str) -> tuple[int, int]:
    m = re.match(r"\s*v?(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def policy_for(generation: str | None, version: str) -> str:
    """vLLM V1 engine -> vllm-v1; V0 of 0.3 and later -> vllm-v0; 0.2.x -> the paper's vllm-0.2."""
    ver = _version(version)
    if generation is None:
        generation = "V1" if ver >= (0, 8) or ver == (0, 0) else "V0"
    if generation == "V1":
        return "vllm-v1"
    return "vllm-0.2" if (0, 0) < ver < (0, 3) else "vllm-v0"


def model_family(name: str, config: dict[str, Any] | None) -> str:
    """'meta-llama/Llama-2-7b-hf' -> 'llama-2'; the figure colours experiments by it."""
    base = name.rsplit("/", 1)[-1].lower()
    base = re.sub(r"^meta-", "", base)
    m = re.match(r"(.+?)[-_](\d+(\.\d+)?[bm]|\d+x\d+(\.\d+)?b)\b", base)
    family = m.group(1) if m else base
    family = re.sub(r"-v?\d+(\.\d+)*$", "", family) if family.count("-") > 1 else family
    if not family and config:
        family = str(config.get("model_type", "")) or "unknown"
    return family or "unknown"


def _model_path(exp: Experiment, workdir: Path) -> tuple[str, str]:
    """A config.json folder for the simulator's model loader; (path, reason if none)."""
    cfg = exp.scenario.model.config
    if cfg is None:
        return exp.scenario.model.name, ""  # the catalog may know the hub id
    folder = workdir / re.sub(r"[^A-Za-z0-9._-]+", "_", exp.scenario.model.name.rsplit("/", 1)[-1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return str(folder), ""


def _is_moe(cfg: dict[str, Any] | None) -> bool:
    if not cfg:
        return False
    text = cfg.get("text_config")
    if isinstance(text, dict):
        cfg = {**cfg, **text}
    for key in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"):
        v = cfg.get(key)
        if isinstance(v, int) and v > 1:
            return True
    return False


def engine_setup(exp: Experiment, workdir: Path | None = None) -> Setup:
    """The EngineConfig that reproduces the experiment's server, or the reason there is none."""
    sc, eng = exp.scenario, exp.scenario.engine
    family = model_family(sc.model.name, sc.model.config)
    policy = policy_for(eng.engine_generation, eng.version)

    def refuse(reason: str) -> Setup:
        return Setup(None, reason, policy, model_family=family)

    if eng.name.lower() != "vllm":
        return refuse(f"engine {eng.name!r}: only vLLM's schedulers are simulated")
    if eng.speculative_decoding:
        return refuse(
            f"speculative decoding ({eng.speculative_decoding}): its speed-up depends on the "
            "draft acceptance rate, which the scenario does not give"
        )
    if exp.status == "trace_missing":
        return refuse("trace_missing: the workload's trace file is not available")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="workload-eval-validate-"))
    model, reason = _model_path(exp, workdir)
    if reason:
        return refuse(reason)
    defaults: list[str] = []
    v1 = policy == "vllm-v1"
    config_max_len = None
    if sc.model.config:
        merged = {**sc.model.config, **(sc.model.config.get("text_config") or {})}
        mp = merged.get("max_position_embeddings")
        config_max_len = int(mp) if isinstance(mp, int) and mp > 0 else None
    max_model_len = eng.max_model_len or config_max_len
    if max_model_len is None:
        return refuse("no max_model_len and no max_position_embeddings in the model config")
    chunked = eng.enable_chunked_prefill
    ver = _version(eng.version)
    if chunked is None:
        chunked = v1 or (ver >= (0, 6) and max_model_len > V0_CHUNKED_DEFAULT_ABOVE)
        defaults.append("enable_chunked_prefill")
    prefix = eng.enable_prefix_caching
    if prefix is None:
        prefix = v1
        defaults.append("enable_prefix_caching")
    large = (sc.gpu_memory_gb or 0) >= LARGE_GPU_GB and "a100" not in sc.gpu.lower()
    mbt = eng.max_num_batched_tokens
    if mbt is None:
        defaults.append("max_num_batched_tokens")
        if v1:
            mbt = V1_MAX_BATCHED_TOKENS_LARGE_GPU if large else V1_MAX_BATCHED_TOKENS
            if not chunked:
                mbt = max(mbt, max_model_len)
        elif chunked:
            mbt = V0_CHUNKED_MAX_BATCHED_TOKENS_OLD if ver < (0, 7) else V0_MAX_BATCHED_TOKENS
        else:
            mbt = max(max_model_len, V0_MAX_BATCHED_TOKENS)
    seqs = eng.max_num_seqs
    if seqs is None:
        defaults.append("max_num_seqs")
        seqs = (V1_MAX_NUM_SEQS if large else V1_MAX_NUM_SEQS_SMALL_GPU) if v1 else V0_MAX_NUM_SEQS
    block = eng.block_size
    if block is None:
        defaults.append("block_size")
        block = DEFAULT_BLOCK_SIZE
    options: dict[str, Any] = {}
    for name, value, default in (
        ("tensor_parallel_size", eng.tensor_parallel_size, 1),
        ("pipeline_parallel_size", eng.pipeline_parallel_size, 1),
        ("data_parallel_size", eng.data_parallel_size, 1),
        ("enable_expert_parallel", eng.enable_expert_parallel, False),
        ("quantization", sc.quantization, None),
        ("kv_cache_dtype", eng.kv_cache_dtype, "auto"),
        ("vllm_version", eng.version or None, None),
    ):
        if value is not None and value != default:
            options[name] = value
    notes: list[str] = []
    if eng.cpu_offload_gib:
        notes.append(
            f"CPU KV offload ({eng.cpu_offload_gib:g} GiB) not simulated: it serves only blocks "
            "evicted from the GPU prefix cache"
        )
    utilization = eng.gpu_memory_utilization
    if eng.num_gpu_blocks is None and utilization is None:
        defaults.append("gpu_memory_utilization")
        utilization = DEFAULT_GPU_MEMORY_UTILIZATION
    try:
        config = EngineConfig(
            model=model,
            kv_blocks=eng.num_gpu_blocks,
            gpu_memory_utilization=None if eng.num_gpu_blocks else utilization,
            block_size=block,
            max_num_batched_tokens=mbt,
            max_num_seqs=seqs,
            max_model_len=max_model_len,
            enable_chunked_prefill=chunked,
            enable_prefix_caching=prefix,
            options={"gpu": sc.gpu, "policy": policy, **options},
        )
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return refuse(f"the sim engine cannot take {loc}={err.get('input')!r}: {err['msg']}")
    if _is_moe(sc.model.config):
        notes.append("mixture-of-experts model")
    return Setup(config, "", policy, defaults, notes, family)
