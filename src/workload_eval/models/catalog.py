"""Named models: the seed paper's (OPT, Llama 2) and common current checkpoints.

The paper's entries keep their original hand-written shapes (the paper's KV sizing depends on
them exactly); the others are the published Hugging Face ``config.json`` fields, passed
through the same parser a user's config goes through.
"""

from __future__ import annotations

from workload_eval.models.hf_config import spec_from_config
from workload_eval.models.spec import ModelSpec


def _opt(name: str, layers: int, hidden: int, heads: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        hub_id=f"facebook/{name}",
        tokenizer="opt",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        ffn_size=4 * hidden,
        vocab_size=50272,
        max_position=2048,
        tied_embeddings=True,
        learned_positions=True,
        profile_family="opt",
        model_type="opt",
    )


def _llama(
    name: str, hub_id: str, layers: int, hidden: int, heads: int, ffn: int, **kw
) -> ModelSpec:
    tokenizer = kw.pop("tokenizer", "llama-2")
    vocab = kw.pop("vocab_size", 32000)
    max_position = kw.pop("max_position", 4096)
    kw.setdefault("model_type", "llama")
    return ModelSpec(
        name,
        hub_id,
        tokenizer,
        layers,
        hidden,
        heads,
        ffn,
        vocab,
        max_position,
        gated_ffn=True,
        **kw,
    )


def _hf(name: str, hub_id: str, **config: object) -> ModelSpec:
    """A catalog entry from its Hugging Face config.json fields."""
    spec = spec_from_config(config, name=name, hub_id=hub_id, where=f"catalog entry {name}")
    return spec


# Published config.json fields (huggingface.co/<hub_id>/blob/main/config.json).
_LLAMA31_8B = dict(
    model_type="llama",
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=131072,
    torch_dtype="bfloat16",
    tie_word_embeddings=False,
)
_LLAMA31_70B = dict(
    _LLAMA31_8B,
    hidden_size=8192,
    intermediate_size=28672,
    num_hidden_layers=80,
    num_attention_heads=64,
)
_MIXTRAL = dict(
    model_type="mixtral",
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=32000,
    num_local_experts=8,
    num_experts_per_tok=2,
    max_position_embeddings=32768,
    torch_dtype="bfloat16",
    tie_word_embeddings=False,
)
_QWEN25_7B = dict(
    model_type="qwen2",
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    max_position_embeddings=32768,
    torch_dtype="bfloat16",
    tie_word_embeddings=False,
)
_QWEN3_30B_A3B = dict(
    model_type="qwen3_moe",
    hidden_size=2048,
    intermediate_size=6144,
    moe_intermediate_size=768,
    num_hidden_layers=48,
    num_attention_heads=32,
    num_key_value_heads=4,
    head_dim=128,
    num_experts=128,
    num_experts_per_tok=8,
    decoder_sparse_step=1,
    mlp_only_layers=[],
    vocab_size=151936,
    max_position_embeddings=40960,
    torch_dtype="bfloat16",
    tie_word_embeddings=False,
)
_CODELLAMA_34B = dict(
    model_type="llama",
    hidden_size=8192,
    intermediate_size=22016,
    num_hidden_layers=48,
    num_attention_heads=64,
    num_key_value_heads=8,
    vocab_size=32000,
    max_position_embeddings=16384,
    torch_dtype="bfloat16",
    tie_word_embeddings=False,
)

_DEEPSEEK_V3 = dict(
    model_type="deepseek_v3",
    hidden_size=7168,
    intermediate_size=18432,
    moe_intermediate_size=2048,
    num_hidden_layers=61,
    num_attention_heads=128,
    num_key_value_heads=128,
    n_routed_experts=256,
    n_shared_experts=1,
    num_experts_per_tok=8,
    first_k_dense_replace=3,
    moe_layer_freq=1,
    kv_lora_rank=512,
    q_lora_rank=1536,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
    vocab_size=129280,
    max_position_embeddings=163840,
    tie_word_embeddings=False,
    torch_dtype="bfloat16",
    quantization_config={"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
)
_LLAMA4_SCOUT = dict(
    model_type="llama4",
    tie_word_embeddings=False,
    text_config=dict(
        model_type="llama4_text",
        hidden_size=5120,
        intermediate_size=8192,
        intermediate_size_mlp=16384,
        num_hidden_layers=48,
        num_attention_heads=40,
        num_key_value_heads=8,
        head_dim=128,
        num_local_experts=16,
        num_experts_per_tok=1,
        interleave_moe_layer_step=1,
        vocab_size=202048,
        max_position_embeddings=10485760,
        torch_dtype="bfloat16",
    ),
)
_GPT_OSS_120B = dict(
    model_type="gpt_oss",
    hidden_size=2880,
    intermediate_size=2880,
    num_hidden_layers=36,
    num_attention_heads=64,
    num_key_value_heads=8,
    head_dim=64,
    num_local_experts=128,
    num_experts_per_tok=4,
    vocab_size=201088,
    max_position_embeddings=131072,
    tie_word_embeddings=False,
    quantization_config={"quant_method": "mxfp4"},
)

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        _opt("opt-125m", 12, 768, 12),
        _opt("opt-1.3b", 24, 2048, 32),
        _opt("opt-6.7b", 32, 4096, 32),
        _opt("opt-13b", 40, 5120, 40),
        _opt("opt-30b", 48, 7168, 56),
        _llama("llama-2-7b", "meta-llama/Llama-2-7b-hf", 32, 4096, 32, 11008),
        _llama("llama-2-13b", "meta-llama/Llama-2-13b-hf", 40, 5120, 40, 13824),
        _llama("llama-2-70b", "meta-llama/Llama-2-70b-hf", 80, 8192, 64, 28672, num_kv_heads=8),
        _llama(
            "llama-3-8b",
            "meta-llama/Meta-Llama-3-8B",
            32,
            4096,
            32,
            14336,
            tokenizer="hub",
            vocab_size=128256,
            max_position=8192,
            num_kv_heads=8,
        ),
        _llama(
            "mistral-7b",
            "mistralai/Mistral-7B-v0.1",
            32,
            4096,
            32,
            14336,
            tokenizer="hub",
            max_position=32768,
            num_kv_heads=8,
            model_type="mistral",
        ),
        _hf("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", **_LLAMA31_8B),
        _hf("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", **_LLAMA31_70B),
        _hf("codellama-34b", "codellama/CodeLlama-34b-Instruct-hf", **_CODELLAMA_34B),
        _hf("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", **_MIXTRAL),
        _hf("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct", **_QWEN25_7B),
        _hf("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", **_QWEN3_30B_A3B),
        _hf("deepseek-v3", "deepseek-ai/DeepSeek-V3", **_DEEPSEEK_V3),
        _hf("llama-4-scout", "meta-llama/Llama-4-Scout-17B-16E-Instruct", **_LLAMA4_SCOUT),
        _hf("gpt-oss-120b", "openai/gpt-oss-120b", **_GPT_OSS_120B),
    ]
}
