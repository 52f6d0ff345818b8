"""KV-cache blocks per GPU as vLLM sizes them, so ``--gpu-memory-utilization`` means what it does.

Two generations of vLLM's profiler:
- vLLM 0.2 (the paper): ``total x utilization - weights - peak activation`` of a padded
  dummy batch whose sampler dominates (``kv_blocks_for_memory``);
- vLLM 0.3+ (V0 and V1, ``vllm/v1/worker/gpu_worker.py:determine_available_memory``):
  ``total x utilization - weights - peak activation - non-torch memory`` (NCCL and custom
  all-reduce buffers, cuBLAS workspaces), minus the estimated CUDA-graph pool from 0.21 on
  ("CUDA graph memory profiling is enabled (default since v0.21.0)"), per GPU
  (``vllm_kv_blocks``). Each GPU of a TP group holds the same number of blocks, each holding
  that rank's KV heads.
"""

from __future__ import annotations

from workload_eval.engines.sim.calibration import ACTIVATION, MEMORY
from workload_eval.engines.sim.hardware import GIB, GpuSpec
from workload_eval.engines.sim.parallelism import GpuShard
from workload_eval.engines.sim.precision import Precision
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec


def _check_utilization(utilization: float) -> None:
    if not 0 < utilization <= 1:
        raise UserError(f"--gpu-memory-utilization: expected a value in (0, 1], got {utilization}")


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
    """vLLM 0.2's KV blocks: (total * utilization - weights - activations) / block bytes."""
    _check_utilization(utilization)
    peak = model.weight_bytes + profile_activation_bytes(
        model, max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs
    )
    free = gpu.memory_bytes * utilization - peak
    block_bytes = block_size * model.kv_bytes_per_token
    blocks = int(free // block_bytes)
    if blocks <= 0:
        raise UserError(
            f"--gpu-memory-utilization {utilization}: {model.name} needs "
            f"{peak / GIB:.1f} GiB for weights and activations but {gpu.name} offers "
            f"{gpu.memory_bytes * utilization / GIB:.1f} GiB; no memory is left for the KV cache"
        )
    return blocks


def activation_peak_bytes(
    model: ModelSpec,
    precision: Precision,
    tp: int,
    *,
    max_num_batched_tokens: int,
    max_num_seqs: int,
) -> float:
    """Peak activations of vLLM's dummy forward over ``max_num_batched_tokens`` tokens.

    The FFN's widest intermediates dominate (gate-up output and its activation: three
    ffn-wide tensors per token; for MoE, top-k of them per token), plus a few hidden-wide
    buffers; the dummy sampler holds fp32 logits for ``min(max_num_seqs, tokens)`` rows.
    """
    ffn = model.ffn_size if model.num_dense_layers else 0
    if model.moe is not None:
        ffn = max(ffn, model.moe.experts_per_token * model.moe.expert_ffn_size)
    per_token = (3 * ffn / tp + ACTIVATION.hidden_buffers * model.hidden_size) * precision.act_bytes
    rows = min(max_num_seqs, max_num_batched_tokens)
    sampler = rows * model.vocab_size * ACTIVATION.v1_sampler_bytes_per_logit
    return max_num_batched_tokens * per_token + sampler


def vllm_kv_blocks(
    model: ModelSpec,
    shard: GpuShard,
    precision: Precision,
    gpu: GpuSpec,
    utilization: float,
    block_size: int,
    *,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    cudagraph_profiling: bool = False,
) -> int:
    """KV blocks per GPU of vLLM 0.3+ (V0 and V1); ``cudagraph_profiling``: vLLM >= 0.21."""
    _check_utilization(utilization)
    act = activation_peak_bytes(
        model,
        precision,
        shard.tensor,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
    )
    non_torch = (
        MEMORY.non_torch_bytes_tp1
        if shard.tensor * shard.data == 1
        else (MEMORY.non_torch_bytes_multi_gpu)
    )
    graphs = MEMORY.cudagraph_pool_bytes if cudagraph_profiling else 0.0
    used = shard.resident_weight_bytes + act + non_torch + graphs
    free = gpu.memory_bytes * utilization - used
    blocks = int(free // (block_size * shard.kv_bytes_per_token))
    if blocks <= 0:
        raise UserError(
            f"--gpu-memory-utilization {utilization}: {model.name} needs {used / GIB:.1f} GiB "
            f"per GPU for weights, activations and buffers but {gpu.name} offers "
            f"{gpu.memory_bytes * utilization / GIB:.1f} GiB; no memory is left for the KV "
            "cache (more GPUs, a quantized checkpoint or a larger GPU would fit)"
        )
    return blocks
