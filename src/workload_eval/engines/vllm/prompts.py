"""Prompt token ids for the in-process engine: the workload's own, or synthesized from lengths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from workload_eval.contracts import Request

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Synthesized prompt ids start here: above the control/byte tokens of common vocabularies.
SYNTH_LOW_ID = 100
# Mooncake-style prefix hash ids name blocks of this many tokens.
HASH_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class PromptVocab:
    """What prompt synthesis needs to know about the model's vocabulary."""

    size: int
    special_ids: frozenset[int] = frozenset()
    bos_id: int | None = None

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase | None, model_vocab: int) -> PromptVocab:
        size = min(model_vocab, len(tokenizer)) if tokenizer is not None else model_vocab
        return cls(
            size=size,
            special_ids=frozenset(getattr(tokenizer, "all_special_ids", None) or ()),
            bos_id=getattr(tokenizer, "bos_token_id", None),
        )


def synth_prompt(request: Request, vocab: PromptVocab, seed: int) -> list[int]:
    """Deterministic ids in the model's vocabulary, no special tokens, BOS first.

    Turns of one session share their prefix (the history) and Mooncake hash ids map to the
    same blocks, so prefix caching sees what the workload implies.
    """
    n = max(int(request.prompt_len), 1)
    high = vocab.size

    def draw(key: list[int], count: int) -> np.ndarray:
        return np.random.default_rng(key).integers(SYNTH_LOW_ID, high, size=count)

    if request.prefix_hash_ids:
        parts = [draw([seed, 2, h], HASH_BLOCK_TOKENS) for h in request.prefix_hash_ids]
        ids = np.concatenate(parts)[:n]
        if len(ids) < n:
            ids = np.concatenate([ids, draw([seed, 3, request.request_id], n - len(ids))])
    elif request.session_id is not None:
        ids = draw([seed, 1, int(request.session_id)], n)
    else:
        ids = draw([seed, 0, request.request_id], n)
    out = [i if i not in vocab.special_ids else SYNTH_LOW_ID for i in ids.tolist()]
    if vocab.bos_id is not None and 0 <= vocab.bos_id < high:
        out[0] = int(vocab.bos_id)
    return out


def prompt_ids(request: Request, vocab: PromptVocab, seed: int) -> list[int]:
    """The workload's token ids when it has them (kept inside the vocab), else synthesized."""
    if request.prompt_token_ids:
        high = vocab.size
        return [
            int(t) if 0 <= t < high else SYNTH_LOW_ID + int(t) % (high - SYNTH_LOW_ID)
            for t in request.prompt_token_ids
        ]
    return synth_prompt(request, vocab, seed)
