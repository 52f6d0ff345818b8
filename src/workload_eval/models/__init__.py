"""Catalog of model architectures and their tokenizers, shared by workloads and engines.

Shapes come from each model's public Hugging Face ``config.json``; any config.json (a file,
a model folder, or the fields as a mapping) resolves to the same ``ModelSpec``.
"""

from __future__ import annotations

from pathlib import Path

from workload_eval.errors import UserError
from workload_eval.models.catalog import MODELS
from workload_eval.models.hf_config import from_hf_config, quantization_of, spec_from_config
from workload_eval.models.spec import (
    QUANT_WEIGHT_BITS,
    MlaSpec,
    ModelSpec,
    MoeSpec,
    TokenizerFamily,
)

__all__ = [
    "MODELS",
    "QUANT_WEIGHT_BITS",
    "MlaSpec",
    "ModelSpec",
    "MoeSpec",
    "TokenizerFamily",
    "from_hf_config",
    "known_model_names",
    "quantization_of",
    "resolve_model",
    "spec_from_config",
]


def _index() -> dict[str, ModelSpec]:
    index: dict[str, ModelSpec] = {}
    for spec in MODELS.values():
        for key in (spec.name, spec.hub_id, *spec.aliases):
            index[key.lower()] = spec
    return index


def known_model_names() -> list[str]:
    return sorted(MODELS)


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
