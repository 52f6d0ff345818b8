"""`sweep --executor ray --ray-address HOST:PORT` against a real `ray start --head` cluster.

Ray 2.60 turns token authentication on for a local cluster when a token exists. A client
without the cluster's token (RAY_AUTH_MODE unset) gets one line naming the cause and the
fix instead of "Failed to connect to Ray cluster"; with matching settings the sweep runs on
the cluster and its index is byte-identical to a local run's. The cluster lives in its own
HOME (its token), temp dir and session, and only its own processes are stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import workload_eval
from workload_eval.testing.instant_server import free_port

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
SRC = str(Path(workload_eval.__file__).resolve().parents[1])
SPEC = """
models: [opt-13b]
kv_blocks: [200]
workloads: [alpaca]
schedules:
  - {kind: offline, num_requests: 20}
  - {kind: poisson, duration: 10, rate: [2, 4]}
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WORKLOAD_EVAL_"))}
    env.update(HOME=str(home), PYTHONPATH=SRC, WORKLOAD_EVAL_OFFLINE="1", **extra)
    return env


def _session_pids(sid: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == sid:
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, Path]]:
    """A token-authenticated head node (short paths: Ray's sockets must fit 107 bytes)."""
    base = Path(tempfile.mkdtemp(prefix="we-ray-", dir="/tmp"))
    home = base / "home"
    home.mkdir()
    subprocess.run(
        [RAY, "get-auth-token", "--generate"],
        env=_env(home),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    with open(base / "head.log", "w") as log:  # the head keeps writing to its own copy
        head = subprocess.Popen(
            [
                *(RAY, "start", "--head", "--port", str(port), "--temp-dir", str(base / "t")),
                *("--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"),
                "--block",
            ],
            env=_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (base / "head.log").read_text():
            assert head.poll() is None and time.monotonic() < deadline, (
                base / "head.log"
            ).read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", home
    finally:
        with_sid = _session_pids(head.pid)  # only the processes this cluster started
        for pid in with_sid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _session_pids(head.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in _session_pids(head.pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def _sweep(out: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = out.parent / "spec.yaml"
    spec.write_text(SPEC)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "workload_eval",
            "sweep",
            str(spec),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_a_client_without_the_token_is_told_the_cause_and_the_fix(cluster, tmp_path) -> None:
    address, home = cluster
    # the client's own connect window, shortened from Ray's 20 s for the test
    env = _env(home, RAY_gcs_server_port_wait_time_s="3")
    proc = _sweep(tmp_path / "out", env, "--executor", "ray", "--ray-address", address)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(error) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"--ray-address {address}: cannot connect to Ray (RAY_AUTH_MODE unset)" in error[0]
    assert "set RAY_AUTH_MODE=token" in error[0] and "ray get-auth-token" in error[0]


def test_with_matching_settings_the_index_equals_a_local_run(cluster, tmp_path) -> None:
    address, home = cluster
    remote = _sweep(
        tmp_path / "ray" / "out",
        _env(home, RAY_AUTH_MODE="token"),
        "--executor",
        "ray",
        "--ray-address",
        address,
    )
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = _sweep(tmp_path / "local" / "out", _env(home))
    assert local.returncode == 0, local.stderr[-3000:]
    for name in ("index.csv", "index.parquet"):
        ray_bytes = (tmp_path / "ray" / "out" / name).read_bytes()
        assert ray_bytes == (tmp_path / "local" / "out" / name).read_bytes(), name
