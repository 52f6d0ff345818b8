"""`run` says whether its numbers can be trusted, and exits 3 when nothing succeeded.

Real servers: none at all (every request fails to connect), one that answers HTTP 500
to every fourth request, one whose `usage` disagrees with what it streamed, and the
instant server kept busy past `max_concurrency` (the schedule cannot be kept).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.cli import main
from workload_eval.errors import EXIT_INCOMPLETE
from workload_eval.testing.hostile_server import HostileServerProcess
from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess, free_port

RUN = ("run", "--engine", "openai", "--model", "opt-13b", "--workload", "alpaca", "--no-progress")


def _run(
    args: list[str], tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    monkeypatch.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*RUN, *args])
    return code, out.getvalue(), err.getvalue()


def test_nothing_succeeded_exits_3_with_the_errors_counted(tmp_path, tokenizer_dir, monkeypatch):
    out = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}"
    code, stdout, stderr = _run(
        ["--base-url", url, "--num-requests", "17", "--out", str(out)], tokenizer_dir, monkeypatch
    )
    assert code == EXIT_INCOMPLETE == 3
    assert "verdict: INVALID (no request succeeded (17 failed))" in stdout
    assert "17 of 17 requests failed:" in stdout
    assert "17 x ConnectFailed: Cannot connect to host" in stdout  # one message, counted
    assert "no request succeeded: exit 3" in stderr
    requests = pd.read_parquet(out / "requests.parquet")  # written all the same
    assert len(requests) == 17 and (requests["error_side"] == "client").all()
    assert json.loads((out / "summary.json").read_text())["num_completed"] == 0


def test_some_failures_are_listed_and_the_run_is_written(tmp_path, tokenizer_dir, monkeypatch):
    with InstantServerProcess(FaultConfig(fail_every=4)) as srv:
        code, stdout, _ = _run(
            ["--base-url", srv.base_url, "--num-requests", "12", "--out", str(tmp_path / "r")],
            tokenizer_dir,
            monkeypatch,
        )
    assert code == 0
    assert "3 of 12 requests failed:" in stdout
    # "injected failure of request 4/8/12" (the server numbers requests as they arrive, in
    # any order): one distinct message, numbers aside, counted 3 times; the first shown
    assert "3 x HTTP 500:" in stdout, stdout
    assert re.search(r"injected failure of request (4|8|12)\b", stdout), stdout


def test_token_counts_that_disagree_make_the_run_invalid_and_say_why(
    tmp_path, tokenizer_dir, monkeypatch
):
    with HostileServerProcess() as srv:
        code, stdout, _ = _run(
            [
                "--base-url",
                srv.url("usage-disagrees"),
                "--num-requests",
                "4",
                "--out",
                str(tmp_path / "r"),
            ],
            tokenizer_dir,
            monkeypatch,
        )
    assert code == 0  # every request completed: the numbers exist, flagged
    assert (
        "verdict: INVALID" in stdout
        and "4 answers' usage disagreed with the tokens streamed" in stdout
    )
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    loadgen = summary["config"]["resolved"]["loadgen"]
    assert not loadgen["valid"] and loadgen["usage_mismatches"] == 4
    requests = pd.read_parquet(tmp_path / "r" / "requests.parquet")
    # counted as streamed, not as claimed (the server claimed one token fewer)
    assert (requests["generated_tokens"] == requests["expected_output_tokens"]).all()


def test_a_schedule_not_kept_is_printed(tmp_path, tokenizer_dir, monkeypatch):
    """Two slots, and each request holds the server 10 ms per output token (tens of them):
    later sends wait for a slot, which is dispatch lag far above 10 ms, on any machine."""
    with InstantServerProcess(FaultConfig(token_interval=0.01)) as srv:
        code, stdout, _ = _run(
            [
                *("--base-url", srv.base_url, "--request-rate", "100", "--num-requests", "40"),
                *("--engine-option", "max_concurrency=2", "--out", str(tmp_path / "r")),
            ],
            tokenizer_dir,
            monkeypatch,
        )
    assert code == 0
    assert "verdict: INVALID (dispatch lag p99" in stdout
