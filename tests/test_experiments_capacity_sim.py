"""Capacity search on the simulator, checked against a grid of runs; the capacity command."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.cli import main
from workload_eval.commands.capacity import task_evaluator
from workload_eval.engines.base import EngineConfig
from workload_eval.experiments import (
    SLO,
    BisectSearch,
    ResultStore,
    SeedGridSearch,
    find_capacity,
)
from workload_eval.experiments.grid import CapacityTask
from workload_eval.experiments.spec import CapacityOptions
from workload_eval.paper import max_rate_under_slo

P95 = SLO(metric="normalized_latency_p95", value=0.1875)
TOL = 0.02


def alpaca_task(data_dir: Path, tokenizer_dir: Path) -> CapacityTask:
    base = {
        "engine": "sim",
        "engine_config": EngineConfig(model="opt-13b", kv_blocks=643).model_dump(mode="json"),
        "workload": "alpaca",
        "schedule": {"kind": "poisson", "duration": 60},
        "seed": 0,
        "data_dir": str(data_dir),
        "tokenizer_dir": str(tokenizer_dir),
    }
    return CapacityTask("t", "sim", base, (P95,), CapacityOptions(), (0,))


def test_bisection_agrees_with_a_grid_of_runs(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path
) -> None:
    task = alpaca_task(data_dir, tokenizer_dir)
    evaluate = task_evaluator(task, ResultStore(tmp_path))
    step = 1.0
    grid = [float(r) for r in range(16, 34)]
    p95 = [evaluate(r, 0)["normalized_latency_p95"] for r in grid]
    grid_answer = max_rate_under_slo(grid, [v <= P95.value for v in p95]).rate
    assert grid_answer is not None
    assert 16 < grid_answer < 33, p95  # the SLO crossing lies inside the grid

    result = find_capacity(evaluate, BisectSearch([P95], tolerance=TOL, start=1.0))
    assert grid_answer * (1 - TOL) <= result.rate < grid_answer + step
    assert result.upper is not None and result.upper - result.rate <= TOL * result.upper
    assert set(result.probes.columns) >= {
        "rate",
        "seed",
        "passed",
        "normalized_latency_p95",
        "request_throughput",
    }

    # the paper's rule run as a search stops early and agrees with the full grid
    seed_rule = find_capacity(evaluate, SeedGridSearch([P95], rates=grid))
    assert seed_rule.rate == grid_answer
    assert len(seed_rule.rates) < len(grid)


def test_capacity_command_prints_probes_and_resumes(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cap"
    args = [
        "capacity",
        "--model",
        "opt-13b",
        "--kv-blocks",
        "643",
        "--workload",
        "alpaca",
        "--slo",
        "normalized_latency_p95<=0.1875",
        "--slo",
        "ttft_p99<=2",
        "--duration",
        "60",
        "--tolerance",
        "0.05",
        "--data-dir",
        str(data_dir),
        "--tokenizer-dir",
        str(tokenizer_dir),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    answer = re.search(r"capacity: ([0-9.]+) req/s", text)
    assert answer is not None and float(answer.group(1)) > 5
    assert "violates" in text and "meets" in text and "ttft_p99=" in text
    cap = pd.read_csv(out / "capacity.csv")
    assert cap["capacity_rate"].iloc[0] == float(answer.group(1))
    probes = pd.read_csv(out / "capacity_probes.csv")
    index = pd.read_csv(out / "index.csv")
    assert set(probes["key"]) == set(index["key"])
    # again: every probe comes from the store, same answer
    assert main(args) == 0
    assert f"capacity: {answer.group(1)} req/s" in capsys.readouterr().out
    assert len(pd.read_csv(out / "index.csv")) == len(index)


def test_capacity_command_seed_grid_rule(
    data_dir: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "capacity",
        "--model",
        "opt-13b",
        "--kv-blocks",
        "643",
        "--workload",
        "alpaca",
        "--slo",
        "normalized_latency_p95<=0.1875",
        "--duration",
        "60",
        "--rule",
        "seed-grid",
        "--rates",
        "20:32:2",
        "--data-dir",
        str(data_dir),
        "--tokenizer-dir",
        str(tokenizer_dir),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "rule seed-grid" in text and "rate        20 req/s" in text


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--slo", "p95 < 2"], "--slo: unknown metric 'p95' in SLO 'p95<2' (expected a per-"),
        (["--slo", "ttft_p99=2"], "--slo: cannot parse SLO 'ttft_p99=2'"),
        (["--slo", "ttft_p99<=2", "--rule", "seed-grid"], "needs --rates"),
        (["--slo", "ttft_p99<=2", "--rates", "1,x"], "--rates '1,x': expected numbers"),
        (["--slo", "ttft_p99<=2", "--tolerance", "2"], "--tolerance:"),
    ],
)
def test_capacity_command_bad_options_are_one_line(
    extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["capacity", "--model", "opt-13b", "--kv-blocks", "643", "--workload", "alpaca", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err
