"""Hostile HTTP servers (127.0.0.1 only): whatever the server does, the real client records
every request with a status and a reason, writes the run as strict JSON, keeps credentials
out of every file and line it writes, stays within bounded memory and never hangs.

Each mode runs ``workload-eval run --engine openai`` in this process (``harness``: an
address-space limit and an alarm) against one shared hostile server process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
import pytest
from cases_hostile import MODES, Mode
from harness import Case, run_in_process

from workload_eval.errors import EXIT_INCOMPLETE
from workload_eval.testing.hostile_server import HostileServerProcess

PASSWORD = "pa55-w0rd-xyz"  # in the base URL: must never be written
API_KEY = "sk-fuzz-0123456789"  # from --api-key-env: echoed back by some modes
REQUESTS = 3


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServerProcess]:
    with HostileServerProcess() as srv:
        yield srv


def _case(mode: Mode, srv: HostileServerProcess) -> Case:
    @contextlib.contextmanager
    def server(tmp: Path) -> Iterator[Mapping[str, str]]:
        yield {"base_url": srv.url(mode.name).replace("http://", f"http://fuzz:{PASSWORD}@")}

    return Case(
        f"hostile:{mode.name}",
        (
            *("run", "--engine", "openai", "--base-url", "{base_url}", "--model", "opt-13b"),
            *("--workload", "alpaca", "--num-requests", str(REQUESTS), "--no-progress"),
            *("--api-key-env", "WE_FUZZ_KEY", "--engine-option", "request_timeout=2"),
            *("--engine-option", "metrics_interval=0.05", "--out", "{tmp}/out"),
        ),
        env={"WE_FUZZ_KEY": API_KEY},
        fixture=server,
    )


def _strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
def test_every_request_is_recorded_whatever_the_server_does(
    mode: Mode, hostile: HostileServerProcess, tmp_path: Path, tokenizer_dir: Path
) -> None:
    shared = {
        "WORKLOAD_EVAL_TOKENIZER_DIR": str(tokenizer_dir),
        "WORKLOAD_EVAL_CACHE_DIR": str(tmp_path / "cache"),
    }
    outcome = run_in_process(_case(mode, hostile), tmp_path, shared)
    console = outcome.stdout + outcome.stderr
    assert not outcome.crash and "Traceback" not in console, outcome.describe()
    assert outcome.code == (EXIT_INCOMPLETE if mode.status == "failed" else 0), outcome.describe()
    out = tmp_path / "out"
    summary = _strict_json(out / "summary.json")
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == REQUESTS and summary["num_requests"] == REQUESTS
    assert (requests["status"] == mode.status).all(), requests[["status", "error"]]
    failed = requests[requests["status"] == "failed"]
    assert (failed["error"].str.len() > 0).all() and (failed["error_side"] == "server").all()
    assert (failed["error"].str.len() <= 300).all()
    if mode.error is not None:
        assert failed["error"].str.lower().str.contains(mode.error.lower(), regex=False).all(), (
            failed["error"].tolist()
        )
    loadgen = summary["config"]["resolved"]["loadgen"]
    if mode.status == "failed":
        assert "no request succeeded" in console and not loadgen["valid"]
    if mode.reason is not None:
        assert mode.reason in loadgen["invalid_reason"] and "INVALID" in console
    # metrics count what was streamed: never more tokens than the workload asked for
    done = requests[requests["status"] == "ok"]
    assert (done["generated_tokens"] <= done["expected_output_tokens"]).all()
    assert summary["total_generated_tokens"] <= requests["expected_output_tokens"].sum()
    # credentials: in no file and no console line, whatever the server echoed
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and API_KEY.encode() not in data, path
    cells = [str(c) for c in requests.to_numpy().ravel()]
    assert not any(PASSWORD in c or API_KEY in c for c in cells)
    assert PASSWORD not in console and API_KEY not in console
