"""Tensor, pipeline, data and expert parallelism: what one GPU holds, reads, computes and sends.

Follows vLLM's sharding (``vllm/model_executor/layers/linear.py``, ``fused_moe``):
- tensor parallelism (TP) splits attention heads and FFN columns across the TP group; K/V
  projections and KV heads are replicated when ``num_key_value_heads < TP``; MLA's latent
  projections and cache are replicated on every rank; the vocabulary (embedding, LM head) is
  split; each layer ends its attention and its FFN with an all-reduce of the hidden states;
- pipeline parallelism (PP) gives each stage ``layers / PP`` consecutive layers; a step runs
  the stages one after another (one batch in flight: latency-exact, throughput-pessimistic
  when vLLM keeps several micro-batches in flight) and sends the hidden states between stages;
- expert parallelism (EP, ``enable_expert_parallel``) places ``experts / (TP x DP)`` whole
  experts on each GPU instead of a TP slice of every expert; tokens travel to their experts
  and back with two all-to-alls per MoE layer;
- data parallelism (DP) inside one instance (attention DP with EP) splits the batch across
  ranks that run in lock-step.
"""

from __future__ import annotations

from dataclasses import dataclass

from workload_eval.engines.sim.hardware import Interconnect
from workload_eval.engines.sim.precision import Precision
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec


@dataclass(frozen=True)
class Parallelism:
    """How one serving instance spreads a model over GPUs (vLLM's engine arguments)."""

    tensor: int = 1
    pipeline: int = 1
    data: int = 1
    expert: bool = False  # enable_expert_parallel

    @property
    def num_gpus(self) -> int:
        return self.tensor * self.pipeline * self.data

    @property
    def expert_size(self) -> int:
        return self.tensor * self.data if self.expert else 1

    @property
    def label(self) -> str:
        parts = [f"TP{self.tensor}"]
        if self.pipeline > 1:
            parts.append(f"PP{self.pipeline}")
        if self.data > 1:
            parts.append(f"DP{self.data}")
        if self.expert:
            parts.append(f"EP{self.expert_size}")
        return "x".join(parts)


def check_parallelism(model: ModelSpec, par: Parallelism) -> None:
    """Refuse layouts vLLM refuses, with the reason."""
    for name, v in (("tensor", par.tensor), ("pipeline", par.pipeline), ("data", par.data)):
        if not 1 <= v <= 1024:
            raise UserError(f"{name}_parallel_size {v}: expected an integer in [1, 1024]")
    tp = par.tensor
    if model.num_heads % tp:
        raise UserError(
            f"tensor_parallel_size {tp}: {model.name} has {model.num_heads} attention heads, "
            "not divisible by it (vLLM requires num_attention_heads % TP == 0)"
        )
    kvh = model.kv_heads
    if model.mla is None and kvh % tp and tp % kvh:
        raise UserError(
            f"tensor_parallel_size {tp}: {model.name} has {kvh} KV heads; vLLM needs one to "
            "divide the other"
        )
    if par.pipeline > model.num_layers:
        raise UserError(
            f"pipeline_parallel_size {par.pipeline} exceeds {model.name}'s "
            f"{model.num_layers} layers"
        )
    if par.expert and model.moe is None:
        raise UserError(f"enable_expert_parallel: {model.name} is not a mixture-of-experts model")
    if par.expert and model.moe is not None and model.moe.num_experts % par.expert_size:
        raise UserError(
            f"expert parallel size {par.expert_size} (TP x DP) does not divide "
            f"{model.name}'s {model.moe.num_experts} experts"
        )


@dataclass(frozen=True)
class GpuShard:
    """One GPU's share of a deployment; bytes and FLOPs per step, per token or per pair.

    Time quantities cover every layer (a step crosses all pipeline stages in turn); memory
    quantities cover the largest stage only.
    """

    tensor: int
    pipeline: int
    data: int
    num_layers: int
    num_moe_layers: int
    static_weight_read: (
        float  # bytes read every step: attention, dense FFN, shared experts, LM head
    )
    expert_bytes: float  # one routed expert's bytes on this GPU
    local_experts: float  # routed experts held per MoE layer on this GPU
    num_experts: int
    experts_per_token: int
    dense_flops_per_token: float  # linear layers other than routed experts, per local token
    expert_flops_per_token: float  # routed experts' share of this GPU, per token of the batch
    head_flops_per_seq: float  # LM head per sampled sequence
    attn_flops_per_pair: float  # all layers, this GPU's heads, per (query, key) pair
    decode_attn_flops_per_pair: float  # the same in decode (MLA: over the latent)
    kv_read_per_token: float  # KV bytes read per context token per step (all layers)
    kv_bytes_per_token: float  # KV bytes one token occupies on this GPU (its stage)
    resident_weight_bytes: float  # weights held by the fullest GPU
    hidden_bytes_per_token: float  # one token's hidden state (all-reduce, stage transfer)
    allreduces_per_step: int  # TP all-reduces (2 per layer)
    all_to_alls_per_step: int  # EP dispatch + combine (2 per MoE layer)


def _replicated_attention_params(model: ModelSpec, tp: int) -> tuple[int, int]:
    """(params split by TP, params every TP rank holds whole) of one attention layer."""
    h = model.hidden_size
    if model.mla is not None:
        m = model.mla
        whole = h * (m.kv_lora_rank + m.qk_rope_head_dim) + h * m.q_lora_rank
        return model.attention_params - whole, whole
    kv = 2 * h * model.kv_heads * model.head_dim
    if model.kv_heads >= tp:
        return model.attention_params, 0
    # fewer KV heads than ranks: each rank keeps one KV head's K and V projections
    return model.attention_params - kv, 2 * h * model.head_dim


def kv_elems_per_token_layer_gpu(model: ModelSpec, tp: int) -> float:
    """KV-cache elements per token per layer on one TP rank (heads split or replicated)."""
    if model.mla is not None:
        return float(model.kv_elems_per_token_layer)  # the latent is replicated
    return 2.0 * max(model.kv_heads / tp, 1.0) * model.head_dim


def shard_model(model: ModelSpec, precision: Precision, par: Parallelism) -> GpuShard:
    """Per-GPU bytes, FLOPs and collectives of ``model`` laid out as ``par``."""
    check_parallelism(model, par)
    tp, pp = par.tensor, par.pipeline
    wb = precision.read_bits / 8  # bytes moved per quantized weight per step
    ws = precision.weight_bits / 8  # bytes stored per quantized weight
    ab = precision.act_bytes
    h, L = model.hidden_size, model.num_layers
    split, whole = _replicated_attention_params(model, tp)
    attn = split / tp + whole
    dense_ffn = model.dense_ffn_params / tp
    shared = model.shared_expert_params / tp
    router = model.router_params  # replicated, kept 16-bit
    n_moe, n_dense = model.num_moe_layers, model.num_dense_layers
    head = model.vocab_size * h / tp
    linear_per_step = L * attn + n_dense * dense_ffn + n_moe * shared
    static_read = linear_per_step * wb + n_moe * router * ab + head * ab

    moe = model.moe
    if moe is None:
        local, expert_b, expert_flops, n_exp, k = 0.0, 0.0, 0.0, 0, 0
    else:
        n_exp, k = moe.num_experts, moe.experts_per_token
        if par.expert:
            local = n_exp / par.expert_size
            expert_b = model.expert_params * wb
            expert_flops = 2.0 * k * model.expert_params * n_moe / par.expert_size
        else:
            local = float(n_exp)
            expert_b = model.expert_params * wb / tp
            expert_flops = 2.0 * k * model.expert_params * n_moe / tp
    dense_flops = 2.0 * (linear_per_step + n_moe * router)
    kv_layer = kv_elems_per_token_layer_gpu(model, tp) * precision.kv_bytes

    stage_layers = -(-L // pp)
    stage_moe = -(-n_moe // pp) if n_moe else 0
    stage_dense = max(stage_layers - stage_moe, 0)
    expert_store = model.expert_params * ws * (local if par.expert else n_exp / tp)
    stage_linear = (
        stage_layers * attn * ws
        + stage_dense * dense_ffn * ws
        + stage_moe * (shared * ws + router * ab + expert_store)
    )
    embed = model.embedding_params / tp * ab
    resident = stage_linear + (embed if pp == 1 else embed / 2) + stage_layers * 4 * h * ab
    return GpuShard(
        tensor=tp,
        pipeline=pp,
        data=par.data,
        num_layers=L,
        num_moe_layers=n_moe,
        static_weight_read=static_read,
        expert_bytes=expert_b,
        local_experts=local,
        num_experts=n_exp,
        experts_per_token=k,
        dense_flops_per_token=dense_flops,
        expert_flops_per_token=expert_flops,
        head_flops_per_seq=2.0 * head,
        attn_flops_per_pair=float(model.attention_flops_per_pair * L / tp),
        decode_attn_flops_per_pair=float(model.decode_attention_flops_per_pair * L / tp),
        kv_read_per_token=L * kv_layer,
        kv_bytes_per_token=stage_layers * kv_layer,
        resident_weight_bytes=resident,
        hidden_bytes_per_token=float(h * ab),
        allreduces_per_step=2 * L if tp > 1 else 0,
        all_to_alls_per_step=2 * n_moe if par.expert and par.expert_size > 1 else 0,
    )


def ring_allreduce_time(
    nbytes: float, ranks: int, link: Interconnect, hop_latency: float, efficiency: float
) -> float:
    """Ring all-reduce: 2(n-1) steps, each a hop latency plus 1/n of the message per direction."""
    if ranks <= 1:
        return 0.0
    steps = 2 * (ranks - 1)
    return steps * hop_latency + steps / ranks * nbytes / (link.bandwidth * efficiency)


def allreduce_coefficients(
    shard: GpuShard, link: Interconnect, hop_latency: float, efficiency: float
) -> tuple[float, float]:
    """(seconds per step, seconds per token) of a step's TP all-reduces (and EP all-to-alls)."""
    fixed = per_token = 0.0
    n = shard.tensor
    if shard.allreduces_per_step:
        fixed += shard.allreduces_per_step * ring_allreduce_time(0.0, n, link, hop_latency, 1.0)
        one = ring_allreduce_time(shard.hidden_bytes_per_token, n, link, 0.0, efficiency)
        per_token += shard.allreduces_per_step * one
    if shard.all_to_alls_per_step:
        ranks = n * shard.data
        fixed += shard.all_to_alls_per_step * hop_latency
        share = (ranks - 1) / ranks * shard.experts_per_token / max(shard.data, 1)
        per_token += (
            shard.all_to_alls_per_step
            * share
            * shard.hidden_bytes_per_token
            / (link.bandwidth * efficiency)
        )
    if shard.pipeline > 1:  # hidden states cross each stage boundary once per step
        fixed += (shard.pipeline - 1) * hop_latency
        per_token += (
            (shard.pipeline - 1) * shard.hidden_bytes_per_token / (link.bandwidth * efficiency)
        )
    return fixed, per_token
