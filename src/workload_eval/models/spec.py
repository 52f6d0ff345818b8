"""One decoder-only transformer's shape: enough to cost its compute, weights and KV cache.

Dense, mixture-of-experts (Mixtral, Qwen-MoE, DeepSeek, Llama-4, gpt-oss) and multi-head
latent attention (DeepSeek MLA) are described by the same record; every count below is per
whole model (one GPU, no parallelism). ``engines/sim/parallelism.py`` splits them per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TokenizerFamily = Literal["opt", "llama-2", "hub"]

# Bits per stored weight of a quantized linear layer, scales included (the layers that stay
# 16-bit, embeddings, LM head and norms, are counted at the model dtype).
# fp8/int8: one byte (per-channel or per-tensor scales are negligible); int4 (AWQ/GPTQ,
# group 128): 4 bits + a 16-bit scale and a packed zero point per 128 weights ~ 4.25;
# nvfp4: 4 bits + an fp8 scale per 16 weights = 4.5; mxfp4 (gpt-oss): 4 bits + an 8-bit
# scale per 32 weights = 4.25 (OCP Microscaling spec v1.0); bitsandbytes nf4 (bnb4): 4 bits +
# an absmax per 64 weights (itself 8-bit quantized) ~ 4.25; bnb LLM.int8 (bnb8): 8 bits.
QUANT_WEIGHT_BITS: dict[str, float] = {
    "fp8": 8.0,
    "int8": 8.0,
    "int4": 4.25,
    "fp4": 4.5,
    "mxfp4": 4.25,
    "bnb4": 4.25,
    "bnb8": 8.0,
}


@dataclass(frozen=True)
class MoeSpec:
    """Routed experts (top-k of ``num_experts``) plus always-active shared experts."""

    num_experts: int
    experts_per_token: int
    expert_ffn_size: int
    num_moe_layers: int
    # Total intermediate size of the shared experts every token passes through (0: none).
    shared_ffn_size: int = 0


@dataclass(frozen=True)
class MlaSpec:
    """DeepSeek's multi-head latent attention: the KV cache holds one compressed latent."""

    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    q_lora_rank: int = 0  # 0: queries are projected directly from the hidden state


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer: enough shape to cost its compute and memory."""

    name: str
    hub_id: str
    tokenizer: TokenizerFamily
    num_layers: int
    hidden_size: int
    num_heads: int
    ffn_size: int  # intermediate size of the dense FFN layers
    vocab_size: int
    max_position: int
    num_kv_heads: int | None = None
    gated_ffn: bool = False
    tied_embeddings: bool = False
    learned_positions: bool = False
    dtype_bytes: int = 2  # activations and the default KV cache (fp16/bf16)
    # Shipped length profile to use when this model's own tokenizer is not available.
    profile_family: Literal["opt", "llama-2"] = "llama-2"
    aliases: tuple[str, ...] = field(default=())
    explicit_head_dim: int | None = None  # config.json ``head_dim`` when not hidden/heads
    torch_dtype: str = "float16"
    quantization: str | None = None  # the checkpoint's weight format: a QUANT_WEIGHT_BITS key
    moe: MoeSpec | None = None
    mla: MlaSpec | None = None
    model_type: str = ""  # config.json ``model_type`` (llama, mixtral, qwen3_moe, ...)

    # ---- attention ----------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_dim(self) -> int:
        return self.explicit_head_dim or self.hidden_size // self.num_heads

    @property
    def attention_params(self) -> int:
        """Q, K, V and output projections of one layer."""
        h, nh = self.hidden_size, self.num_heads
        if self.mla is not None:
            m = self.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            q = h * m.q_lora_rank + m.q_lora_rank * nh * qk if m.q_lora_rank else h * nh * qk
            kv = h * (m.kv_lora_rank + m.qk_rope_head_dim)
            kv += m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)
            return q + kv + nh * m.v_head_dim * h
        q_dim = nh * self.head_dim
        return 2 * h * q_dim + 2 * h * self.kv_heads * self.head_dim

    @property
    def attention_flops_per_pair(self) -> int:
        """FLOPs of one (query, key) pair in one layer: QK^T and PV over every head."""
        if self.mla is not None:
            m = self.mla
            return 2 * self.num_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
        return 4 * self.num_heads * self.head_dim

    @property
    def decode_attention_flops_per_pair(self) -> int:
        """FLOPs of one (query, cached token) pair in decode; MLA attends over its latent
        (the up-projections absorbed into the query and output, as vLLM's MLA decode does)."""
        if self.mla is not None:
            m = self.mla
            return 2 * self.num_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
        return self.attention_flops_per_pair

    @property
    def kv_elems_per_token_layer(self) -> int:
        """KV-cache elements one token stores in one layer (K and V, or MLA's latent)."""
        if self.mla is not None:
            return self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for every layer of one token, at the model dtype."""
        return self.num_layers * self.kv_elems_per_token_layer * self.dtype_bytes

    # ---- feed-forward -------------------------------------------------------------------
    @property
    def ffn_matrices(self) -> int:
        return 3 if self.gated_ffn else 2

    @property
    def dense_ffn_params(self) -> int:
        return self.ffn_matrices * self.hidden_size * self.ffn_size

    @property
    def num_moe_layers(self) -> int:
        return self.moe.num_moe_layers if self.moe else 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def expert_params(self) -> int:
        """One routed expert's FFN."""
        return self.ffn_matrices * self.hidden_size * self.moe.expert_ffn_size if self.moe else 0

    @property
    def shared_expert_params(self) -> int:
        return self.ffn_matrices * self.hidden_size * self.moe.shared_ffn_size if self.moe else 0

    @property
    def router_params(self) -> int:
        return self.hidden_size * self.moe.num_experts if self.moe else 0

    # ---- totals -------------------------------------------------------------------------
    def _block_params(self, experts: int) -> int:
        """The transformer blocks' matrix weights with ``experts`` routed experts per MoE
        layer (embeddings excluded)."""
        moe_layer = (
            experts * self.expert_params + self.shared_expert_params + self.router_params
            if self.moe
            else 0
        )
        return (
            self.num_layers * self.attention_params
            + self.num_dense_layers * self.dense_ffn_params
            + self.num_moe_layers * moe_layer
        )

    @property
    def linear_params(self) -> int:
        """Every weight of the transformer blocks' matrices (embeddings excluded)."""
        return self._block_params(self.moe.num_experts if self.moe else 0)

    @property
    def active_linear_params(self) -> int:
        """Matrix weights one token is multiplied by (top-k experts only)."""
        return self._block_params(self.moe.experts_per_token if self.moe else 0)

    @property
    def embedding_params(self) -> int:
        """Token embeddings and LM head (one matrix when tied), learned positions."""
        embed = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        positions = self.max_position * self.hidden_size if self.learned_positions else 0
        return embed + positions

    @property
    def num_params(self) -> int:
        norms = 4 * self.hidden_size  # per layer: norms and biases, roughly
        return self.linear_params + self.num_layers * norms + self.embedding_params

    @property
    def weight_bits(self) -> float:
        """Bits per stored weight of the quantizable (linear) layers."""
        if self.quantization is None:
            return 8.0 * self.dtype_bytes
        return QUANT_WEIGHT_BITS[self.quantization]

    @property
    def weight_bytes(self) -> int:
        """Checkpoint size in GPU memory: quantized matrices, 16-bit everything else."""
        rest = self.num_params - self.linear_params
        return int(self.linear_params * self.weight_bits / 8 + rest * self.dtype_bytes)

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer (0: dense)."""
        return self.moe.num_experts if self.moe else 0
