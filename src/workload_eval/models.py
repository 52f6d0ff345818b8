"""Catalog of model architectures and their tokenizers, shared by workloads and engines.

Shapes come from each model's public Hugging Face ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from workload_eval.errors import UserError

TokenizerFamily = Literal["opt", "llama-2", "hub"]


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer: enough shape to cost its compute and memory."""

    name: str
    hub_id: str
    tokenizer: TokenizerFamily
    num_layers: int
    hidden_size: int
    num_heads: int
    ffn_size: int
    vocab_size: int
    max_position: int
    num_kv_heads: int | None = None
    gated_ffn: bool = False
    tied_embeddings: bool = False
    learned_positions: bool = False
    dtype_bytes: int = 2
    # Shipped length profile to use when this model's own tokenizer is not available.
    profile_family: Literal["opt", "llama-2"] = "llama-2"
    aliases: tuple[str, ...] = field(default=())

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for every layer of one token."""
        return 2 * self.num_layers * self.kv_heads * self.head_dim * self.dtype_bytes

    @property
    def num_params(self) -> int:
        h, f = self.hidden_size, self.ffn_size
        kv_dim = self.kv_heads * self.head_dim
        attn = 2 * h * h + 2 * h * kv_dim
        mlp = (3 if self.gated_ffn else 2) * h * f
        per_layer = attn + mlp + 4 * h  # norms and biases, roughly
        embed = self.vocab_size * h * (1 if self.tied_embeddings else 2)
        positions = self.max_position * h if self.learned_positions else 0
        return self.num_layers * per_layer + embed + positions

    @property
    def weight_bytes(self) -> int:
        return self.num_params * self.dtype_bytes


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
    )


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        _opt("opt-125m", 12, 768, 12),
        _opt("opt-1.3b", 24, 2048, 32),
        _opt("opt-6.7b", 32, 4096, 32),
        _opt("opt-13b", 40, 5120, 40),
        _opt("opt-30b", 48, 7168, 56),
        ModelSpec(
            "llama-2-7b",
            "meta-llama/Llama-2-7b-hf",
            "llama-2",
            32,
            4096,
            32,
            11008,
            32000,
            4096,
            gated_ffn=True,
        ),
        ModelSpec(
            "llama-2-13b",
            "meta-llama/Llama-2-13b-hf",
            "llama-2",
            40,
            5120,
            40,
            13824,
            32000,
            4096,
            gated_ffn=True,
        ),
        ModelSpec(
            "llama-2-70b",
            "meta-llama/Llama-2-70b-hf",
            "llama-2",
            80,
            8192,
            64,
            28672,
            32000,
            4096,
            num_kv_heads=8,
            gated_ffn=True,
        ),
        ModelSpec(
            "llama-3-8b",
            "meta-llama/Meta-Llama-3-8B",
            "hub",
            32,
            4096,
            32,
            14336,
            128256,
            8192,
            num_kv_heads=8,
            gated_ffn=True,
        ),
        ModelSpec(
            "mistral-7b",
            "mistralai/Mistral-7B-v0.1",
            "hub",
            32,
            4096,
            32,
            14336,
            32000,
            32768,
            num_kv_heads=8,
            gated_ffn=True,
        ),
    ]
}


def _index() -> dict[str, ModelSpec]:
    index: dict[str, ModelSpec] = {}
    for spec in MODELS.values():
        for key in (spec.name, spec.hub_id, *spec.aliases):
            index[key.lower()] = spec
    return index


def known_model_names() -> list[str]:
    return sorted(MODELS)


def from_hf_config(path: str | Path) -> ModelSpec:
    """Build a spec from a Hugging Face ``config.json`` (file or model folder)."""
    from workload_eval.inputs import read_json
    from workload_eval.limits import MAX_INT

    p = Path(path)
    cfg_path = p / "config.json" if p.is_dir() else p
    if not cfg_path.is_file():
        raise UserError(f"{cfg_path}: no such file (expected a Hugging Face config.json)")
    cfg = read_json(cfg_path)  # bounded, UTF-8, strict JSON
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_path}: expected a JSON object (a Hugging Face config.json)")
    model_type = str(cfg.get("model_type", ""))

    def positive(key: str) -> int:
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_INT:
            raise UserError(f"{cfg_path}: field {key!r} = {v!r} (expected a whole number >= 1)")
        return v

    def need(*keys: str) -> int:
        for k in keys:
            if cfg.get(k) is not None:
                return positive(k)
        raise UserError(f"{cfg_path}: missing field {' or '.join(keys)!r}")

    hidden = need("hidden_size", "n_embd", "d_model")
    is_opt = model_type == "opt"
    folder = p if p.is_dir() else p.parent
    spec = ModelSpec(
        name=folder.name if p.is_dir() or p.name == "config.json" else p.stem,
        hub_id=str(p),
        tokenizer="opt" if is_opt else "hub",
        num_layers=need("num_hidden_layers", "n_layer"),
        hidden_size=hidden,
        num_heads=need("num_attention_heads", "n_head"),
        num_kv_heads=positive("num_key_value_heads") if "num_key_value_heads" in cfg else None,
        ffn_size=need("intermediate_size", "ffn_dim", "n_inner") if not is_opt else need("ffn_dim"),
        vocab_size=need("vocab_size"),
        max_position=need("max_position_embeddings", "n_positions"),
        gated_ffn=model_type in {"llama", "mistral", "qwen2", "qwen3", "gemma", "mixtral"},
        tied_embeddings=bool(cfg.get("tie_word_embeddings", is_opt)),
        learned_positions=is_opt,
        profile_family="opt" if is_opt else "llama-2",
    )
    if spec.head_dim < 1 or spec.kv_heads > spec.num_heads:
        raise UserError(
            f"{cfg_path}: {spec.num_heads} attention heads ({spec.kv_heads} key/value heads) "
            f"do not fit hidden_size {spec.hidden_size}"
        )
    return spec


def resolve_model(name: str) -> ModelSpec:
    """A catalog name, a hub id, or a path to a config.json / model folder."""
    spec = _index().get(name.lower())
    if spec is not None:
        return spec
    p = Path(name)
    if p.exists():
        return from_hf_config(p)
    raise UserError(
        f"unknown model {name!r}: expected one of {', '.join(known_model_names())}, "
        "a hub id such as facebook/opt-13b, or a path to a config.json"
    )
