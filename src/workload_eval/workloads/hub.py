"""Hugging Face hub access, only when the network allows: detect offline fast, never hang."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from typing import Any

HUB_HOST = "huggingface.co"
CONNECT_TIMEOUT_S = 2.0


@lru_cache(maxsize=1)
def hub_available() -> bool:
    """True when the hub can be reached (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE say no)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return False
    if os.environ.get("WORKLOAD_EVAL_OFFLINE", "").strip().lower() in {"1", "true", "yes"}:
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def load_hub_records(
    hub_id: str, config: str | None, split: str
) -> tuple[list[dict[str, Any]], str]:
    """All records of a hub dataset split, and a fingerprint that keys the prepared cache."""
    import datasets

    ds = datasets.load_dataset(hub_id, config, split=split)
    fingerprint = getattr(ds, "_fingerprint", None) or f"{len(ds)}"
    return ds.to_list(), f"hub:{hub_id}:{config}:{split}:{fingerprint}"
