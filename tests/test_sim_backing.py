"""Which measurements back a simulated deployment: data-driven from the calibration record."""

from __future__ import annotations

from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine
from workload_eval.engines.sim.backing import backing_for, backing_line, recorded_experiments
from workload_eval.engines.sim.deployment import physics_options, resolve_deployment
from workload_eval.schedules import build_schedule, parse_schedule
from workload_eval.workloads import load_workload


def _exp(i: int, **kw) -> dict:
    base = {
        "id": f"e{i}",
        "engine_generation": "vllm-v1",
        "gpu": "h100-sxm",
        "gpu_architecture": "hopper",
        "model": "meta-llama/Llama-2-7b-hf",
        "model_type": "llama",
        "moe": False,
        "tensor_parallel_size": 1,
        "weight_format": "fp16",
        "kv_cache_bytes": 2,
        "cells": 10,
        "median_abs_error": 0.04 + 0.01 * i,
    }
    return {**base, **kw}


RECORD = {
    "experiments": [
        _exp(0),
        _exp(1),
        _exp(2, tensor_parallel_size=2, model_type="mixtral", moe=True),
        _exp(3, tensor_parallel_size=4),
    ]
}


def dep(model="llama-2-7b", gpu="h100-sxm", **opts):
    return resolve_deployment(model, gpu, "vllm-v1", physics_options(opts))


def test_a_measured_deployment_is_validated_with_its_error():
    b = backing_for(dep(), RECORD)
    assert b.level == "validated" and b.experiments == 2
    assert b.median_abs_error == 0.045
    assert "validated, median 4% over 2 measured experiments" in b.statement


def test_every_unmeasured_dimension_is_named():
    b = backing_for(
        dep("llama-3.1-70b", "l40s", tensor_parallel_size=8, quantization="fp8"), RECORD
    )
    assert b.level == "extrapolated"
    text = " ".join(b.extrapolated)
    assert "GPU l40s" in text and "fp8 weights" in text and "TP8 (measured: TP1, TP2, TP4)" in text
    b = backing_for(dep(gpu="h200"), RECORD)
    assert b.level == "partly validated"
    assert b.extrapolated == ["GPU h200 (measured on h100-sxm, same architecture)"]


def test_an_engine_generation_without_measurements_says_so():
    b = backing_for(dep(vllm_version="0.11.0"), RECORD)
    assert b.level == "extrapolated" and "no measurement of this engine generation" in b.statement
    assert recorded_experiments({"experiments": []}) == []


def test_every_sim_run_carries_its_backing_statement():
    df = load_workload("alpaca", "llama-2-7b", num_requests=20)
    schedule = build_schedule(parse_schedule({"kind": "offline"}), df, seed=0)
    config = EngineConfig(model="llama-2-7b", gpu="h100", kv_blocks=500, policy="vllm-v1")
    records = SimEngine().run(schedule, config)
    backing = records.report.backing
    assert backing.level in {"validated", "partly validated", "extrapolated"}
    stored = {"resolved": records.report.model_dump(mode="json")}  # summary.json's config
    assert stored["resolved"]["backing"]["statement"] == backing.statement
    assert backing_line(stored) == f"simulator backing: {backing.statement}"


def test_the_stored_run_record_carries_the_deployment_and_its_backing(tmp_path):
    from workload_eval.engines.sim.engine import check_config
    from workload_eval.engines.sim.report import SimReport
    from workload_eval.runner import RunSpec, execute, load_run, save_run

    options = {"gpu": "h100", "policy": "vllm-v1", "tensor_parallel_size": 2}
    spec = RunSpec(
        engine_config=EngineConfig(model="llama-2-13b", kv_blocks=2000, options=options),
        workload="alpaca",
        source="profile",
        schedule={"kind": "offline", "num_requests": 10},
    )
    save_run(execute(spec), tmp_path)
    resolved = load_run(tmp_path).config.resolved  # read back from summary.json, typed
    assert isinstance(resolved, SimReport)
    assert (resolved.parallelism, resolved.num_gpus) == ("TP2", 2)
    assert resolved.engine_generation == "vllm-v1" and resolved.options.tensor_parallel_size == 2
    assert resolved.precision == "weights fp16, KV cache 16-bit"
    expected = backing_for(check_config(spec.engine_config).dep)  # what preflight resolves
    assert resolved.backing == expected and resolved.backing.statement
