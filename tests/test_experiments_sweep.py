"""Sweeps on the simulator: kill -9 / Ctrl-C then resume give exactly the uninterrupted index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.experiments import ResultStore, load_spec, run_sweep
from workload_eval.experiments.executors import ProcessPoolExecutor
from workload_eval.experiments.memory import memory_table, scaling_table
from workload_eval.experiments.store import MARKER

TABLES = ("index.csv", "index.parquet", "capacity.csv", "capacity.parquet", "capacity_probes.csv")


def write_spec(tmp: Path, data_dir: Path, tokenizer_dir: Path, body: str) -> Path:
    path = tmp / "spec.yaml"
    path.write_text(f"data_dir: {data_dir}\ntokenizer_dir: {tokenizer_dir}\n{body}")
    return path


SWEEP = """
name: resume
models: [opt-13b]
kv_blocks: [200]
workloads: [alpaca, sharegpt]
schedules:
  - {kind: offline, num_requests: [20, 40]}
  - {kind: poisson, duration: 20, rate: [1, 2, 4]}
  - {kind: poisson, duration: 20, rate: capacity}
capacity: {tolerance: 0.1, start: 2, confidence: none}  # 20 s probes: too short for intervals
"""


def completed(out: Path) -> int:
    """Stored points: a hidden temp folder being written already holds its marker."""
    return len([p for p in (out / "points").glob("*/" + MARKER) if p.parent.name[0] != "."])


def check_no_corrupt_points(out: Path) -> None:
    """Every visible point folder is complete and readable; temp folders are hidden."""
    for d in (out / "points").iterdir():
        if d.name.startswith("."):
            continue
        marker = json.loads((d / MARKER).read_text())
        assert marker["key"] == d.name
        for name in marker["files"]:
            if name.endswith(".json"):
                json.loads((d / name).read_text())
            else:
                pd.read_parquet(d / name)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workload_eval", *args]


def test_kill9_then_resume_equals_uninterrupted(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path
) -> None:
    spec_path = write_spec(tmp_path, data_dir, tokenizer_dir, SWEEP)
    ref = tmp_path / "ref"
    result = run_sweep(load_spec(spec_path), ref, executor=ProcessPoolExecutor(2))
    assert not result.failed and not result.interrupted
    total = completed(ref)
    assert total == result.ran == len(result.index) > 10
    assert len(result.capacity) == 2 and result.capacity["capacity_rate"].gt(0).all()

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        cli("sweep", str(spec_path), "--out", str(out), "--no-progress"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while completed(out) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = completed(out)
    assert 3 <= at_kill < total, "the kill should land mid-sweep"
    check_no_corrupt_points(out)

    resumed = subprocess.run(
        cli("sweep", str(spec_path), "--out", str(out), "--no-progress"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"reused {at_kill} stored" in resumed.stdout
    check_no_corrupt_points(out)
    assert not [p for p in (out / "points").iterdir() if p.name.startswith(".")]
    for name in TABLES:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    index = pd.read_csv(out / "index.csv")
    assert not [c for c in index.columns if "wall" in c]
    assert index["key"].is_monotonic_increasing


def test_ctrl_c_stops_cleanly_and_resumes(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path
) -> None:
    spec_path = write_spec(
        tmp_path,
        data_dir,
        tokenizer_dir,
        SWEEP.replace("  - {kind: poisson, duration: 20, rate: capacity}\n", ""),
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        cli("sweep", str(spec_path), "--out", str(out), "--no-progress"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while completed(out) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    kept = completed(out)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    assert 2 <= kept < 10
    assert len(pd.read_csv(out / "index.csv")) == kept  # the index covers what was kept
    check_no_corrupt_points(out)
    again = run_sweep(load_spec(spec_path), out)
    assert again.reused == kept and again.ran == 10 - kept and len(again.index) == 10


def test_leftovers_of_a_crash_are_removed_and_user_files_kept(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path
) -> None:
    spec_path = write_spec(
        tmp_path,
        data_dir,
        tokenizer_dir,
        """
workloads: [alpaca]
kv_blocks: [200]
schedules: [{kind: offline, num_requests: 10}]
""",
    )
    out = tmp_path / "out"
    points = out / "points"
    (points / ".tmp-0123456789abcdef-x").mkdir(parents=True)
    (points / ".tmp-0123456789abcdef-x" / "summary.json").write_text("{")
    (points / ".old-0123456789abcdef-y").mkdir(parents=True)
    # What the store did not write is the user's: never deleted, never read as a point.
    (points / "deadbeefdeadbeef").mkdir()
    (points / "deadbeefdeadbeef" / "requests.parquet").write_bytes(b"PAR1 half")
    (points / "my-notes").mkdir()
    (points / "my-notes" / "analysis.ipynb").write_text("{}")
    (points / ".tmp-mine").mkdir()
    (points / "README.txt").write_text("mine")
    result = run_sweep(load_spec(spec_path), out)
    kept = {"deadbeefdeadbeef", "my-notes", ".tmp-mine", "README.txt"}
    assert sorted(p.name for p in points.iterdir()) == sorted([*result.index["key"], *kept])
    assert (points / "my-notes" / "analysis.ipynb").read_text() == "{}"
    assert (points / "deadbeefdeadbeef" / "requests.parquet").read_bytes() == b"PAR1 half"
    assert len(result.index) == 1 and result.ran == 1


def test_memory_table_and_scaling_ratio(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path
) -> None:
    spec_path = write_spec(
        tmp_path,
        data_dir,
        tokenizer_dir,
        """
models: [opt-6.7b]
kv_blocks: [150, 600]
workloads: [sharegpt]
schedules: [{kind: offline, num_requests: 200}]
""",
    )
    result = run_sweep(load_spec(spec_path), tmp_path / "out")
    mem = memory_table(result.index)
    assert list(mem["kv_blocks"]) == [150, 600]
    scale = scaling_table(mem)
    assert len(scale) == 1 and scale["kv_ratio"].iloc[0] == 4
    ratio = scale["request_throughput_ratio"].iloc[0]
    assert ratio == pytest.approx(
        mem["request_throughput"].iloc[1] / mem["request_throughput"].iloc[0]
    )
    assert ratio > 1.2  # more KV blocks, bigger batches, more throughput


def test_store_index_is_rebuilt_from_points_only(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path
) -> None:
    spec_path = write_spec(
        tmp_path,
        data_dir,
        tokenizer_dir,
        """
workloads: [alpaca, dolly]
kv_blocks: [200]
schedules: [{kind: offline, num_requests: 10}]
""",
    )
    out = tmp_path / "out"
    first = run_sweep(load_spec(spec_path), out)
    store = ResultStore(out)
    before = (out / "index.parquet").read_bytes()
    os.remove(out / "index.parquet")
    rebuilt = store.rebuild_index()
    assert (out / "index.parquet").read_bytes() == before
    assert list(rebuilt["key"]) == sorted(first.index["key"])
    run = store.load_run(rebuilt["key"].iloc[0])
    assert run.summary["num_requests"] == 10 and len(run.records.requests) == 10


def test_a_point_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    """Each file is created and synced inside a hidden folder, the marker last; the folder's
    rename is what makes the point exist, so a write that fails part-way leaves nothing."""
    import stat

    from workload_eval.engines.base import EngineConfig
    from workload_eval.experiments.grid import point_key
    from workload_eval.runner import RunSpec

    store = ResultStore(tmp_path)
    spec = RunSpec(engine_config=EngineConfig(model="opt-13b", kv_blocks=200), workload="alpaca")
    files = {"requests.parquet": b"PAR1 table", "summary.json": b'{"num_requests": 1}\n'}
    key = store.write_point(spec, files, wall_s=1.5)
    assert key == point_key(spec) and store.completed_keys() == [key]
    folder = store.point_dir(key)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MARKER} == files
    marker = json.loads((folder / MARKER).read_text())
    assert marker["key"] == key and marker["files"] == sorted(files) and marker["wall_s"] == 1.5
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}

    other = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=200), workload="alpaca", seed=1
    )
    with pytest.raises(FileNotFoundError):
        store.write_point(other, {"requests.parquet": b"x", "no/such/folder.json": b"{}"})
    assert not store.has(point_key(other))
    assert sorted(os.listdir(store.points_dir)) == [key]  # no temp folder left behind
