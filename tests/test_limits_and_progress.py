"""Bounds on what one command may allocate, the integer ranges at the boundaries, and the
simulator's progress guarantee."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workload_eval.cli import main
from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine
from workload_eval.engines.sim.loop import STALL_LIMIT, NoProgressError, simulate
from workload_eval.errors import UserError
from workload_eval.limits import MAX_INT, MAX_REQUESTS, MAX_SEED
from workload_eval.schedules import PoissonSchedule, arrival_times
from workload_eval.schedules.arrivals import seed_poisson

SIM = ("run", "--model", "opt-13b", "--workload", "alpaca", "--no-progress")


def test_request_limit_is_explicit_and_can_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(MAX_REQUESTS.env, "40")
    args = [*SIM, "--kv-blocks", "643", "--num-requests", "50", "--out", str(tmp_path / "a")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: num_requests=50 makes 50 requests, more than the 40")
    assert "--max-requests" in err
    assert main([*args, "--max-requests", "50"]) == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["num_requests"] == 50


def test_rate_times_duration_is_bounded_before_any_allocation() -> None:
    with pytest.raises(ValueError, match="more than the 1,000,000"):
        PoissonSchedule(rate=1e12, duration=600)
    with pytest.raises(ValueError, match="s of arrivals"):
        PoissonSchedule(rate=1e-9, duration=1e12)
    with pytest.raises(ValueError, match="s of arrivals"):  # 3 arrivals at 1e-6/s: 35 days
        PoissonSchedule(rate=1e-6, num_requests=3)


def test_seed_process_drawn_in_chunks_is_the_seed_stream() -> None:
    for rate, duration, seed in [(28.0, 600.0, 0), (3.0, 30000.0, 3), (150.0, 12000.5, 7)]:
        rs = np.random.RandomState(seed)
        counts = rs.poisson(lam=rate * 0.01, size=int(duration * 100))
        one_shot = np.repeat(np.arange(len(counts)) * 0.01, counts)
        assert np.array_equal(seed_poisson(rate, duration, None, seed), one_shot)
    by_count = arrival_times(PoissonSchedule(rate=28, num_requests=5000), 0)
    by_duration = arrival_times(PoissonSchedule(rate=28, duration=600), 0)
    assert np.array_equal(by_count, by_duration[:5000])


def test_largest_valid_integers_run_and_write(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*SIM, "--kv-blocks", str(MAX_INT), "--request-rate", "5", "--duration", "2"]
    assert main([*args, "--seed", str(MAX_SEED), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    config = summary["config"]
    assert config["resolved"]["kv_blocks"] == MAX_INT and config["spec"]["seed"] == MAX_SEED
    steps = pd.read_parquet(out / "steps.parquet")
    assert (steps["kv_blocks_total"] == MAX_INT).all()


def test_mooncake_hash_ids_at_the_int64_edge_survive(tmp_path: Path) -> None:
    traces = tmp_path / "data" / "traces"
    traces.mkdir(parents=True)
    rows = [
        {"timestamp": 0, "input_length": 100, "output_length": 5, "hash_ids": [0, 2**63 - 1]},
        {"timestamp": 20, "input_length": 90, "output_length": 5, "hash_ids": []},
    ]
    (traces / "mooncake_t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    args = [*SIM, "--kv-blocks", "643", "--workload", "mooncake", "--schedule", "trace"]
    assert main([*args, "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    assert len(pd.read_parquet(out / "requests.parquet")) == 2


class _StuckScheduler:
    """Holds a request it never schedules: the shape of every hang found so far."""

    def __init__(self) -> None:
        self.waiting: list[int] = []
        self.running: list[int] = []
        self.steps = 0

    def add(self, gid: int, now: float) -> None:
        self.waiting.append(gid)

    def has_work(self) -> bool:
        return bool(self.waiting)

    def step(self, now: float, next_arrival: float) -> tuple[float, list[int]]:
        self.steps += 1
        return now, []


def _items(times: list[float]) -> list[ScheduledRequest]:
    return [
        ScheduledRequest(Request(request_id=i, prompt_len=10, output_len=2), t)
        for i, t in enumerate(times)
    ]


def test_a_scheduler_that_stops_progressing_is_an_error_not_a_hang() -> None:
    stuck = _StuckScheduler()
    with pytest.raises(NoProgressError, match=r"made no progress at t=0 s .*1 waiting"):
        simulate(Schedule(kind="offline", items=_items([0.0]), params={}), stuck, [math.nan])
    assert stuck.steps == STALL_LIMIT + 1


def test_a_nan_arrival_time_is_an_error_not_a_hang() -> None:
    schedule = Schedule(kind="trace", items=_items([0.0, math.nan]), params={})
    with pytest.raises(NoProgressError, match="next time nan"):
        SimEngine().run(schedule, EngineConfig(model="opt-13b", kv_blocks=643))
    assert issubclass(NoProgressError, UserError)


def test_negative_max_paddings_is_refused_before_the_run() -> None:
    schedule = Schedule(kind="offline", items=_items([0.0]), params={})
    config = EngineConfig(model="opt-13b", kv_blocks=643, options={"max_paddings": -100})
    with pytest.raises(UserError, match="'max_paddings': Input should be greater than or equal"):
        SimEngine().run(schedule, config)
