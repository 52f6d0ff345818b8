import importlib
import importlib.util
import json

import pandas as pd
import pytest
from request_rows import SUMMARY_METRIC_KEYS

from workload_eval.cli import main
from workload_eval.commands.run import build_spec, schedule_from_options
from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS
from workload_eval.errors import UserError
from workload_eval.schedules import GammaSchedule, PoissonSchedule, SessionsSchedule

SUMMARY_KEYS = SUMMARY_METRIC_KEYS | {"config", "package_version"}
SEED_WORKLOADS = ("alpaca", "dolly", "cnn_dailymail", "sharegpt", "sharegpt_chat")


def _has_sim() -> bool:
    if importlib.util.find_spec("workload_eval.engines.sim") is None:
        return False
    return hasattr(importlib.import_module("workload_eval.engines.sim"), "SimEngine")


needs_sim = pytest.mark.skipif(not _has_sim(), reason="simulator engine not in the tree yet")
BASE = ["run", "--model", "opt-13b", "--workload", "alpaca", "--out"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--kv-blocks", "100", "--gpu-memory-utilization", "0.9"],
            "either --kv-blocks or --gpu-memory-utilization",
        ),
        ([], "--engine sim needs --kv-blocks"),
        (["--kv-blocks", "100", "--request-rate", "2"], "--request-rate needs --duration"),
        (["--kv-blocks", "100", "--request-rate", "0", "--duration", "5"], "--request-rate:"),
        (["--kv-blocks", "100", "--request-rate", "-3", "--duration", "5"], "--request-rate:"),
        (["--kv-blocks", "100", "--request-rate", "2", "--duration", "0"], "--duration:"),
        (["--kv-blocks", "0"], "--kv-blocks:"),
        (
            ["--kv-blocks", "100", "--duration", "5"],
            "--duration does not apply to --schedule offline",
        ),
        (
            ["--kv-blocks", "100", "--schedule", "poisson", "--duration", "5"],
            "--schedule poisson needs --request-rate",
        ),
        (
            ["--kv-blocks", "100", "--request-rate", "2", "--duration", "5", "--time-scale", "2"],
            "--time-scale does not apply to --schedule poisson",
        ),
        (
            ["--kv-blocks", "100", "--request-rate", "2", "--duration", "5", "--burstiness", "0"],
            "--burstiness:",
        ),
        (["--kv-blocks", "100", "--slo", "ttft=1"], "--slo: cannot parse SLO 'ttft=1'"),
        (["--kv-blocks", "100", "--slo", "ttft<=-1"], "a per-request bound must be a positive"),
        (["--kv-blocks", "100", "--gpu", "h100", "--engine", "vllm"], "--gpu does not apply"),
        (["--kv-blocks", "100", "--max-concurrency", "4"], "--max-concurrency does not apply"),
        (
            ["--kv-blocks", "100", "--engine-option", "skip_ahaed=false"],
            "engine sim: unknown option 'skip_ahaed' (known: tensor_parallel_size,",
        ),
        (["--kv-blocks", "100", "--perf-profile", "/no/such.json"], "--perf-profile /no/such.json"),
    ],
)
def test_inconsistent_options_give_one_error_line_and_exit_2(extra, expected, capsys, tmp_path):
    assert main([*BASE, str(tmp_path / "o"), *extra]) == 2
    line = _error_line(capsys)
    assert line.startswith("error: ") and expected in line
    assert not (tmp_path / "o").exists()


def test_schedule_is_inferred_from_the_options():
    common = {
        "num_requests": None,
        "duration": 60.0,
        "time_scale": None,
        "think_time": None,
        "think_time_dist": "fixed",
        "session_arrival": "poisson-exp",
    }
    assert (
        schedule_from_options(None, request_rate=2, burstiness=None, **common)["kind"] == "poisson"
    )
    assert schedule_from_options(None, request_rate=2, burstiness=0.5, **common)["kind"] == "gamma"
    common["duration"] = None
    assert (
        schedule_from_options(None, request_rate=None, burstiness=None, **common)["kind"]
        == "offline"
    )


def _opts(**kw):
    o = {
        "engine": "sim",
        "model": "opt-13b",
        "gpu": None,
        "kv_blocks": 643,
        "gpu_memory_utilization": None,
        "workload": "alpaca",
        "schedule_kind": None,
        "num_requests": None,
        "request_rate": None,
        "duration": None,
        "burstiness": None,
        "time_scale": None,
        "think_time": None,
        "think_time_dist": "fixed",
        "session_arrival": "poisson-exp",
        "seed": 0,
        "block_size": 16,
        "max_num_batched_tokens": 2560,
        "max_num_seqs": 2048,
        "max_model_len": 2048,
        "policy": None,
        "n": 1,
        "sampling": "first",
        "source": "auto",
        "data_dir": None,
        "tokenizer_dir": None,
        "tokenizer": None,
        "perf_profile": None,
        "slo": (),
        "base_url": None,
        "api_key_env": None,
        "max_concurrency": None,
        "device": None,
        "dtype": None,
        "endpoint": None,
        "engine_options": (),
        "enable_chunked_prefill": None,
        "enable_prefix_caching": False,
    }
    o.update(kw)
    return o


def test_options_build_the_run_spec(tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text(
        json.dumps(
            {
                "format": "workload-eval-perf-profile/1",
                "prefill": [{"num_seqs": 1, "tokens": 128, "sum_sq_tokens": 16384, "time_s": 0.01}],
                "decode": [{"batch_size": 8, "context_tokens": 1024, "time_s": 0.005}],
            }
        )
    )
    spec = build_spec(
        _opts(
            request_rate=28.0,
            duration=600.0,
            seed=3,
            perf_profile=str(prof),
            slo=("ttft<=0.5", "normalized_latency<=0.1875"),
        )
    )
    assert spec.schedule == PoissonSchedule(rate=28, duration=600)
    assert spec.seed == 3 and spec.engine_config.seed == 3
    assert spec.engine_config.options == {"perf_profile": str(prof.resolve())}
    assert [str(s) for s in spec.slo] == ["ttft<=0.5", "normalized_latency<=0.1875"]
    gamma = build_spec(_opts(request_rate=2.0, num_requests=50, burstiness=0.5))
    assert gamma.schedule == GammaSchedule(rate=2, num_requests=50, burstiness=0.5)
    sess = build_spec(
        _opts(
            schedule_kind="sessions",
            workload="sharegpt_chat",
            request_rate=1.0,
            think_time=3.0,
            think_time_dist="exponential",
        )
    )
    assert sess.schedule == SessionsSchedule(rate=1, think_time=3, think_time_dist="exponential")


def test_real_engine_options_pass_through(monkeypatch):
    monkeypatch.setenv("KEY", "secret")
    spec = build_spec(
        _opts(
            engine="openai",
            kv_blocks=None,
            base_url="http://h:8000",
            api_key_env="KEY",
            max_concurrency=8,
            enable_chunked_prefill=False,
        )
    )
    assert spec.engine_config.options == {
        "base_url": "http://h:8000",
        "api_key_env": "KEY",
        "max_concurrency": 8,
    }
    assert spec.engine_config.enable_chunked_prefill is False


def test_slo_has_one_grammar_in_run_capacity_and_report():
    from workload_eval.commands.capacity import build_task
    from workload_eval.commands.report import report_slo

    flags = ("ttft<=0.25", "normalized_latency_p95 <= 0.1875")
    run = build_spec(_opts(slo=flags)).slo
    assert [str(s) for s in run] == ["ttft<=0.25", "normalized_latency_p95<=0.1875"]
    capacity = build_task({**_opts(slo=flags), **CAPACITY_FLAGS})
    assert list(capacity.slos) == run  # the same objects from the same text
    assert capacity.base["slo"] == ["ttft<=0.25"]  # probes report goodput for the bound
    assert report_slo("normalized_latency_p95<=0.1875") == run[1] == report_slo("0.1875")
    with pytest.raises(UserError, match="capacity needs a bound on a run metric"):
        build_task({**_opts(slo=("ttft<=0.25",)), **CAPACITY_FLAGS})


CAPACITY_FLAGS = {
    "kind": "poisson",
    "duration": 60.0,
    "burstiness": None,
    "rule": "bisect",
    "rates": None,
    "start": 1.0,
    "tolerance": 0.02,
    "seeds": "0",
    "aggregate": "majority",
    "repeat_band": 0.1,
}


def _check_run_folder(out, workload):
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["config"]["spec"]["workload"] == workload
    req = pd.read_parquet(out / "requests.parquet")
    steps = pd.read_parquet(out / "steps.parquet")
    assert list(req.columns)[: len(REQUEST_COLUMNS)] == list(REQUEST_COLUMNS)
    assert list(steps.columns)[: len(STEP_COLUMNS)] == list(STEP_COLUMNS)
    assert len(req) == summary["num_requests"] > 0
    assert len(steps) > 0
    assert summary["num_completed"] > 0 and summary["request_throughput"] > 0
    return summary


@needs_sim
@pytest.mark.parametrize("workload", SEED_WORKLOADS)
def test_cli_sim_offline_and_online_per_seed_workload(
    workload, data_dir, tokenizer_dir, tmp_path, capsys
):
    dirs = ["--data-dir", str(data_dir), "--tokenizer-dir", str(tokenizer_dir)]
    common = [
        "run",
        "--engine",
        "sim",
        "--model",
        "opt-13b",
        "--gpu",
        "a100-40gb",
        "--kv-blocks",
        "643",
        "--workload",
        workload,
        *dirs,
        "--no-progress",
    ]
    assert main([*common, "--num-requests", "30", "--out", str(tmp_path / "off")]) == 0
    off = _check_run_folder(tmp_path / "off", workload)
    assert off["num_requests"] == 30 and off["config"]["spec"]["schedule"]["kind"] == "offline"
    out = capsys.readouterr().out
    assert "Request throughput" in out and "summary.json" in out
    assert (
        main([*common, "--request-rate", "2", "--duration", "10", "--out", str(tmp_path / "on")])
        == 0
    )
    on = _check_run_folder(tmp_path / "on", workload)
    assert on["config"]["spec"]["schedule"] == {
        "kind": "poisson",
        "rate": 2.0,
        "duration": 10.0,
        "num_requests": None,
    }
    assert on["ttft_mean"] is not None and on["normalized_latency_p95"] > 0


@needs_sim
def test_cli_sim_sessions_and_gamma(data_dir, tokenizer_dir, tmp_path):
    dirs = ["--data-dir", str(data_dir), "--tokenizer-dir", str(tokenizer_dir), "--no-progress"]
    base = ["run", "--model", "opt-13b", "--gpu-memory-utilization", "0.9", *dirs]
    assert (
        main(
            [
                *base,
                "--workload",
                "sharegpt_chat",
                "--schedule",
                "sessions",
                "--request-rate",
                "0.5",
                "--num-requests",
                "20",
                "--think-time",
                "2",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    s = _check_run_folder(tmp_path / "s", "sharegpt_chat")
    assert s["num_requests"] == 20
    assert (
        main(
            [
                *base,
                "--workload",
                "dolly",
                "--request-rate",
                "3",
                "--burstiness",
                "0.5",
                "--num-requests",
                "25",
                "--slo",
                "ttft<=1",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    g = _check_run_folder(tmp_path / "g", "dolly")
    assert g["num_requests"] == 25 and g["goodput"] is not None


def _served(url: str) -> int:
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    line = next(x for x in text.splitlines() if x.startswith("instant:requests_total"))
    return int(float(line.split()[-1]))


def test_ctrl_c_saves_the_partial_run_and_exits_130(data_dir, tokenizer_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

    out = tmp_path / "run"
    with InstantServerProcess(FaultConfig(token_interval=0.01)) as srv:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workload_eval",
                "run",
                "--engine",
                "openai",
                "--base-url",
                srv.base_url,
                "--model",
                "opt-13b",
                "--workload",
                "alpaca",
                "--data-dir",
                str(data_dir),
                "--tokenizer-dir",
                str(tokenizer_dir),
                "--schedule",
                "constant",
                "--request-rate",
                "20",
                "--num-requests",
                "400",
                "--no-progress",
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        deadline = time.monotonic() + 60
        while _served(srv.base_url) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["num_requests"] == 400
    assert 1 <= summary["num_completed"] < 400
    req = pd.read_parquet(out / "requests.parquet")
    assert (req["status"] == "ok").sum() == summary["num_completed"]


def test_summary_table_shows_rates_and_latencies_in_ms():
    from rich.console import Console

    from workload_eval.console import fmt, summary_table

    summary = {
        "num_completed": 9,
        "num_requests": 10,
        "num_failed": 1,
        "duration_s": 12.5,
        "preemptions": 3,
        "request_throughput": 0.72,
        "ttft_mean": 0.25,
        "ttft_p99": 1.5,
        "itl_mean": None,
        "itl_p99": None,
        "goodput": 0.5,
    }
    console = Console(record=True, width=100)
    console.print(summary_table(summary, title="t"))
    text = console.export_text()
    assert "9 / 10" in text and "Requests failed or ignored" in text
    assert "250 / 1,500" in text  # seconds shown as milliseconds
    assert "ITL" not in text  # nothing streamed: no row rather than a row of dashes
    assert "Goodput" in text
    assert fmt(None) == "-" and fmt(float("nan")) == "-" and fmt(12345.6) == "12,346"


def test_progress_bar_disabled_is_a_silent_handle(capsys):
    from workload_eval.console import progress_bar

    with progress_bar(100.0, description="sim", unit="s", enabled=False) as bar:
        for t in range(0, 101, 10):
            bar.update_to(float(t))
        bar.advance(1)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    with progress_bar(10.0, description="sim", unit="s", enabled=True) as bar:
        bar.update_to(10.0)
    assert "sim" in capsys.readouterr().err


def test_long_latencies_switch_to_seconds():
    from rich.console import Console

    from workload_eval.console import summary_table

    console = Console(record=True, width=100)
    console.print(summary_table({"ttft_mean": 45.39, "ttft_p99": 82.48}))
    text = console.export_text()
    assert "45.39 / 82.48" in text and " s " in text


def test_engine_options_parse_json_values_or_text():
    from workload_eval.commands.run import parse_engine_options

    assert parse_engine_options(("record_token_times=true", "walk=general", "x=2.5")) == {
        "record_token_times": True,
        "walk": "general",
        "x": 2.5,
    }
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_engine_options(("oops",))
    spec = build_spec(_opts(engine_options=("record_token_times=true",)))
    assert spec.engine_config.options == {"record_token_times": True}


@needs_sim
def test_sim_token_times_option_fills_itl(data_dir, tokenizer_dir, tmp_path):
    assert (
        main(
            [
                "run",
                "--model",
                "opt-13b",
                "--kv-blocks",
                "643",
                "--workload",
                "alpaca",
                "--data-dir",
                str(data_dir),
                "--tokenizer-dir",
                str(tokenizer_dir),
                "--num-requests",
                "20",
                "--engine-option",
                "record_token_times=true",
                "--no-progress",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["itl_mean"] is not None and s["itl_mean"] > 0


def test_a_warning_is_one_line_not_a_source_excerpt(tmp_path, capsys):
    """README's Mixtral example: the model has no length profile of its own, so the
    workload borrows Llama-2's and says so, as one 'warning:' line (it printed
    ``loader.py:354: UserWarning: ...`` and the code line that raised it)."""
    args = ["run", "--model", "mixtral-8x7b", "--gpu", "h100", "--kv-blocks", "4000"]
    args += ["--workload", "sharegpt", "--source", "profile", "--num-requests", "20"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["warning: mixtral-8x7b: using the shipped llama-2 length profile of sharegpt"]
