"""Tiny random-weight models with real tokenizers, so the whole pipeline runs with no downloads.

The weights are noise (seeded, so the same folder comes out every time); the shapes are small
enough for vLLM on a laptop CPU, and the tokenizer is the real Llama-2 / GPT-2 (OPT) one so
token counts match the workloads' tokenizer families.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from workload_eval.errors import UserError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

Family = Literal["llama", "opt"]
FAMILIES: tuple[str, ...] = ("llama", "opt")

# Small but vLLM-friendly: CPU attention needs head_dim in {32, 64, ...}; 2048 positions so
# every seed workload fits (the seed's max_model_len).
HIDDEN = 128
HEADS = 4
LAYERS = 2
FFN = 256
MAX_POSITION = 2048
SEED = 0


def _tokenizer_root(tokenizer_dir: str | Path | None) -> Path:
    root = tokenizer_dir or os.environ.get("WORKLOAD_EVAL_TOKENIZER_DIR")
    if root is None:
        raise UserError(
            "--tokenizer-dir: no tokenizer folder given (expected a folder with "
            "llama-2/tokenizer.model and gpt2/{encoder.json,vocab.bpe}, or set "
            "WORKLOAD_EVAL_TOKENIZER_DIR)"
        )
    p = Path(root)
    if not p.is_dir():
        raise UserError(f"--tokenizer-dir {p}: no such folder")
    return p


def _need(path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"{path}: tokenizer file not found")
    return path


# A plain role-prefixed template: the random model has no chat format of its own, and
# without one vLLM's chat endpoint refuses every request.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _llama_tokenizer(root: Path, out: Path) -> int:
    """Llama-2 SentencePiece model -> a fast tokenizer saved beside the weights; returns vocab."""
    from transformers import LlamaTokenizer

    spm = _need(root / "llama-2" / "tokenizer.model")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(spm, Path(tmp) / "tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, legacy=True)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    shutil.copyfile(spm, out / "tokenizer.model")
    return len(tok)


def _opt_tokenizer(root: Path, out: Path) -> int:
    """GPT-2 byte-level BPE with a BOS prepended, as OPT's tokenizer does; returns vocab."""
    from transformers import GPT2Tokenizer

    enc = _need(root / "gpt2" / "encoder.json")
    bpe = _need(root / "gpt2" / "vocab.bpe")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(enc, Path(tmp) / "vocab.json")
        shutil.copyfile(bpe, Path(tmp) / "merges.txt")
        tok = GPT2Tokenizer.from_pretrained(tmp, add_bos_token=True)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    return len(tok)


def _config(family: str, vocab_size: int) -> PretrainedConfig:
    if family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=HIDDEN,
            intermediate_size=FFN,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            num_key_value_heads=HEADS,
            max_position_embeddings=MAX_POSITION,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=False,
            dtype="float32",
        )
    from transformers import OPTConfig

    return OPTConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        ffn_dim=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=MAX_POSITION,
        word_embed_proj_dim=HIDDEN,
        bos_token_id=50256,
        eos_token_id=50256,
        pad_token_id=50256,
        dtype="float32",
    )


def build_tiny_model(
    family: Family, out_dir: str | Path, tokenizer_dir: str | Path | None = None
) -> Path:
    """Write a seeded random-weight ``family`` model + tokenizer to ``out_dir``; returns it."""
    if family not in FAMILIES:
        raise UserError(f"--family {family!r}: expected one of {', '.join(FAMILIES)}")
    root = _tokenizer_root(tokenizer_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    import torch
    from transformers import AutoModelForCausalLM

    vocab = _llama_tokenizer(root, out) if family == "llama" else _opt_tokenizer(root, out)
    # OPT's real embedding is 50272 rows (a multiple of 8 above GPT-2's 50257); keep that shape.
    vocab_size = 32000 if family == "llama" else max(vocab, 50272)
    config = _config(family, vocab_size)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    return out
