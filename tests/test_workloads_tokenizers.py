"""Tokenizers count exactly as the seed's Hugging Face tokenizers did."""

from __future__ import annotations

import warnings

import pytest

from workload_eval.errors import UserError
from workload_eval.workloads import hub
from workload_eval.workloads.tokenizers import get_tokenizer

TEXTS = [
    "Give three tips for staying healthy.",
    "",
    " leading space and  double  spaces\n\nnew paragraph\ttab",
    "Ünïcödé — emoji 🙂, numbers 1234567 and code: def f(x): return x**2",
]


def test_opt_is_gpt2_bpe_with_eos_prepended(tokenizer_dir):
    from transformers import GPT2Tokenizer

    ref = GPT2Tokenizer(
        str(tokenizer_dir / "gpt2" / "encoder.json"), str(tokenizer_dir / "gpt2" / "vocab.bpe")
    )
    tok = get_tokenizer("facebook/opt-13b", tokenizer_dir)
    got = tok.encode_batch(TEXTS)
    assert got == [[2, *ref.encode(t)] for t in TEXTS]
    assert got[0][:3] == [2, 23318, 1115]  # "Give three" in GPT-2's vocabulary
    assert tok.count_batch(TEXTS) == [len(x) for x in got]


def test_llama2_is_sentencepiece_with_bos(tokenizer_dir):
    tok = get_tokenizer("llama-2-13b", tokenizer_dir)
    got = tok.encode_batch(["Hello world", ""])
    assert got == [[1, 15043, 3186], [1]]
    assert tok.count_batch(TEXTS) == [len(x) for x in tok.encode_batch(TEXTS)]


def test_hub_only_model_falls_back_offline_with_a_warning(tokenizer_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_available.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tok = get_tokenizer("llama-3-8b", tokenizer_dir)
        assert tok.family == "llama-2"
        assert any("stand-in" in str(w.message) for w in caught)
        with pytest.raises(UserError, match="needs its hub tokenizer"):
            get_tokenizer("mistral-7b", tokenizer_dir, exact=True)
    finally:
        hub.hub_available.cache_clear()


def test_missing_tokenizer_files_name_the_file(tmp_path):
    with pytest.raises(UserError, match=r"encoder\.json: no such file"):
        get_tokenizer("opt-13b", tmp_path)


def test_local_model_folder_uses_its_own_tokenizer(tmp_path, tokenizer_dir):
    import json

    from transformers import GPT2TokenizerFast

    ref = GPT2TokenizerFast(
        vocab_file=str(tokenizer_dir / "gpt2" / "encoder.json"),
        merges_file=str(tokenizer_dir / "gpt2" / "vocab.bpe"),
    )
    ref.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "vocab_size": 50257,
                "max_position_embeddings": 512,
            }
        )
    )
    tok = get_tokenizer(str(tmp_path), tokenizer_dir, exact=True)
    assert tok.family == "hub"
    assert tok.encode_batch(["Hello world"]) == [ref("Hello world")["input_ids"]]
