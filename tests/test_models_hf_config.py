"""Any Hugging Face config.json -> ModelSpec: parameter counts match the published sizes."""

from __future__ import annotations

import json

import pytest

from workload_eval.errors import UserError
from workload_eval.models import from_hf_config, resolve_model, spec_from_config

# Published config.json fields (huggingface.co/<repo>/blob/main/config.json), trimmed to shapes.
DEEPSEEK_V3 = {
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
}
LLAMA4_SCOUT = {
    "model_type": "llama4",
    "vision_config": {"hidden_size": 1408},
    "text_config": {
        "model_type": "llama4_text",
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "vocab_size": 202048,
        "max_position_embeddings": 10485760,
        "torch_dtype": "bfloat16",
    },
    "tie_word_embeddings": False,
}
GEMMA2_9B = {
    "model_type": "gemma2",
    "hidden_size": 3584,
    "intermediate_size": 14336,
    "num_hidden_layers": 42,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "vocab_size": 256000,
    "max_position_embeddings": 8192,
    "torch_dtype": "float32",
}
QWEN2_57B_A14B = {
    "model_type": "qwen2_moe",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "moe_intermediate_size": 2560,
    "shared_expert_intermediate_size": 20480,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
}
GPT_OSS_120B = {
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "num_hidden_layers": 36,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "num_local_experts": 128,
    "num_experts_per_tok": 4,
    "vocab_size": 201088,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "quantization_config": {"quant_method": "mxfp4"},
}


@pytest.mark.parametrize(
    "config,total_b,active_b",
    [
        (DEEPSEEK_V3, 671, 37),
        (LLAMA4_SCOUT, 107.8, 17.2),
        (GEMMA2_9B, 9.24, 9.24),
        (QWEN2_57B_A14B, 57.4, 14.2),
        (GPT_OSS_120B, 116.8, 5.7),
    ],
)
def test_parameter_counts_match_published_sizes(config, total_b, active_b):
    spec = spec_from_config(config, name="m")
    assert spec.num_params / 1e9 == pytest.approx(total_b, rel=0.01)
    active = spec.active_linear_params + spec.vocab_size * spec.hidden_size * (
        1 if spec.tied_embeddings else 2
    )
    assert active / 1e9 == pytest.approx(active_b, rel=0.03)


def test_moe_layers_and_shared_experts_follow_each_family():
    ds = spec_from_config(DEEPSEEK_V3, name="ds")
    assert ds.moe.num_moe_layers == 58 and ds.num_dense_layers == 3
    assert ds.moe.shared_ffn_size == 2048 and ds.moe.experts_per_token == 8
    assert ds.mla is not None and ds.kv_elems_per_token_layer == 512 + 64
    assert ds.quantization == "fp8"
    scout = spec_from_config(LLAMA4_SCOUT, name="scout")
    assert scout.moe.num_moe_layers == 48 and scout.moe.shared_ffn_size == 8192
    assert scout.ffn_size == 16384 and scout.head_dim == 128
    interleaved = dict(LLAMA4_SCOUT, text_config={**LLAMA4_SCOUT["text_config"]})
    interleaved["text_config"]["interleave_moe_layer_step"] = 2
    assert spec_from_config(interleaved, name="mav").moe.num_moe_layers == 24
    qwen = dict(QWEN2_57B_A14B, mlp_only_layers=[0, 1], decoder_sparse_step=1)
    assert spec_from_config(qwen, name="q").moe.num_moe_layers == 26
    oss = spec_from_config(GPT_OSS_120B, name="oss")
    assert oss.num_dense_layers == 0 and oss.quantization == "mxfp4"
    assert oss.weight_bytes < 0.6 * oss.num_params  # 4.25-bit experts


def test_head_dim_gqa_and_tied_embeddings():
    gemma = spec_from_config(GEMMA2_9B, name="gemma")
    assert gemma.head_dim == 256 and gemma.num_heads * gemma.head_dim != gemma.hidden_size
    assert gemma.tied_embeddings and gemma.gated_ffn
    assert gemma.kv_bytes_per_token == 2 * 42 * 8 * 256 * 4  # float32 checkpoint
    llama3 = resolve_model("llama-3.1-8b")
    assert llama3.kv_heads == 8 and llama3.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert llama3.num_params / 1e9 == pytest.approx(8.03, rel=0.005)


def test_catalog_names_still_resolve_with_their_paper_shapes():
    opt = resolve_model("opt-13b")
    assert opt is resolve_model("facebook/opt-13b")
    assert opt.weight_bytes == opt.num_params * 2 and opt.kv_bytes_per_token == 819200
    assert resolve_model("mixtral-8x7b").num_params / 1e9 == pytest.approx(46.7, rel=0.005)


def test_config_files_and_folders(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(GEMMA2_9B))
    assert from_hf_config(tmp_path).name == tmp_path.name
    assert resolve_model(str(tmp_path / "config.json")).head_dim == 256


@pytest.mark.parametrize(
    "patch,match",
    [
        ({"hidden_size": "big"}, r"field 'hidden_size': expected an integer"),
        ({"num_hidden_layers": -3}, r"field 'num_hidden_layers'"),
        ({"num_key_value_heads": 5}, r"does not divide"),
        ({"num_experts_per_tok": 99}, r"exceeds the 64 experts"),
        ({"mlp_only_layers": "all"}, r"field 'mlp_only_layers': expected a list"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_field(patch, match):
    with pytest.raises(UserError, match=match):
        spec_from_config({**QWEN2_57B_A14B, **patch}, name="q", where="cfg.json")


def test_missing_shape_and_bad_json_name_the_file(tmp_path):
    with pytest.raises(UserError, match="missing field 'hidden_size'"):
        spec_from_config({"model_type": "llama"}, name="x", where="x.json")
    bad = tmp_path / "config.json"
    bad.write_text("{oops")
    with pytest.raises(UserError, match=r"config\.json: line 1: invalid JSON"):
        from_hf_config(bad)
