"""The tiny model: builds offline, deterministic, loads with transformers, real tokenizer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from workload_eval.cli import main
from workload_eval.errors import UserError
from workload_eval.tiny_model import build_tiny_model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_llama_tiny_model_loads_with_llama2_tokenizer(tmp_path, tokenizer_dir):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_model("llama", tmp_path / "m", tokenizer_dir)
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.model_type == "llama"
    assert cfg.max_position_embeddings >= 2048
    assert cfg.hidden_size <= 128 and cfg.num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("Hello world").input_ids
    assert ids == [1, 15043, 3186]  # BOS + the real Llama-2 pieces
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == cfg.vocab_size == 32000


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_tiny_model_has_a_chat_template_for_the_chat_endpoint(tmp_path, tokenizer_dir, family):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(build_tiny_model(family, tmp_path / "m", tokenizer_dir))
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "user: hi\nassistant: yo\nassistant: "


def test_opt_tiny_model_uses_gpt2_bpe_with_bos(tmp_path, tokenizer_dir):
    from transformers import AutoConfig, AutoTokenizer

    out = build_tiny_model("opt", tmp_path / "m", tokenizer_dir)
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.model_type == "opt"
    assert cfg.vocab_size == 50272 and cfg.max_position_embeddings >= 2048
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("Hello world").input_ids
    assert ids[1:] == [15496, 995]  # GPT-2 BPE pieces after a prepended BOS
    assert len(ids) == 3


def test_tiny_model_is_deterministic(tmp_path, tokenizer_dir):
    a = build_tiny_model("llama", tmp_path / "a", tokenizer_dir)
    b = build_tiny_model("llama", tmp_path / "b", tokenizer_dir)
    assert _digest(a / "model.safetensors") == _digest(b / "model.safetensors")
    assert json.loads((a / "config.json").read_text()) == json.loads(
        (b / "config.json").read_text()
    )


def test_cli_models_tiny(tmp_path, tokenizer_dir, capsys):
    rc = main(
        [
            "models",
            "tiny",
            "--family",
            "opt",
            "--out",
            str(tmp_path / "m"),
            "--tokenizer-dir",
            str(tokenizer_dir),
        ]
    )
    assert rc == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert "wrote tiny opt model" in capsys.readouterr().out


def test_missing_tokenizer_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"tokenizer\.model"):
        build_tiny_model("llama", tmp_path / "m", tmp_path)
    assert (
        main(
            [
                "models",
                "tiny",
                "--family",
                "llama",
                "--out",
                str(tmp_path / "m"),
                "--tokenizer-dir",
                str(tmp_path / "nope"),
            ]
        )
        == 2
    )
