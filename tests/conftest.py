"""Shared fixtures: where the study's data lives (../shared beside the repo, or env vars)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WORKLOAD_EVAL_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = Path(os.environ.get("WORKLOAD_EVAL_DATA_DIR", SHARED / "datasets"))
    assert d.is_dir(), f"datasets not found at {d}"
    return d


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    d = Path(os.environ.get("WORKLOAD_EVAL_TOKENIZER_DIR", SHARED / "tokenizers"))
    assert d.is_dir(), f"tokenizers not found at {d}"
    return d
