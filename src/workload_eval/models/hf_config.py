"""Build a ModelSpec from any Hugging Face ``config.json`` (dense, MoE, MLA, multimodal).

Field names differ between families; each shape is looked up under every spelling that the
families in ``transformers`` use (Llama 2/3, Mistral/Mixtral, Qwen2/2.5/3 and their MoE,
Yi, Gemma 1-3, Phi-3, DeepSeek V2/V3, Llama 4, gpt-oss, OPT, GPT-2 style). A config is
untrusted input: every number is checked and a bad one is a one-line ``UserError`` naming
the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from workload_eval import limits
from workload_eval.errors import UserError
from workload_eval.models.spec import MlaSpec, ModelSpec, MoeSpec

# Families whose FFN is gated (SwiGLU / GeGLU: gate, up and down matrices).
GATED_TYPES = {
    "llama",
    "llama4",
    "llama4_text",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "deepseek_v2",
    "deepseek_v3",
    "phi3",
    "yi",
    "internlm2",
    "olmo",
    "olmo2",
    "granite",
    "granitemoe",
    "cohere",
    "exaone",
    "gpt_oss",
    "dbrx",
    "minimax",
    "glm4",
    "glm4_moe",
}
# Families with a plain two-matrix MLP.
UNGATED_TYPES = {"opt", "gpt2", "gpt_bigcode", "gpt_neox", "gptj", "falcon", "bloom", "phi"}
LEARNED_POSITIONS = {"opt", "gpt2", "gpt_bigcode"}
# Families whose config.json omits tie_word_embeddings because their class defaults to tied.
TIED_BY_DEFAULT = {"opt", "gpt2", "gpt_bigcode", "gemma", "gemma2", "gemma3", "gemma3_text"}
MAX_DIM = 1_000_000_000  # bound on any other number (a field without one of its own)
# Each shape field's bound (limits.py gives the reasoning: ~10x the largest real model).
_FIELD_BOUNDS: dict[str, int] = {
    **dict.fromkeys(
        ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), limits.MAX_MODEL_LAYERS
    ),
    **dict.fromkeys(("hidden_size", "n_embd", "d_model", "dim"), limits.MAX_HIDDEN_SIZE),
    **dict.fromkeys(
        (
            "num_attention_heads",
            "n_head",
            "num_heads",
            "n_heads",
            "num_key_value_heads",
            "num_kv_heads",
            "n_kv_heads",
        ),
        limits.MAX_ATTENTION_HEADS,
    ),
    **dict.fromkeys(
        ("head_dim", "kv_channels", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"),
        limits.MAX_HEAD_DIM,
    ),
    **dict.fromkeys(("kv_lora_rank", "q_lora_rank"), limits.MAX_HIDDEN_SIZE),
    **dict.fromkeys(
        (
            "intermediate_size",
            "intermediate_size_mlp",
            "ffn_dim",
            "n_inner",
            "ffn_hidden_size",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
        ),
        limits.MAX_FFN_SIZE,
    ),
    **dict.fromkeys(("vocab_size", "padded_vocab_size"), limits.MAX_VOCAB_SIZE),
    **dict.fromkeys(
        (
            "num_local_experts",
            "num_experts",
            "n_routed_experts",
            "moe_num_experts",
            "num_experts_per_tok",
            "experts_per_token",
            "moe_top_k",
            "num_selected_experts",
            "n_shared_experts",
            "num_shared_experts",
        ),
        limits.MAX_EXPERTS,
    ),
    **dict.fromkeys(
        ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"),
        limits.MAX_POSITIONS,
    ),
}


def load_config_file(path: str | Path) -> tuple[dict, Path]:
    """Read a ``config.json`` (file or model folder): bounded, UTF-8, strict JSON."""
    from workload_eval.inputs import read_json

    p = Path(path)
    cfg_path = p / "config.json" if p.is_dir() else p
    if not cfg_path.is_file():
        raise UserError(f"{cfg_path}: no such file (expected a Hugging Face config.json)")
    raw = read_json(cfg_path)
    if not isinstance(raw, dict):
        raise UserError(f"{cfg_path}: expected a JSON object (a Hugging Face config.json)")
    return raw, cfg_path


def from_hf_config(path: str | Path) -> ModelSpec:
    """Build a spec from a Hugging Face ``config.json`` (file or model folder)."""
    cfg, cfg_path = load_config_file(path)
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    name = folder.name if p.is_dir() or p.name == "config.json" else p.stem
    return spec_from_config(cfg, name=name, hub_id=str(p), where=str(cfg_path))


class _Fields:
    """Typed, bounded lookups in one config mapping; errors name the file and the field."""

    def __init__(self, cfg: Mapping, where: str) -> None:
        self.cfg, self.where = cfg, where

    def _fail(self, key: str, expected: str) -> UserError:
        return UserError(f"{self.where}: field {key!r}: expected {expected}, got {self.cfg[key]!r}")

    def int_or_none(self, *keys: str, minimum: int = 1) -> int | None:
        for k in keys:
            v = self.cfg.get(k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
                raise self._fail(k, "an integer")
            top = _FIELD_BOUNDS.get(k, MAX_DIM)
            if not minimum <= int(v) <= top:
                raise self._fail(k, f"an integer in [{minimum}, {top:,}]")
            return int(v)
        return None

    def need(self, *keys: str) -> int:
        v = self.int_or_none(*keys)
        if v is None:
            raise UserError(f"{self.where}: missing field {' or '.join(repr(k) for k in keys)}")
        return v

    def text(self, key: str, default: str = "") -> str:
        v = self.cfg.get(key)
        return v if isinstance(v, str) else default

    def int_list(self, key: str) -> list[int]:
        v = self.cfg.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, int) for x in v):
            raise self._fail(key, "a list of integers")
        return v


def _flatten(cfg: Mapping) -> dict:
    """Multimodal configs (Llama 4, Gemma 3, Mistral 3) keep the language model in text_config."""
    text = cfg.get("text_config")
    if isinstance(text, Mapping) and any(k in text for k in ("hidden_size", "num_hidden_layers")):
        merged = {k: v for k, v in cfg.items() if k != "text_config"}
        merged.update(text)
        return merged
    return dict(cfg)


def spec_from_config(cfg: Mapping, *, name: str, hub_id: str = "", where: str = "") -> ModelSpec:
    """A ModelSpec from the fields of a Hugging Face config (``where`` names it in errors)."""
    where = where or name
    if not isinstance(cfg, Mapping):
        raise UserError(f"{where}: expected a JSON object (a Hugging Face config)")
    flat = _flatten(cfg)
    f = _Fields(flat, where)
    model_type = f.text("model_type").lower()
    hidden = f.need("hidden_size", "n_embd", "d_model", "dim")
    heads = f.need("num_attention_heads", "n_head", "num_heads", "n_heads")
    layers = f.need("num_hidden_layers", "n_layer", "num_layers", "n_layers")
    kv_heads = f.int_or_none("num_key_value_heads", "num_kv_heads", "n_kv_heads")
    if kv_heads is None and flat.get("multi_query") is True:
        kv_heads = 1
    if kv_heads is not None and heads % kv_heads:
        raise UserError(
            f"{where}: field 'num_key_value_heads': {kv_heads} does not divide "
            f"num_attention_heads {heads}"
        )
    head_dim = f.int_or_none("head_dim", "kv_channels")
    if head_dim is None and hidden < heads:
        raise UserError(
            f"{where}: {heads} attention heads do not fit hidden_size {hidden} "
            "(give head_dim if the heads are wider than hidden_size / heads)"
        )
    is_opt = model_type == "opt"
    moe = _moe(f, model_type, layers)
    ffn = _dense_ffn(f, model_type, hidden, moe)
    act = f.text("hidden_act", f.text("hidden_activation", f.text("activation_function")))
    gated = model_type in GATED_TYPES or (
        model_type not in UNGATED_TYPES and act.lower() in {"silu", "swiglu", "swish"}
    )
    tied = flat.get("tie_word_embeddings", model_type in TIED_BY_DEFAULT)
    torch_dtype = f.text("torch_dtype", f.text("dtype", "float16"))
    spec = ModelSpec(
        name=name,
        hub_id=hub_id or name,
        tokenizer="opt" if is_opt else "hub",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads if kv_heads != heads else None,
        ffn_size=ffn,
        vocab_size=f.need("vocab_size", "padded_vocab_size"),
        max_position=f.int_or_none(
            "max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"
        )
        or 4096,
        gated_ffn=gated,
        tied_embeddings=bool(tied),
        learned_positions=model_type in LEARNED_POSITIONS,
        profile_family="opt" if is_opt else "llama-2",
        explicit_head_dim=head_dim if head_dim and head_dim * heads != hidden else None,
        dtype_bytes=4 if torch_dtype == "float32" else 2,
        torch_dtype=torch_dtype,
        quantization=quantization_of(flat.get("quantization_config"))
        or quantization_of(flat.get("quantization_config_summary")),
        moe=moe,
        mla=_mla(f),
        model_type=model_type,
    )
    if spec.num_params > limits.MAX_MODEL_PARAMS:
        raise UserError(
            f"{where}: {spec.num_params:.3g} parameters, more than "
            f"{limits.MAX_MODEL_PARAMS:.0e} (10x the largest published model): a typo in "
            "a layer count or a size?"
        )
    return spec


def _dense_ffn(f: _Fields, model_type: str, hidden: int, moe: MoeSpec | None) -> int:
    if model_type in {"llama4", "llama4_text"}:
        dense = f.int_or_none("intermediate_size_mlp", "intermediate_size")
    elif moe is not None and moe.num_moe_layers and f.cfg.get("moe_intermediate_size") is None:
        dense = None  # Mixtral / gpt-oss: intermediate_size is the expert's; no dense layer
    else:
        dense = f.int_or_none("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size")
    if dense is None:
        return moe.expert_ffn_size if moe is not None else 4 * hidden
    return dense


def _moe(f: _Fields, model_type: str, layers: int) -> MoeSpec | None:
    ffn_cfg = f.cfg.get("ffn_config")
    sub = _Fields(ffn_cfg, f.where) if isinstance(ffn_cfg, Mapping) else None  # DBRX
    experts = f.int_or_none(
        "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", minimum=0
    )
    if experts is None and sub is not None:
        experts = sub.int_or_none("moe_num_experts", minimum=0)
    if not experts or experts < 2:
        return None
    top_k = f.int_or_none(
        "num_experts_per_tok", "experts_per_token", "moe_top_k", "num_selected_experts"
    )
    if top_k is None and sub is not None:
        top_k = sub.int_or_none("moe_top_k")
    if top_k is None:
        raise UserError(f"{f.where}: MoE config without 'num_experts_per_tok'")
    if top_k > experts:
        raise UserError(
            f"{f.where}: field 'num_experts_per_tok': {top_k} exceeds the {experts} experts"
        )
    if model_type in {"llama4", "llama4_text"}:
        expert_ffn = f.need("intermediate_size")
    else:
        expert_ffn = f.int_or_none("moe_intermediate_size") or f.int_or_none("intermediate_size")
        if expert_ffn is None and sub is not None:
            expert_ffn = sub.int_or_none("ffn_hidden_size")
        if expert_ffn is None:
            raise UserError(f"{f.where}: MoE config without 'moe_intermediate_size'")
    return MoeSpec(
        num_experts=experts,
        experts_per_token=top_k,
        expert_ffn_size=expert_ffn,
        num_moe_layers=sum(_is_moe_layer(f, model_type, i) for i in range(layers)),
        shared_ffn_size=_shared_ffn(f, model_type, expert_ffn),
    )


def _is_moe_layer(f: _Fields, model_type: str, i: int) -> bool:
    """Which decoder layers route through experts, per family convention."""
    explicit = f.int_list("moe_layers")
    if explicit:
        return i in explicit
    if "first_k_dense_replace" in f.cfg or "moe_layer_freq" in f.cfg:  # DeepSeek
        first = f.int_or_none("first_k_dense_replace", minimum=0) or 0
        freq = f.int_or_none("moe_layer_freq") or 1
        return i >= first and i % freq == 0
    if model_type in {"qwen2_moe", "qwen3_moe"} or "decoder_sparse_step" in f.cfg:
        step = f.int_or_none("decoder_sparse_step") or 1
        return i not in f.int_list("mlp_only_layers") and (i + 1) % step == 0
    if "interleave_moe_layer_step" in f.cfg:  # Llama 4
        step = f.int_or_none("interleave_moe_layer_step", minimum=0) or 0
        return step > 0 and (i + 1) % step == 0
    return True


def _shared_ffn(f: _Fields, model_type: str, expert_ffn: int) -> int:
    shared = f.int_or_none("shared_expert_intermediate_size", minimum=0)
    if shared is not None:
        return shared  # Qwen2-MoE: one shared expert of this size
    n_shared = f.int_or_none("n_shared_experts", "num_shared_experts", minimum=0)
    if n_shared:
        return n_shared * expert_ffn  # DeepSeek: n shared experts of the routed size
    if model_type in {"llama4", "llama4_text"}:
        return expert_ffn  # Llama 4: one shared expert beside the routed ones
    return 0


def _mla(f: _Fields) -> MlaSpec | None:
    rank = f.int_or_none("kv_lora_rank")
    if rank is None:
        return None
    return MlaSpec(
        kv_lora_rank=rank,
        qk_nope_head_dim=f.need("qk_nope_head_dim"),
        qk_rope_head_dim=f.need("qk_rope_head_dim"),
        v_head_dim=f.need("v_head_dim"),
        q_lora_rank=f.int_or_none("q_lora_rank") or 0,
    )


def quantization_of(value: object) -> str | None:
    """The weight format of a ``quantization_config`` (dict) or a summary string.

    Returns a ``QUANT_WEIGHT_BITS`` key, or None for 16-bit weights.
    """
    if value is None:
        return None
    text = json.dumps(value).lower() if not isinstance(value, str) else value.lower()
    if isinstance(value, Mapping):
        method = str(value.get("quant_method", "")).lower()
        bits = value.get("bits") or value.get("w_bit") or value.get("weight_bits")
        if method in {"awq", "gptq", "marlin", "awq_marlin", "gptq_marlin"}:
            return "int8" if bits == 8 else "int4"
        if method == "bitsandbytes":
            return "bnb8" if value.get("load_in_8bit") else "bnb4"
    for key, tokens in (
        ("bnb4", ("bitsandbytes", "bnb")),
        ("mxfp4", ("mxfp4",)),
        ("fp4", ("nvfp4", "fp4")),
        ("fp8", ("fp8", "float8", "e4m3", '"float", "num_bits": 8', "w8a8-fp")),
        ("int4", ("int4", "w4a16", "awq", "gptq", '"num_bits": 4', "4bit")),
        ("int8", ("int8", "w8a8", '"num_bits": 8', "8bit")),
    ):
        if any(t in text for t in tokens):
            return key
    return None
