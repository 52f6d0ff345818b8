"""Batched tokenizers that count tokens exactly as the seed did (BOS on every text).

Llama-2 family: SentencePiece with BOS (id 1), as ``LlamaTokenizer.encode``.
OPT family: GPT-2 byte-level BPE with ``</s>`` (id 2) prepended, as OPT's ``GPT2Tokenizer``.
Both run in native code (HF ``tokenizers`` in Rust, sentencepiece in C++) over whole batches.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from workload_eval.errors import UserError
from workload_eval.models import ModelSpec, resolve_model
from workload_eval.workloads.hub import hub_available

OPT_BOS_ID = 2  # OPT prepends </s> (id 2) to every encoded text
TOKENIZER_DIR_ENV = "WORKLOAD_EVAL_TOKENIZER_DIR"


class Tokenizer(Protocol):
    """Anything that turns a batch of texts into token ids (special tokens included)."""

    name: str
    family: str  # opt | llama-2 | hub
    identity: str  # stable across runs: keys the on-disk cache

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def count_batch(self, texts: list[str]) -> list[int]: ...


def tokenizer_dir(path: str | Path | None = None) -> Path | None:
    """The folder laid out like ../shared/tokenizers: argument, then env, else none."""
    p = path or os.environ.get(TOKENIZER_DIR_ENV)
    return Path(p) if p else None


def _file_identity(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass
class Gpt2BpeTokenizer:
    """GPT-2 byte-level BPE (Rust) from encoder.json + vocab.bpe; OPT prepends ``</s>``."""

    encoder_json: Path
    merges: Path
    bos_id: int | None = OPT_BOS_ID
    name: str = "opt"
    family: str = "opt"
    identity: str = ""
    _tok: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for p in (self.encoder_json, self.merges):
            if not p.is_file():
                raise UserError(f"{p}: no such file (expected the GPT-2 BPE tokenizer files)")
        self.identity = f"gpt2-bpe:{self.bos_id}:{_file_identity(self.encoder_json, self.merges)}"

    def _encode(self, texts: list[str]) -> list:
        if self._tok is None:  # built on first use: a cache hit never pays for it
            from tokenizers import ByteLevelBPETokenizer

            self._tok = ByteLevelBPETokenizer(str(self.encoder_json), str(self.merges))
        return self._tok._tokenizer.encode_batch_fast(texts, add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        encs = self._encode(texts)
        if self.bos_id is None:
            return [e.ids for e in encs]
        return [[self.bos_id, *e.ids] for e in encs]

    def count_batch(self, texts: list[str]) -> list[int]:
        extra = 0 if self.bos_id is None else 1
        return [len(e) + extra for e in self._encode(texts)]


@dataclass
class SentencePieceTokenizer:
    """Llama-2's SentencePiece model with BOS, encoded in parallel threads."""

    model_file: Path
    name: str = "llama-2"
    family: str = "llama-2"
    identity: str = ""
    _sp: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.model_file.is_file():
            raise UserError(f"{self.model_file}: no such file (expected Llama-2 tokenizer.model)")
        self.identity = f"sentencepiece-bos:{_file_identity(self.model_file)}"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self._sp is None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_file=str(self.model_file), add_bos=True)
        return self._sp.encode(texts, num_threads=os.cpu_count() or 1)

    def count_batch(self, texts: list[str]) -> list[int]:
        return [len(x) for x in self.encode_batch(texts)]


@dataclass
class HubTokenizer:
    """Any Hugging Face hub tokenizer (online, or already in the local HF cache)."""

    hub_id: str
    name: str = ""
    local_only: bool = False
    family: str = "hub"
    identity: str = ""
    _tok: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.hub_id, local_files_only=self.local_only)
        self.name = self.name or self.hub_id
        self.identity = f"hub:{self.hub_id}:{type(self._tok).__name__}:{len(self._tok)}"
        self.family = "hub"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._tok(texts, add_special_tokens=True)["input_ids"]

    def count_batch(self, texts: list[str]) -> list[int]:
        return [len(x) for x in self.encode_batch(texts)]


def _family_files(family: str, tdir: Path | None) -> list[Path]:
    if tdir is None:
        return []
    if family == "opt":
        return [tdir / "gpt2" / "encoder.json", tdir / "gpt2" / "vocab.bpe"]
    return [tdir / "llama-2" / "tokenizer.model"]


@lru_cache(maxsize=8)
def _family_tokenizer(family: str, tdir: Path) -> Tokenizer:
    files = _family_files(family, tdir)
    if family == "opt":
        return Gpt2BpeTokenizer(files[0], files[1])
    return SentencePieceTokenizer(files[0])


def _locally_available(hub_id: str) -> bool:
    """A model folder, or a tokenizer already in the Hugging Face cache."""
    if Path(hub_id).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "tokenizer_config.json"), str)
    except Exception:
        return False


def get_tokenizer(
    model: str | ModelSpec,
    tokenizer_dir_: str | Path | None = None,
    *,
    exact: bool = False,
) -> Tokenizer:
    """The model's tokenizer; for hub-only tokenizers offline, its profile family (warned).

    ``exact=True`` refuses the family stand-in (for runs that need the real token ids).
    """
    spec = resolve_model(model) if isinstance(model, str) else model
    tdir = tokenizer_dir(tokenizer_dir_)
    family = spec.tokenizer
    if family == "hub":
        reason = "the Hugging Face hub is not reachable"
        # a local model folder or the HF cache first, then the hub when it is reachable
        for local_only in (True, False):
            if local_only and not _locally_available(spec.hub_id):
                continue  # skip importing transformers (seconds) for nothing
            if not local_only and not hub_available():
                break
            try:
                return HubTokenizer(spec.hub_id, name=spec.name, local_only=local_only)
            except Exception as e:  # not cached, gated repo, ...
                first = str(e).splitlines()[0] if str(e) else ""
                reason = f"{type(e).__name__}: {first}" if not local_only else reason
        if exact:
            raise UserError(
                f"model {spec.name!r} needs its hub tokenizer {spec.hub_id!r} and {reason}"
            )
        warnings.warn(
            f"{spec.name}: using the {spec.profile_family} tokenizer as a stand-in ({reason})",
            stacklevel=2,
        )
        family = spec.profile_family
    if tdir is None:
        raise UserError(
            f"no tokenizer folder for model {spec.name!r}: pass --tokenizer-dir or set "
            f"{TOKENIZER_DIR_ENV} (a folder with gpt2/encoder.json, gpt2/vocab.bpe, "
            "llama-2/tokenizer.model)"
        )
    for p in _family_files(family, tdir):
        if not p.is_file():
            raise UserError(f"{p}: no such file (tokenizer for {spec.name!r}, family {family})")
    return _family_tokenizer(family, tdir.resolve())
