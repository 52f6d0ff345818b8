"""The Ray executor on a local Ray instance gives the same store as the local executor."""

from __future__ import annotations

from pathlib import Path

import ray

from workload_eval.experiments import load_spec, run_sweep

SPEC = """
name: ray
models: [opt-13b]
kv_blocks: [200]
workloads: [alpaca, sharegpt]
schedules:
  - {kind: offline, num_requests: 20}
  - {kind: poisson, duration: 10, rate: [2]}
  - {kind: poisson, duration: 10, rate: capacity}
capacity: {tolerance: 0.25, start: 2}
"""


def test_ray_executor_matches_local(tmp_path: Path, data_dir: Path, tokenizer_dir: Path) -> None:
    from workload_eval.experiments.executors import RayExecutor

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(f"data_dir: {data_dir}\ntokenizer_dir: {tokenizer_dir}\n{SPEC}")
    spec = load_spec(spec_path)
    local = run_sweep(spec, tmp_path / "local")
    executor = RayExecutor(num_cpus=2)
    try:
        assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2
        remote = run_sweep(spec, tmp_path / "ray", executor=executor)
    finally:
        executor.close()
    assert not ray.is_initialized()  # the executor shuts down the instance it started
    assert not remote.failed and remote.ran == local.ran > 4
    for name in ("index.csv", "index.parquet", "capacity.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
