"""SIGTERM is Ctrl-C: `run`, `sweep` and `capacity` keep what they gathered and exit 143.

Each test waits for a sign that the work is under way (a progress bar drawn on a terminal,
a stored point, a served request) before signalling, and sizes the work so it cannot
finish first.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

import workload_eval
from workload_eval.interrupts import EXIT_SIGTERM
from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

# Simulated without skip-ahead, 300k requests take minutes: the signal always lands first.
LONG_SIM = (
    *("--model", "opt-13b", "--kv-blocks", "643", "--workload", "alpaca"),
    *("--engine-option", "skip_ahead=false", "--engine-option", "walk=general"),
)


class _Reader:
    """Collect a pipe's text in the background so a test can wait for a marker."""

    def __init__(self, stream: object) -> None:
        self.text = ""
        self._t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._t.start()

    def _pump(self, stream: object) -> None:
        for chunk in iter(lambda: stream.read(1), ""):  # type: ignore[attr-defined]
            self.text += chunk

    def wait_for(self, marker: str, proc: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            assert proc.poll() is None, f"exited early: {self.text[-2000:]}"
            assert time.monotonic() < deadline, f"no {marker!r}: {self.text[-2000:]}"
            time.sleep(0.01)

    def finish(self) -> str:
        self._t.join(timeout=30)
        return self.text


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLOAD_EVAL_")}
    env.update(WORKLOAD_EVAL_OFFLINE="1", WORKLOAD_EVAL_CACHE_DIR=str(tmp / "cache"))
    env["PYTHONPATH"] = str(Path(workload_eval.__file__).resolve().parents[1])  # this code
    return env


def _ignore_sigint() -> None:
    """What a script's background job (`cmd &`, nohup) starts with."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(
    args: list[str], tmp: Path, *, background: bool = False
) -> tuple[subprocess.Popen, _Reader]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "workload_eval", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp),
        preexec_fn=_ignore_sigint if background else None,
    )
    return proc, _Reader(proc.stderr)


def test_sigterm_to_a_sim_run_saves_what_was_simulated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", *LONG_SIM, "--num-requests", "300000", "--progress", "--out", str(out)]
    # stderr on a terminal, so the progress bar is drawn as soon as the simulation starts
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workload_eval", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=_env(tmp_path),
    )
    os.close(slave)
    seen = _read_until(master, "simulating", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == EXIT_SIGTERM, seen
    stderr = seen + _read_until(master, None, proc)
    os.close(master)
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["num_requests"] == 300_000
    assert summary["num_completed"] < 300_000
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 300_000
    assert (requests["status"] == "ok").sum() == summary["num_completed"]


def _read_until(fd: int, marker: str | None, proc: subprocess.Popen) -> str:
    """Text from a pty until ``marker`` shows (or, with None, until the child closes it)."""
    text = ""
    deadline = time.monotonic() + 120
    while marker is None or marker not in text:
        assert time.monotonic() < deadline, text[-2000:]
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            assert marker is None or proc.poll() is None, f"exited early: {text[-2000:]}"
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "sigint-ignored"])
def test_sigterm_to_an_openai_run_keeps_every_request(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path, background: bool
) -> None:
    """Also as a background job, started with SIGINT ignored: SIGTERM still saves."""
    out = tmp_path / "run"
    with InstantServerProcess(FaultConfig(token_interval=0.01)) as srv:
        args = [
            *("run", "--engine", "openai", "--base-url", srv.base_url, "--model", "opt-13b"),
            *("--workload", "alpaca", "--data-dir", str(data_dir)),
            *("--tokenizer-dir", str(tokenizer_dir), "--schedule", "constant"),
            *("--request-rate", "20", "--num-requests", "400", "--no-progress", "--out", str(out)),
        ]
        proc, err = _start(args, tmp_path, background=background)
        deadline = time.monotonic() + 120
        while _served(srv.base_url) < 20:  # 400 requests at 20/s: 20 s of work remain
            assert proc.poll() is None and time.monotonic() < deadline, err.text
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == EXIT_SIGTERM, err.finish()
    stderr = err.finish()
    assert "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["num_requests"] == 400
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 400 and requests["status"].isin(["ok", "failed"]).all()


def _stored(out: Path) -> int:
    """Stored points (a hidden temp folder being written already holds its marker)."""
    return len([p for p in (out / "points").glob("*/point.json") if p.parent.name[0] != "."])


def _served(url: str) -> int:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    line = next(x for x in text.splitlines() if x.startswith("instant:requests_total"))
    return int(float(line.split()[-1]))


SWEEP = """
models: [opt-13b]
kv_blocks: [643]
workloads: [alpaca]
engines: [{engine: sim, options: {skip_ahead: false, walk: general}}]
schedules: [{kind: offline, num_requests: [200, 201, 202, 300000]}]
"""


def test_sigterm_to_a_sweep_keeps_finished_points_and_resumes(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SWEEP)
    out = tmp_path / "out"
    proc, err = _start(["sweep", str(spec), "--out", str(out), "--no-progress"], tmp_path)
    # Points run in key order; wait until three are stored, then the long one is running
    # or next. Either way at least one point remains when the signal lands.
    deadline = time.monotonic() + 120
    while _stored(out) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, err.text
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == EXIT_SIGTERM, err.finish()
    stderr = err.finish()
    assert "interrupted" in stderr and "resume" in stderr and "Traceback" not in stderr
    kept = _stored(out)
    assert kept == 3
    assert len(pd.read_csv(out / "index.csv")) == kept


def test_sigterm_to_capacity_keeps_the_finished_probes(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    args = [
        "capacity",
        *LONG_SIM,
        *("--duration", "3000", "--start", "2", "--slo", "ttft_p99<=5", "--out", str(out)),
    ]
    proc, err = _start(args, tmp_path)
    deadline = time.monotonic() + 120
    while not _stored(out):
        assert proc.poll() is None and time.monotonic() < deadline, err.text
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == EXIT_SIGTERM, err.finish()
    stderr = err.finish()
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert _stored(out) >= 1
    assert not [p for p in (out / "points").iterdir() if p.name.startswith(".")]
