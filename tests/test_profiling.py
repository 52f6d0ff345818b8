"""`workload-eval profile` on the tiny model: a real vLLM profile the simulator can read."""

from __future__ import annotations

import json
import os

import pytest

from workload_eval.cli import main

pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, tokenizer_dir):
    from workload_eval.tiny_model import build_tiny_model

    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    yield build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama", tokenizer_dir)
    from workload_eval.engines.vllm import shutdown_engines

    shutdown_engines()


def test_profile_command_writes_a_profile_the_simulator_reads(tiny_llama, tmp_path):
    from workload_eval.engines.sim.perf_model import ProfilePerfModel

    out = tmp_path / "p.json"
    rc = main(
        [
            "profile",
            "--engine",
            "vllm",
            "--model",
            str(tiny_llama),
            "--device",
            "cpu",
            "--max-model-len",
            "512",
            "--kv-blocks",
            "256",
            "--grid",
            "quick",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    prof = json.loads(out.read_text())
    assert prof["format"] == "workload-eval-perf-profile/1"
    assert prof["engine"].startswith("vllm ") and prof["device"].startswith("cpu")
    assert prof["block_size"] == 32
    assert len(prof["prefill"]) == 4 and len(prof["decode"]) == 4 and len(prof["mixed"]) == 1
    for p in prof["prefill"]:
        assert p["sum_sq_tokens"] == p["tokens"] ** 2 // p["num_seqs"]
        assert 0 < p["time_s"] < 5
    for d in prof["decode"]:
        assert d["context_tokens"] >= d["batch_size"] * 32 and 0 < d["time_s"] < 5
    model = ProfilePerfModel.from_file(out)
    assert model.decode_time(8, 1024) > 0 and model.prefill_time(1, 128, 128 * 128) > 0


def test_profile_rejects_a_bad_block_size(tiny_llama, tmp_path, capsys):
    rc = main(
        [
            "profile",
            "--model",
            str(tiny_llama),
            "--block-size",
            "16",
            "--out",
            str(tmp_path / "p.json"),
        ]
    )
    assert rc == 2
    assert "multiple of 32" in capsys.readouterr().err
