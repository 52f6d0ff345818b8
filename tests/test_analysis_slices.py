"""Time slices (analysis.slices): hand-computed windows, totals that add up on every engine's
kind of records (sim steps, server /metrics samples), and the run folder's slices.parquet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from request_rows import request_row

from workload_eval.analysis.slices import slice_summary, time_slices
from workload_eval.cli import main
from workload_eval.contracts import (
    REQUEST_COLUMNS,
    STEP_COLUMNS,
    EngineReport,
    Request,
    RunRecords,
    Schedule,
    ScheduledRequest,
)
from workload_eval.engines.base import EngineConfig
from workload_eval.metrics import summarize
from workload_eval.runner import RunSpec, execute, load_run, save_run


def _step(time, duration, running, waiting, used, total=100, tokens=10, preempted=0.0):
    row = dict.fromkeys(STEP_COLUMNS, math.nan)
    row.update(
        time=time,
        duration=duration,
        kind="decode",
        batched_tokens=tokens,
        num_running=running,
        num_waiting=waiting,
        num_preempted=preempted,
        kv_blocks_used=used,
        kv_blocks_total=total,
        num_steps=1,
    )
    return row


def test_windows_by_hand():
    requests = pd.DataFrame(
        [
            # 1 + 8 tokens: the first at 1 s, 8 spread evenly over (1, 9]: 1 + 1 + 7 by window
            request_row(0, 0.0, 1.0, 9.0, 100, 9),
            request_row(1, 3.0, 4.0, 12.0, 50, 2, token_times=(4.0, 12.0)),  # streamed: exact
            request_row(2, 5.0, math.nan, math.nan, 10, 0, status="failed"),
        ],
        columns=list(REQUEST_COLUMNS),
    )
    steps = pd.DataFrame(
        [
            _step(0.0, 2.0, 1, 0, 10),  # one running for [0, 2]
            _step(2.0, 2.0, 2, 1, 30, preempted=1),  # two running, one waiting for [2, 4]
            _step(8.0, 4.0, 2, 0, 50, tokens=40),  # [8, 12]: half in each window of 5 s
        ],
        columns=list(STEP_COLUMNS),
    )
    rec = RunRecords(requests, steps, EngineReport(engine="hand"))
    sl = time_slices(rec, 5.0).set_index("slice")
    assert sl["start"].tolist() == [0.0, 5.0, 10.0] and sl["end"].tolist() == [5.0, 10.0, 12.0]
    assert sl["arrivals"].tolist() == [2, 1, 0]
    assert sl["completed"].tolist() == [0, 1, 1] and sl["failed"].tolist() == [0, 1, 0]
    assert sl["prompt_tokens"].tolist() == [0, 100, 50]
    # request 0: first token at 1 s, 1 token/s over (1, 9]; request 1: tokens at 4 and 12
    assert sl["output_tokens"].tolist() == pytest.approx([1 + 4 + 1, 4, 1])
    assert sl["request_throughput"].tolist() == pytest.approx([0.0, 0.2, 0.5])
    # in flight: request 0 over [0, 9], request 1 over [3, 12] (the failed one never ended)
    assert sl["in_flight_mean"].tolist() == pytest.approx([(5 + 2) / 5, (4 + 5) / 5, 2 / 2])
    # engine means over the time it was stepping; busy: that time's share of the window
    assert sl["running_mean"].tolist() == pytest.approx([(2 + 4) / 4, 2.0, 2.0])
    assert sl["waiting_mean"].tolist() == pytest.approx([2 / 4, 0.0, 0.0])
    assert sl["kv_usage_mean"].tolist() == pytest.approx([(0.1 * 2 + 0.3 * 2) / 4, 0.5, 0.5])
    assert sl["busy"].tolist() == pytest.approx([4 / 5, 2 / 5, 1.0])
    assert sl["kv_usage_max"].tolist() == pytest.approx([0.3, 0.5, math.nan], nan_ok=True)
    assert sl["engine_tokens"].tolist() == pytest.approx([20, 20, 20])
    assert sl["preemptions"].tolist() == [1, 0, 0]
    assert sl.loc[1, "e2e_latency_p50"] == 9.0 and sl.loc[2, "ttft_mean"] == 1.0
    assert math.isnan(sl.loc[0, "ttft_p95"])  # nothing completed in the first window


def test_server_samples_hold_until_the_next_one():
    requests = pd.DataFrame([request_row(0, 0.0, 1.0, 10.0, 10, 5)], columns=list(REQUEST_COLUMNS))
    samples = pd.DataFrame(
        [_step(t, math.nan, r, 0, 20) | {"kind": "sample"} for t, r in ((1.0, 4), (6.0, 2))],
        columns=list(STEP_COLUMNS),
    )
    sl = time_slices(RunRecords(requests, samples, EngineReport(engine="openai")), 5.0)
    # 4 running from 1 s to 6 s, then 2 until the run's end (10 s); nothing seen before 1 s
    assert sl["running_mean"].tolist() == pytest.approx([4.0, (4 + 2 * 4) / 5])
    assert sl["busy"].isna().all()  # a server's samples say nothing about its steps


def _sum_check(records: RunRecords, sl: pd.DataFrame) -> None:
    s = summarize(records)
    assert sl["arrivals"].sum() == s["num_requests"]
    assert sl["completed"].sum() == s["num_completed"]
    assert sl["completed"].sum() + sl["failed"].sum() == s["num_requests"]
    assert sl["prompt_tokens"].sum() == s["total_prompt_tokens"]
    assert sl["output_tokens"].sum() == pytest.approx(s["total_generated_tokens"])
    assert sl["preemptions"].sum() == s["preemptions"]
    if records.steps["batched_tokens"].notna().any():
        assert sl["engine_tokens"].sum() == pytest.approx(records.steps["batched_tokens"].sum())


@pytest.mark.parametrize("token_times", [False, True])
def test_slices_add_up_to_the_run_on_the_simulator(data_dir, tokenizer_dir, token_times):
    spec = RunSpec(
        engine_config=EngineConfig(
            model="opt-13b", kv_blocks=150, options={"record_token_times": token_times}
        ),
        workload="sharegpt",
        schedule={"kind": "poisson", "rate": 4, "duration": 60},
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
    )
    result = execute(spec, slice_seconds=7.0)
    sl = result.slices
    assert sl is not None and sl["preemptions"].sum() > 0  # 150 blocks: the KV runs out
    _sum_check(result.records, sl)
    assert (np.diff(sl["start"]) == 7.0).all() and sl["end"].iloc[-1] == pytest.approx(
        result.summary["duration_s"] + result.records.requests["arrival_time"].min()
    )
    assert result.summary["slices.width_s"] == 7.0
    assert result.summary["slices.count"] == len(sl)
    assert result.summary["slices.kv_usage_max"] == pytest.approx(sl["kv_usage_max"].max())
    # the sim's steps are exact: the requests running, over the window, are in flight
    busy = sl[sl["busy"] > 0]
    assert (busy["running_mean"] * busy["busy"] <= busy["in_flight_mean"] + 1e-9).all()


def _poisson(rate: float, n: int) -> Schedule:
    t = np.cumsum(np.random.default_rng(0).exponential(1 / rate, n))
    items = [ScheduledRequest(Request(i, 32, 16, workload="w"), float(t[i])) for i in range(n)]
    return Schedule("poisson", items, {"rate": rate})


def test_slices_from_server_samples_add_up():
    from workload_eval.engines.openai import OpenAIEngine
    from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

    with InstantServerProcess(FaultConfig(fail_every=7, token_interval=0.001)) as srv:
        cfg = EngineConfig(
            model="instant", options={"base_url": srv.base_url, "metrics_interval": 0.1}
        )
        records = OpenAIEngine().run(_poisson(100, 150), cfg)
    assert (records.steps["kind"] == "sample").all() and len(records.steps) >= 3
    sl = time_slices(records, 0.5)
    _sum_check(records, sl)
    assert sl["failed"].sum() == (records.requests["status"] != "ok").sum() > 0
    assert sl["running_mean"].notna().any() and sl["busy"].isna().all()


def test_run_folder_has_slices_and_the_summary_says_so(tmp_path: Path, data_dir, tokenizer_dir):
    out = tmp_path / "run"
    args = [
        "run",
        "--model",
        "opt-13b",
        "--kv-blocks",
        "643",
        "--workload",
        "alpaca",
        "--request-rate",
        "5",
        "--duration",
        "30",
        "--slice-seconds",
        "5",
        "--data-dir",
        str(data_dir),
        "--tokenizer-dir",
        str(tokenizer_dir),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    sl = pd.read_parquet(out / "slices.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slices.width_s"] == 5.0 and summary["slices.count"] == len(sl) >= 6
    assert sl["completed"].sum() == summary["num_completed"]
    back = load_run(out)
    assert back.slices is not None and back.slices.equals(sl)
    save_run(back, tmp_path / "again")  # loaded runs save their slices again
    assert (tmp_path / "again" / "slices.parquet").is_file()
    assert slice_summary(sl, 5.0)["slices.count"] == len(sl)
    assert main([*args[:-2], "--slice-seconds", "0", "--out", str(out)]) == 2


@pytest.mark.vllm
def test_slices_add_up_on_real_vllm(tmp_path_factory, tokenizer_dir):
    """vLLM's own per-iteration rows (engines/vllm/steps.py) give the engine columns."""
    pytest.importorskip("vllm")
    import os

    from workload_eval.engines.base import get_engine
    from workload_eval.engines.vllm import shutdown_engines
    from workload_eval.tiny_model import build_tiny_model

    model = build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama", tokenizer_dir)
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    config = EngineConfig(
        model=str(model),
        kv_blocks=96,
        block_size=32,
        max_model_len=1024,
        max_num_batched_tokens=1024,
    )
    try:
        records = get_engine("vllm").run(_poisson(20, 60), config)
    finally:
        shutdown_engines()
    assert (records.requests["status"] == "ok").all()
    sl = time_slices(records, 0.5)
    _sum_check(records, sl)
    assert (sl["busy"].dropna() <= 1.0 + 1e-9).all() and sl["running_mean"].notna().any()
    assert sl["kv_usage_max"].max() <= 1.0
