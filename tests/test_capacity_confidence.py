"""Capacity with confidence: a rate meets the SLOs only when each bound holds over its
metric's interval; the answer carries an interval (met up to .. violated from)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.analysis.intervals import t_quantile
from workload_eval.cli import main
from workload_eval.errors import UserError
from workload_eval.experiments.capacity import BisectSearch, SeedGridSearch, find_capacity
from workload_eval.experiments.grid import confidence_floor
from workload_eval.experiments.paper_plan import QUICK, REFERENCE, Grid, study_data
from workload_eval.experiments.spec import CapacityOptions
from workload_eval.experiments.verdicts import judge_run, judge_runs, parse_confidence
from workload_eval.slo import SLO, parse_slos

P95 = SLO(metric="normalized_latency_p95", value=0.1875)


def with_interval(rate: float, seed: int = 0) -> dict:
    """p95 = 0.05 + 0.01 rate with a 95% interval of +-0.01 (20 batches): the point crosses
    0.1875 at 13.75, the upper end at 12.75, the lower end at 14.75."""
    p95 = 0.05 + 0.01 * rate
    return {
        "normalized_latency_p95": p95,
        "normalized_latency_p95_ci_low": p95 - 0.01,
        "normalized_latency_p95_ci_high": p95 + 0.01,
        "confidence_level": 0.95,
        "ci_batches": {"normalized_latency_p95": 20},
    }


def test_verdicts_are_met_undecided_or_violated():
    assert judge_run(with_interval(12.0), [P95], 0.95).label == "meets"
    assert judge_run(with_interval(13.75), [P95], 0.95).label == "undecided"
    assert judge_run(with_interval(15.0), [P95], 0.95).label == "violates"
    # without a confidence: the point estimate, as the paper judged
    assert judge_run(with_interval(13.75), [P95], None).label == "meets"
    assert judge_run(with_interval(13.8), [P95], None).label == "violates"
    # a lower bound mirrors: met when the whole interval is above it
    att = SLO.parse("slo_attainment>=0.9")
    m = {"slo_attainment": 0.92, "slo_attainment_ci_low": 0.88, "slo_attainment_ci_high": 0.96}
    assert judge_run(m, [att], 0.95).label == "undecided"
    assert judge_run({**m, "slo_attainment_ci_low": 0.91}, [att], 0.95).label == "meets"
    # nothing measured is a violation; too few requests for an interval is undecided
    assert judge_run({"normalized_latency_p95": None}, [P95], 0.95).label == "violates"
    few = {"normalized_latency_p95": 0.01, "normalized_latency_p95_ci_low": None}
    assert judge_run(few, [P95], 0.95).label == "undecided"
    # a metric without intervals (a throughput) is judged by its value
    thr = SLO.parse("request_throughput>=5")
    assert judge_run({"request_throughput": 6.0}, [thr], 0.95).label == "meets"


def test_another_level_rescales_the_stored_interval_exactly():
    m = with_interval(10.0)  # p95 0.15, stored 95% half-width 0.01 on 19 dof
    low, high = judge_run(m, [P95], 0.99).intervals["normalized_latency_p95"]
    half = 0.01 * t_quantile(0.99, 19) / t_quantile(0.95, 19)
    assert (low, high) == (pytest.approx(0.15 - half), pytest.approx(0.15 + half))


def test_several_seeds_mean_uses_the_interval_across_seeds():
    runs = [{"m": 1.0}, {"m": 2.0}, {"m": 3.0}]  # mean 2, 95% t-interval 2 +- 2.484
    slo = SLO.parse("m<=4")
    assert judge_runs(runs, [slo], 0.95, "mean").label == "undecided"
    assert judge_runs(runs, [slo], None, "mean").label == "meets"
    assert judge_runs(runs, [SLO.parse("m<=4.5")], 0.95, "mean").label == "meets"


def test_bisect_finds_both_edges_of_the_answer():
    result = find_capacity(with_interval, BisectSearch([P95], tolerance=0.01, confidence=0.95))
    assert 12.75 * 0.99 <= result.rate <= 12.75  # met: the upper end below the bound
    assert 14.75 < result.high <= 14.75 / 0.99  # violated: the lower end above it
    row = result.as_row()
    assert row["capacity_low"] == result.rate and row["capacity_high"] == result.high
    assert row["confidence"] == 0.95
    assert set(result.rates["verdict"]) == {"meets", "undecided", "violates"}
    point = find_capacity(with_interval, BisectSearch([P95], tolerance=0.01))
    assert 13.75 * 0.99 <= point.rate <= 13.75 and point.high == point.upper  # the bracket
    assert result.rate < point.rate < result.high  # the point answer lies inside


def test_seed_grid_rule_decides_both_edges():
    grid = [float(r) for r in range(10, 20)]
    result = find_capacity(with_interval, SeedGridSearch([P95], rates=grid, confidence=0.95))
    assert (result.rate, result.high) == (12.0, 15.0)  # met to 12; violated from 15
    point = find_capacity(with_interval, SeedGridSearch([P95], rates=grid))
    assert (point.rate, point.high) == (13.0, 14.0)


def test_probes_too_short_for_an_interval_are_not_proposed():
    slos = (P95,)
    # a p95 interval needs 200 requests (5 batches of 40), plus 25% for Poisson counts
    assert confidence_floor(slos, 0.95, 60.0) == pytest.approx(250 / 60)
    assert confidence_floor(slos, None, 60.0) == 0.0
    thr = tuple(parse_slos(["request_throughput>=1"]))
    assert confidence_floor(thr, 0.95, 60.0) == 0.0  # no interval needed


def test_confidence_options_and_keys():
    assert CapacityOptions().confidence == 0.95
    assert CapacityOptions(confidence="none").confidence is None
    # without a confidence the options read as before intervals existed: same task keys
    assert "confidence" not in CapacityOptions(confidence=None).key_data()
    assert parse_confidence("0.9") == 0.9 and parse_confidence("off") is None
    with pytest.raises(UserError, match=r"0\.5 to below 1"):
        parse_confidence("1.2")
    # the paper's study keeps its point verdicts, on every capacity search it runs
    grid = Grid(rates=[1, 2, 3], source="t")
    grids = {("opt-13b", "alpaca", kv): grid for kv in QUICK.kv_blocks("opt-13b")}
    data = study_data(QUICK, REFERENCE, {}, grids)
    searches = [data["capacity"], *(g["capacity"] for g in data["groups"] if "capacity" in g)]
    assert len(searches) >= 2 and all(c["confidence"] is None for c in searches)


def test_capacity_with_confidence_on_the_simulator(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
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
        "120",
        "--tolerance",
        "0.03",
        "--data-dir",
        str(data_dir),
        "--tokenizer-dir",
        str(tokenizer_dir),
    ]
    assert main([*args, "--confidence", "none", "--out", str(tmp_path / "point")]) == 0
    text = capsys.readouterr().out
    point = float(re.search(r"capacity: ([0-9.]+) req/s", text).group(1))
    assert "interval" not in text

    assert main([*args, "--out", str(tmp_path / "ci")]) == 0  # the default: 95%
    text = capsys.readouterr().out
    pattern = r"capacity: ([0-9.]+) req/s, interval ([0-9.]+)-([0-9.]+) req/s at 95%"
    found = re.search(pattern, text)
    assert found is not None, text
    low, high = float(found.group(2)), float(found.group(3))
    assert float(found.group(1)) == low
    # met with confidence <= the point answer < violated with confidence
    assert low <= point * 1.03 and point < high
    cap = pd.read_csv(tmp_path / "ci" / "capacity.csv")
    assert cap[["capacity_low", "capacity_high", "confidence"]].iloc[0].tolist() == [
        low,
        high,
        0.95,
    ]
    # every probe the search judged "meets" has its whole interval under the bound
    index = pd.read_csv(tmp_path / "ci" / "index.csv")
    probes = pd.read_csv(tmp_path / "ci" / "capacity_probes.csv").merge(index, on="key")
    met = probes[probes["passed"]]
    assert len(met) and (met["normalized_latency_p95_ci_high"] <= 0.1875).all()
    assert not math.isnan(float(index["normalized_latency_p95_ci_low"].iloc[0]))


def test_a_grid_too_short_for_intervals_is_refused_not_misread():
    from workload_eval.engines.base import EngineConfig
    from workload_eval.experiments.grid import CapacityTask

    base = {
        "engine": "sim",
        "engine_config": EngineConfig(model="opt-13b", kv_blocks=643).model_dump(mode="json"),
        "workload": "alpaca",
        "schedule": {"kind": "poisson", "duration": 60},
        "seed": 0,
    }
    grid = CapacityOptions(rule="seed-grid", rates=[2, 4, 6, 8])
    with pytest.raises(UserError, match=r"rate 2 req/s over 60 s gives too few requests"):
        CapacityTask("t", "sim", base, (P95,), grid, (0,)).make_search()
    point = grid.model_copy(update={"confidence": None})
    assert CapacityTask("t", "sim", base, (P95,), point, (0,)).make_search().grid[0] == 2.0


def test_a_grid_that_fails_from_its_start_names_the_grid_not_the_probe_length(
    tmp_path: Path, data_dir: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A seed grid whose two lowest rates violate stops at the grid's end: the note must
    say to widen the grid, not that the probes held too few requests (40 req/s over 60 s
    is far above the 4.2 req/s an interval needs). A bisection that went down to that
    floor still names it."""
    base = ["capacity", "--model", "opt-13b", "--kv-blocks", "643", "--workload", "alpaca"]
    data = ["--data-dir", str(data_dir), "--tokenizer-dir", str(tokenizer_dir)]
    grid = ["--slo", "normalized_latency_p95<=0.1875", "--rule", "seed-grid", "--rates", "40:44:1"]
    assert main([*base, *grid, "--duration", "60", *data]) == 0
    text = capsys.readouterr().out
    assert "capacity: 0 req/s (the search's limit: widen --rates" in text, text
    assert "too few requests" not in text

    floor = ["--slo", "ttft_p99<=0.001", "--duration", "600"]  # no rate can meet it
    assert main([*base, *floor, *data]) == 0
    text = capsys.readouterr().out
    assert "capacity: 0 req/s (below 2.083 req/s a 600 s probe holds too few requests" in text
