"""The one prompt synthesizer: the token ids every engine sends for a request.

A request that carries token ids is sent as they are (kept inside the vocabulary). Otherwise
its prompt is the concatenation of segments (contracts.PromptSegment), cut to its length:

1. its ``prefix_segments`` (a shared system prompt, a group's context, ...), in order;
2. Mooncake ``prefix_hash_ids``: one ``hash:<id>`` segment of 512 tokens per id;
3. a session's history: the ``session:<id>`` segment, so every turn of a session starts
   with the previous turn's prompt (and the tokens standing in for its reply);
4. the rest, unique to the request (``request:<id>``).

Every key names one deterministic stream of ids (seeded by the run's seed and the key), and
a segment takes the first ``length`` ids of its key's stream: segments with the same key are
identical, and a shorter one is a prefix of a longer one. So shared prefixes are identical
token ids in the simulator, in vLLM and over HTTP, and a prefix cache sees what the workload
implies. The first id is the vocabulary's BOS when it has one (prompt lengths count it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workload_eval.contracts import PromptSegment, Request

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from workload_eval.models import ModelSpec

# Synthesized ids start here: above the control and byte tokens of common vocabularies.
SYNTH_LOW_ID = 100
# Mooncake's traces name KV blocks of 512 tokens by hash id (kvcache-ai/Mooncake, traces/).
HASH_BLOCK_TOKENS = 512
# BOS of the tokenizer families the catalog knows (workloads/tokenizers.py encodes with them).
FAMILY_BOS: dict[str, int] = {"llama-2": 1, "opt": 2}
# Without any knowledge of the server's vocabulary: ids every catalog tokenizer has
# (Llama-2's 32,000 is the smallest), no BOS.
DEFAULT_VOCAB_SIZE = 32_000


@dataclass(frozen=True)
class Vocab:
    """What prompt synthesis needs to know about the model's vocabulary."""

    size: int
    special_ids: frozenset[int] = frozenset()
    bos_id: int | None = None

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase | None, model_vocab: int) -> Vocab:
        """From a Hugging Face tokenizer (vLLM's, or the one an openai run was given)."""
        size = min(model_vocab, len(tokenizer)) if tokenizer is not None else model_vocab
        return cls(
            size=size,
            special_ids=frozenset(getattr(tokenizer, "all_special_ids", None) or ()),
            bos_id=getattr(tokenizer, "bos_token_id", None),
        )

    @classmethod
    def for_model(cls, spec: ModelSpec) -> Vocab:
        """From the model catalog, or a local model's config.json (the simulator loads no
        tokenizer); vLLM takes BOS from the same place for these models."""
        bos = FAMILY_BOS.get(spec.tokenizer)
        if bos is None:
            bos = _config_bos(Path(spec.hub_id))
        return cls(size=spec.vocab_size, bos_id=bos)

    @classmethod
    def default(cls) -> Vocab:
        return cls(size=DEFAULT_VOCAB_SIZE)


def _config_bos(path: Path) -> int | None:
    """``bos_token_id`` of a local Hugging Face config.json (file or folder), if any."""
    cfg = path / "config.json" if path.is_dir() else path
    if cfg.suffix != ".json" or not cfg.is_file():
        return None
    try:
        bos = json.loads(cfg.read_text()).get("bos_token_id")
    except (OSError, ValueError):
        return None
    return bos if isinstance(bos, int) and not isinstance(bos, bool) else None


def _key_seed(seed: int, key: str) -> list[int]:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return [seed, int.from_bytes(digest, "little")]


def prompt_segments(request: Request) -> tuple[PromptSegment, ...]:
    """A synthesized prompt as segments (see the module docstring), covering exactly
    ``prompt_len`` tokens; the vocabulary and seed only pick the ids inside them."""
    n = max(int(request.prompt_len), 1)
    out: list[PromptSegment] = []
    covered = 0

    def add(key: str, length: int) -> None:
        nonlocal covered
        take = min(length, n - covered)
        if take > 0:
            out.append(PromptSegment(key, take))
            covered += take

    for seg in request.prefix_segments:
        add(seg.key, seg.length)
    for h in request.prefix_hash_ids:
        add(f"hash:{h}", HASH_BLOCK_TOKENS)
    if request.session_id is not None:
        add(f"session:{request.session_id}", n)
    add(f"request:{request.request_id}", n)
    return tuple(out)


def prompt_digest(ids: Sequence[int]) -> str:
    """A short fingerprint of a prompt's token ids (to compare what engines were sent)."""
    data = np.asarray(ids, dtype=np.int64).tobytes()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class PromptSynthesizer:
    """Token ids for requests, deterministic for (vocabulary, seed); see the module doc."""

    def __init__(self, vocab: Vocab, seed: int) -> None:
        if vocab.size <= SYNTH_LOW_ID:
            raise ValueError(f"vocabulary of {vocab.size} ids: nothing above {SYNTH_LOW_ID}")
        self.vocab, self.seed = vocab, seed
        self._specials = np.array(sorted(vocab.special_ids), dtype=np.int64)

    def segments(self, request: Request) -> tuple[PromptSegment, ...]:
        """The request's prompt as segments, covering exactly ``prompt_len`` tokens."""
        return prompt_segments(request)

    def stream(self, key: str, length: int) -> np.ndarray:
        """The first ``length`` ids of ``key``'s stream (no special ids)."""
        rng = np.random.default_rng(_key_seed(self.seed, key))
        ids = rng.integers(SYNTH_LOW_ID, self.vocab.size, size=length, dtype=np.int64)
        if len(self._specials):
            ids[np.isin(ids, self._specials)] = SYNTH_LOW_ID
        return ids

    def prompt_ids(self, request: Request) -> list[int]:
        """What every engine sends for ``request``."""
        if request.prompt_token_ids:
            return self._in_vocab(request.prompt_token_ids)
        parts = [self.stream(s.key, s.length) for s in self.segments(request)]
        ids = np.concatenate(parts)
        bos = self.vocab.bos_id
        if bos is not None and 0 <= bos < self.vocab.size:
            ids[0] = bos
        return ids.tolist()

    def _in_vocab(self, ids: Sequence[int]) -> list[int]:
        """The workload's own ids; any beyond this vocabulary folded into it."""
        high, low = self.vocab.size, SYNTH_LOW_ID
        return [int(t) if 0 <= t < high else low + int(t) % (high - low) for t in ids]


__all__ = [
    "HASH_BLOCK_TOKENS",
    "SYNTH_LOW_ID",
    "PromptSynthesizer",
    "Vocab",
    "prompt_digest",
    "prompt_segments",
]
