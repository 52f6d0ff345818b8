"""`workload-eval profile --engine torch`: a kernels-only profile of any config, on this CPU."""

from __future__ import annotations

import json

import pytest

from workload_eval.cli import main
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine
from workload_eval.engines.sim.deployment import perf_model_for, physics_options, resolve_deployment
from workload_eval.engines.sim.perf_model import KernelProfilePerfModel
from workload_eval.schedules import build_schedule, parse_schedule
from workload_eval.workloads import load_workload

pytest.importorskip("torch")

TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "max_position_embeddings": 512,
}


@pytest.fixture()
def tiny_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    return tmp_path


def test_profile_torch_writes_a_profile_the_simulator_runs_on(tiny_config, tmp_path):
    out = tmp_path / "p.json"
    args = ["profile", "--engine", "torch", "--model", str(tiny_config), "--grid", "quick"]
    assert main([*args, "--out", str(out)]) == 0
    prof = json.loads(out.read_text())
    assert prof["format"] == "workload-eval-perf-profile/1"
    assert prof["engine"].startswith("torch ") and prof["device"].startswith("cpu")
    assert prof["includes_engine_overheads"] is False and prof["num_layers"] == 2
    assert len(prof["prefill"]) == 4 and len(prof["decode"]) == 4 and len(prof["mixed"]) == 1
    for section in ("prefill", "decode", "mixed"):
        assert all(0 < p["time_s"] < 1 for p in prof[section])
    assert {k["tokens"] for k in prof["kernels"]["linear_layer"]} >= {1, 8, 16, 32}

    dep = resolve_deployment(str(tiny_config), "h100", "vllm-v1", physics_options({}))
    pm = perf_model_for(dep, str(out))
    assert isinstance(pm, KernelProfilePerfModel)
    cpu = pm.roofline.cpu_time(4, 0)  # the engine's CPU time is added to the kernels
    assert pm.decode_time(4, 256) >= cpu
    expect = sum(pm.decode_time(4, 256 + 4 * k) for k in range(10))
    assert pm.decode_run_time(4, 256, 10) == pytest.approx(expect)

    df = load_workload("alpaca", "llama-2-7b", num_requests=30)
    schedule = build_schedule(parse_schedule({"kind": "offline"}), df, seed=0)
    config = EngineConfig(
        model=str(tiny_config),
        gpu="h100",
        kv_blocks=400,
        policy="vllm-v1",
        options={"perf_profile": str(out)},
    )
    records = SimEngine().run(schedule, config)
    assert (records.requests["status"] == "ok").all()
    assert records.report.perf_model == "KernelProfilePerfModel"


def test_profile_torch_rejects_bad_settings(tiny_config, tmp_path, capsys):
    out = str(tmp_path / "p.json")
    base = ["profile", "--engine", "torch", "--model", str(tiny_config), "--out", out]
    assert main([*base, "--tensor-parallel-size", "3"]) == 2
    assert "does not divide" in capsys.readouterr().err
    assert main([*base, "--dtype", "int3"]) == 2
    assert "--dtype 'int3'" in capsys.readouterr().err
