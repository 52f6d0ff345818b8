"""Credentials never reach a result file, an index, a table, a report or the console.

A password in ``--base-url http://user:PASS@host`` and an API key from ``--api-key-env``
go through `run`, `sweep` (points, point.json, index, capacity tables, experiment.json),
`capacity`, `report` and the console, against real servers: one that needs the key, and
one that echoes every header it got (the key included) into its error bodies and stream.
Every file written is searched as bytes and, for Parquet, cell by cell.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.cli import main
from workload_eval.testing.hostile_server import HostileServerProcess
from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

PASSWORD = "hunter2-Pa55word"
KEY = "sk-test-0123456789abcdef"
SECRETS = (PASSWORD, KEY)


@pytest.fixture(scope="module")
def keyed():
    with InstantServerProcess(FaultConfig(api_key=KEY)) as srv:
        yield srv


@pytest.fixture(scope="module")
def echo():
    with HostileServerProcess() as srv:
        yield srv


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@")


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, tokenizer_dir: Path) -> tuple[int, str]:
    monkeypatch.setenv("WE_TEST_KEY", KEY)
    monkeypatch.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue() + err.getvalue()


def _assert_clean(root: Path, console: str) -> int:
    """No secret in any file under ``root`` (bytes, and Parquet cells) or the console."""
    files = [p for p in root.rglob("*") if p.is_file()]
    for p in files:
        data = p.read_bytes()
        assert not any(s.encode() in data for s in SECRETS), p
        if p.suffix == ".parquet":
            cells = [str(c) for c in pd.read_parquet(p).to_numpy().ravel()]
            assert not any(s in c for c in cells for s in SECRETS), p
    assert not any(s in console for s in SECRETS), console
    return len(files)


OPENAI = ("--engine", "openai", "--model", "opt-13b", "--workload", "alpaca")


def test_run_and_report_against_a_server_that_needs_the_key(
    keyed, tmp_path, monkeypatch, tokenizer_dir
):
    url = _with_password(keyed.base_url)
    args = ["run", *OPENAI, "--no-progress", "--base-url", url, "--api-key-env", "WE_TEST_KEY"]
    code, console = _cli(
        [*args, "--num-requests", "5", "--out", str(tmp_path / "run")], monkeypatch, tokenizer_dir
    )
    assert code == 0, console
    requests = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert (requests["status"] == "ok").all()  # the key reached the server, and only it
    code, report = _cli(["report", str(tmp_path / "run")], monkeypatch, tokenizer_dir)
    assert code == 0, report
    assert _assert_clean(tmp_path, console + report) >= 6
    assert "http://***@127.0.0.1" in (tmp_path / "run" / "summary.json").read_text()


def test_a_server_that_echoes_the_key_does_not_get_it_stored(
    echo, tmp_path, monkeypatch, tokenizer_dir
):
    for mode in ("echo-headers", "echo-in-stream"):
        out = tmp_path / mode
        args = [
            "run",
            *OPENAI,
            "--base-url",
            _with_password(echo.url(mode)),
            "--api-key-env",
            "WE_TEST_KEY",
        ]
        code, console = _cli(
            [*args, "--num-requests", "3", "--out", str(out)], monkeypatch, tokenizer_dir
        )
        assert code == 3, console  # every request failed: the server refused or broke off
        errors = pd.read_parquet(out / "requests.parquet")["error"]
        assert errors.str.contains("Bearer ***", regex=False).all(), errors.tolist()
        _assert_clean(out, console)


def test_sweep_capacity_and_report_keep_no_credentials(keyed, tmp_path, monkeypatch, tokenizer_dir):
    spec = tmp_path.parent / f"{tmp_path.name}-spec.yaml"  # the user's own file: not ours to scrub
    spec.write_text(
        f"""
models: [opt-13b]
workloads: [alpaca]
engines:
  - {{engine: openai, base_url: "{_with_password(keyed.base_url)}", api_key_env: WE_TEST_KEY}}
schedules:
  - {{kind: poisson, duration: 1, rate: [4, 8]}}
  - {{kind: poisson, duration: 1, rate: capacity}}
slos: ["ttft_p99<=5"]
capacity: {{start: 4, tolerance: 0.5, max_rate: 16, confidence: none}}
"""
    )
    code, console = _cli(
        ["sweep", str(spec), "--out", str(tmp_path / "sweep"), "--no-progress"],
        monkeypatch,
        tokenizer_dir,
    )
    assert code == 0, console
    cap_args = [
        "capacity",
        *OPENAI,
        "--base-url",
        _with_password(keyed.base_url),
        "--api-key-env",
        "WE_TEST_KEY",
        "--duration",
        "1",
        "--start",
        "4",
        "--tolerance",
        "0.5",
        "--slo",
        "ttft_p99<=5",
        "--confidence",
        "none",  # 1 s probes are too short for an interval; the point verdicts suffice here
        "--out",
        str(tmp_path / "cap"),
    ]
    code, cap_console = _cli(cap_args, monkeypatch, tokenizer_dir)
    assert code == 0, cap_console
    code, report = _cli(["report", str(tmp_path / "sweep")], monkeypatch, tokenizer_dir)
    assert code == 0, report
    written = _assert_clean(tmp_path, console + cap_console + report)
    for name in ("index.csv", "index.parquet", "capacity.csv", "experiment.json"):
        assert (tmp_path / "sweep" / name).is_file(), name
    assert list((tmp_path / "sweep" / "points").glob("*/point.json"))
    assert (tmp_path / "cap" / "capacity.csv").is_file() and written > 20


def test_a_password_in_a_bad_url_stays_out_of_the_error_line(tmp_path, monkeypatch, tokenizer_dir):
    bad = f"http://alice:{PASSWORD}@[::1"
    code, console = _cli(
        ["run", *OPENAI, "--base-url", bad, "--out", str(tmp_path / "x")],
        monkeypatch,
        tokenizer_dir,
    )
    assert code == 2 and console.startswith("error: ") and "http://***@" in console
    assert PASSWORD not in console
