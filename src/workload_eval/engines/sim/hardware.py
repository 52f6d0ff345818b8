"""GPU catalog and vLLM's KV-cache sizing, so `--gpu-memory-utilization` means what it does in vLLM.

Bandwidths and dense fp16/bf16 tensor FLOP/s are the vendors' datasheet numbers (see
``../shared/calibration/README.md``). ``memory_bytes`` is the total the CUDA runtime reports
(``torch.cuda.mem_get_info()[1]``), which is what vLLM multiplies by the utilization; it is
somewhat below the marketing capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workload_eval.engines.sim.calibration import ACTIVATION
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec

MIB = 1024**2


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator: what the performance model and the KV sizing need."""

    name: str
    memory_bytes: int  # total as the CUDA runtime reports it
    hbm_bandwidth: float  # bytes/s, datasheet
    peak_flops: float  # dense fp16/bf16 tensor FLOP/s, datasheet
    description: str = ""
    aliases: tuple[str, ...] = field(default=())


GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in [
        # 39.39 GiB, the "total capacity" PyTorch reports on A100 40GB boards; the only
        # totals (40249..40411 MiB) consistent with all five kv_blocks/utilization pairs of
        # the calibration (see docs/simulator-accuracy.md).
        GpuSpec(
            "a100-40gb",
            40335 * MIB,
            1555e9,
            312e12,
            "NVIDIA A100 40GB SXM",
            ("a100", "a100-40g", "a100-sxm4-40gb", "a100_40gb"),
        ),
        # 79.15 GiB reported by PyTorch on an A100-SXM4-80GB.
        GpuSpec(
            "a100-80gb",
            81050 * MIB,
            2039e9,
            312e12,
            "NVIDIA A100 80GB SXM",
            ("a100-80g", "a100-sxm4-80gb", "a100_80gb"),
        ),
        # 79.11 GiB reported by PyTorch on an H100 80GB HBM3 (SXM).
        GpuSpec(
            "h100",
            81008 * MIB,
            3350e9,
            989e12,
            "NVIDIA H100 80GB SXM",
            ("h100-80gb", "h100-sxm", "h100_80gb"),
        ),
        # 139.8 GiB reported on an H200 (141 GB HBM3e).
        GpuSpec(
            "h200",
            143163 * MIB,
            4800e9,
            989e12,
            "NVIDIA H200 141GB SXM",
            ("h200-141gb", "h200-sxm"),
        ),
        # nvidia-smi shows 46068 MiB; the runtime total is ~1% lower as on the A100.
        GpuSpec("l40s", 45590 * MIB, 864e9, 362e12, "NVIDIA L40S 48GB", ("l40s-48gb",)),
    ]
}


def known_gpus() -> list[str]:
    return sorted(GPUS)


def resolve_gpu(name: str) -> GpuSpec:
    """A catalog name or alias, case-insensitive."""
    key = name.strip().lower()
    for g in GPUS.values():
        if key == g.name or key in g.aliases:
            return g
    raise UserError(f"unknown GPU {name!r}: expected one of {', '.join(known_gpus())}")


def profile_activation_bytes(
    model: ModelSpec, *, max_num_batched_tokens: int = 2560, max_num_seqs: int = 2048
) -> int:
    """Peak activation memory of vLLM 0.2's profiling pass (a full batch of dummy prompts).

    vLLM spreads ``max_num_batched_tokens`` over ``max_num_seqs`` dummy sequences, pads them to
    the longest, runs the model, and samples one token per sequence. Two parts dominate: the
    per-token hidden activations of one layer (QKV, FFN intermediate, residuals) over the
    padded tokens, and the sampler's per-sequence logits over the vocabulary (fp32 logits,
    probabilities, log-probabilities, sorted values and int64 indices for top-p/top-k).
    """
    seqs = min(max_num_seqs, max_num_batched_tokens)
    longest = -(-max_num_batched_tokens // seqs)
    padded = seqs * longest
    ffn = model.ffn_size * (2 if model.gated_ffn else 1)
    hidden = padded * (ffn + 4 * model.hidden_size) * model.dtype_bytes
    sampler = seqs * model.vocab_size * ACTIVATION.sampler_bytes_per_logit
    return int(hidden + sampler)


def kv_blocks_for_memory(
    model: ModelSpec,
    gpu: GpuSpec,
    utilization: float,
    block_size: int,
    *,
    max_num_batched_tokens: int = 2560,
    max_num_seqs: int = 2048,
) -> int:
    """KV blocks as vLLM sizes them: (total * utilization - weights - activations) / block bytes."""
    if not 0 < utilization <= 1:
        raise UserError(f"--gpu-memory-utilization: expected a value in (0, 1], got {utilization}")
    peak = model.weight_bytes + profile_activation_bytes(
        model, max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs
    )
    free = gpu.memory_bytes * utilization - peak
    block_bytes = block_size * model.kv_bytes_per_token
    blocks = int(free // block_bytes)
    if blocks <= 0:
        gib = 1024**3
        raise UserError(
            f"--gpu-memory-utilization {utilization}: {model.name} needs "
            f"{peak / gib:.1f} GiB for weights and activations but {gpu.name} offers "
            f"{gpu.memory_bytes * utilization / gib:.1f} GiB; no memory is left for the KV cache"
        )
    return blocks
