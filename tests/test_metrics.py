import math

import pandas as pd
import pytest
from request_rows import SUMMARY_METRIC_KEYS, request_row

from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, EngineReport, RunRecords
from workload_eval.errors import UserError
from workload_eval.metrics import (
    goodput,
    inter_token_latencies,
    meets_slo,
    request_metrics,
    run_interval,
    summarize,
)


def _records(rows) -> RunRecords:
    req = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    return RunRecords(
        requests=req,
        steps=pd.DataFrame(columns=list(STEP_COLUMNS)),
        report=EngineReport(engine="hand"),
    )


def _three():
    # arrival, first token, finish, prompt, generated
    return [
        request_row(0, 0.0, 1.0, 5.0, 100, 5, preempt=1),  # e2e 5, ttft 1, tpot 1, norm 1
        request_row(1, 1.0, 1.5, 3.0, 50, 4),  # e2e 2, ttft .5, tpot .5, norm .5
        request_row(2, 2.0, 4.0, 12.0, 10, 9, preempt=2),  # e2e 10, ttft 2, tpot 1, norm 10/9
    ]


def test_summary_has_every_design_key_and_no_configuration():
    s = summarize(_records(_three()))
    assert set(s) >= SUMMARY_METRIC_KEYS
    assert "config" not in s  # the runner adds the run record and the version
    assert "goodput" not in s


def test_throughputs_are_over_first_arrival_to_last_finish():
    s = summarize(_records(_three()))
    assert s["duration_s"] == 12.0
    assert s["request_throughput"] == pytest.approx(3 / 12)
    assert s["token_throughput"] == pytest.approx((160 + 18) / 12)
    assert s["output_token_throughput"] == pytest.approx(18 / 12)


def test_latency_statistics_by_hand():
    s = summarize(_records(_three()))
    assert s["e2e_latency_mean"] == pytest.approx(17 / 3)
    assert s["e2e_latency_p50"] == pytest.approx(5.0)
    assert s["e2e_latency_p90"] == pytest.approx(5 + 0.8 * 5)  # linear between 5 and 10
    assert s["ttft_mean"] == pytest.approx(3.5 / 3)
    assert s["tpot_mean"] == pytest.approx(2.5 / 3)
    assert s["normalized_latency_mean"] == pytest.approx((1 + 0.5 + 10 / 9) / 3)
    assert s["normalized_latency_p95"] == pytest.approx(1 + 0.9 * (10 / 9 - 1))
    assert s["preemptions"] == 3
    assert s["itl_mean"] is None  # no engine streamed token times: no ITL at all


def test_failed_and_ignored_requests_count_but_stay_out_of_latency():
    rows = [
        *_three(),
        request_row(3, 0.5, math.nan, math.nan, 3000, 0, status="ignored"),
        request_row(4, 3.0, 3.5, 100.0, 20, 2, status="failed"),
    ]
    s = summarize(_records(rows))
    assert (s["num_requests"], s["num_completed"], s["num_failed"]) == (5, 3, 2)
    assert s["num_ignored"] == 1
    assert s["duration_s"] == 12.0  # a failed request's finish does not stretch the interval
    assert s["e2e_latency_mean"] == pytest.approx(17 / 3)
    assert s["token_throughput"] == pytest.approx(178 / 12)


def test_itl_comes_from_streamed_token_times_pooled_over_requests():
    rows = [
        request_row(0, 0.0, 1.0, 1.6, 10, 3, token_times=[1.0, 1.2, 1.6]),
        request_row(1, 0.0, 2.0, 2.3, 10, 2, token_times=[2.0, 2.3]),
    ]
    gaps = inter_token_latencies(_records(rows).requests)
    assert gaps.tolist() == pytest.approx([0.2, 0.4, 0.3])
    s = summarize(_records(rows))
    assert s["itl_mean"] == pytest.approx(0.3)
    assert s["itl_p50"] == pytest.approx(0.3)


def test_single_token_requests_have_no_tpot():
    rows = [request_row(0, 0.0, 2.0, 2.0, 10, 1)]
    per = request_metrics(_records(rows).requests)
    assert math.isnan(per["tpot"].iloc[0])
    assert per["normalized_latency"].iloc[0] == 2.0
    s = summarize(_records(rows))
    assert s["tpot_mean"] is None and s["e2e_latency_p99"] == 2.0


def test_goodput_counts_requests_meeting_every_slo():
    rec = _records(_three())
    assert meets_slo(rec.requests, {"ttft": 1.0}).tolist() == [True, True, False]
    assert meets_slo(rec.requests, {"ttft": 1.0, "e2e_latency": 4}).tolist() == [False, True, False]
    assert goodput(rec.requests, {"normalized_latency": 1.0}) == pytest.approx(2 / 12)
    s = summarize(rec, slo={"tpot": 0.75})
    assert s["goodput"] == pytest.approx(1 / 12)
    assert s["slo"] == ["tpot<=0.75"] and "slo_met" not in s  # no bound on the run
    assert s["slo_attainment"] == pytest.approx(1 / 3)


def test_unknown_or_bad_slo_is_a_user_error():
    rec = _records(_three())
    with pytest.raises(UserError, match="unknown metric 'latency'"):
        summarize(rec, slo={"latency": 1.0})
    with pytest.raises(UserError, match="ttft<=-1: a per-request bound must be a positive"):
        summarize(rec, slo={"ttft": -1})


def test_latency_is_from_intended_arrival_and_lag_is_reported():
    row = request_row(0, 1.0, 3.0, 5.0, 10, 3)
    row["send_time"] = 2.5  # the client sent late: latency still counts from 1.0
    s = summarize(_records([row]))
    assert s["e2e_latency_mean"] == 4.0
    assert s["send_lag_mean"] == 1.5


def test_empty_run_gives_zero_counts_and_no_rates():
    s = summarize(_records([request_row(0, 0.0, math.nan, math.nan, 5, 0, status="failed")]))
    assert s["num_completed"] == 0 and s["num_failed"] == 1
    assert s["request_throughput"] is None and s["duration_s"] == 0.0
    assert run_interval(_records([]).requests) == 0.0
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in s.values())
