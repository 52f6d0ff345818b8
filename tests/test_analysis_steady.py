"""The steady-state window (analysis.steady, MSER-5) on hand-computable series and runs."""

import numpy as np
import pandas as pd
import pytest
from request_rows import request_row

from workload_eval.analysis.steady import (
    in_flight_series,
    mser_truncation,
    steady_window,
)
from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, EngineReport, RunRecords
from workload_eval.metrics import summarize


def test_mser5_truncates_a_ramp_before_its_plateau():
    """Batch means (5 equal values each): a ramp 0, 2, ..., 18, then 90 batches alternating
    19, 21. MSER(d) = sum((z - mean)^2) / (m - d)^2 over the batches left after d:
    d = 10 leaves the plateau alone: 90 / 90^2 = 0.01111; d = 9 keeps the 18: about
    93.96 / 91^2 = 0.01135; d = 11 leaves 45 x 21 and 44 x 19: 88.99 / 89^2 = 0.01123."""
    z = [*range(0, 20, 2), *([19, 21] * 45)]
    series = np.repeat(np.asarray(z, dtype=float), 5)
    assert mser_truncation(series) == (10, 100)


def test_mser5_on_a_constant_plateau_keeps_everything_after_the_ramp():
    series = np.repeat([1.0, 2.0, 3.0, *([4.0] * 47)], 5)
    assert mser_truncation(series) == (3, 50)
    assert mser_truncation(np.ones(45)) is None  # 9 batches: too few to judge


def test_in_flight_series_is_the_exact_time_average():
    # one request in [0, 1], another in [0.5, 2]: over [0, 1] the mean is 1.5, over [1, 2] 1
    out = in_flight_series(np.array([0.0, 0.5]), np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert out == pytest.approx([1.5, 1.0])


def _row(rid: int, arrival: float, latency: float, status: str = "ok") -> dict:
    """A request of 10 prompt and 11 output tokens, its first token halfway through."""
    return request_row(rid, arrival, arrival + latency / 2, arrival + latency, 10, 11, status)


def _requests(latency) -> pd.DataFrame:
    """One arrival every 0.1 s for 100 s; ``latency(t)`` seconds for a request sent at t."""
    rows = [_row(i, round(i * 0.1, 10), latency(i * 0.1)) for i in range(1000)]
    return pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))


def test_window_of_a_ramp_plateau_and_drain():
    """Every request takes 5 s, so the in-flight count ramps from 0 to 50 over the first
    5 s, stays at 50, and drains after the last arrival (99.9 s): the window is
    [5 s, 99.9 s] (to one MSER batch, 5 bins of 0.2 s) and holds the 950 later arrivals."""
    w = steady_window(_requests(lambda t: 5.0))
    assert w.reached and w.reason == ""
    assert w.start == pytest.approx(5.0, abs=1.0)
    assert w.end == pytest.approx(99.9)
    assert w.truncated_batches == 5 and w.batches == 100


def test_summary_reports_the_window_and_its_metrics():
    # the first 20 requests (the warm-up) are slow: the whole run's mean e2e sees them
    req = _requests(lambda t: 5.0 if t >= 2.0 else 30.0)
    records = RunRecords(req, pd.DataFrame(columns=list(STEP_COLUMNS)), EngineReport(engine="x"))
    s = summarize(records)
    assert s["steady.reached"] is True
    assert s["steady.method"].startswith("mser-5")
    assert s["steady.start_s"] >= 2.0
    assert s["steady.e2e_latency_mean"] == pytest.approx(5.0)
    assert s["e2e_latency_mean"] == pytest.approx(5.0 + 20 * 25.0 / 1000)
    assert s["steady.num_requests"] == sum(req["arrival_time"] >= s["steady.start_s"])
    # finishing in the window: the arrivals up to 5 s before its end, at 10 per second
    assert s["steady.request_throughput"] == pytest.approx(10.0, rel=0.02)
    # intervals: a constant latency has a zero-width interval
    assert s["steady.e2e_latency_p95_ci_low"] == pytest.approx(5.0)
    assert s["steady.e2e_latency_p95_ci_high"] == pytest.approx(5.0)
    assert s["e2e_latency_mean_ci_low"] < s["e2e_latency_mean"] < s["e2e_latency_mean_ci_high"]
    assert s["confidence_level"] == 0.95


def test_an_overloaded_run_has_no_steady_window():
    # latency grows with the arrival time: the queue never stops growing
    w = steady_window(_requests(lambda t: 0.5 * t + 1.0))
    assert not w.reached and w.reason.startswith("not stationary")
    records = RunRecords(
        _requests(lambda t: 0.5 * t + 1.0),
        pd.DataFrame(columns=list(STEP_COLUMNS)),
        EngineReport(engine="x"),
    )
    s = summarize(records, slo=["steady.e2e_latency_p95<=100"])
    assert s["steady.reached"] is False and s["steady.e2e_latency_p95"] is None
    assert s["slo_met"] is False  # no steady state: a bound on it is not met


def test_offline_and_tiny_runs_say_why_there_is_no_window():
    offline = _requests(lambda t: 1.0).assign(arrival_time=0.0)
    assert steady_window(offline).reason.startswith("offline")
    assert "fewer than" in steady_window(_requests(lambda t: 1.0).head(20)).reason
