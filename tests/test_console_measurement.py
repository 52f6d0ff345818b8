"""The end-of-run table shows intervals and the steady-state window when a summary has them."""

from rich.console import Console

from workload_eval.console import steady_line, summary_table


def _text(summary) -> str:
    console = Console(record=True, width=160)
    console.print(summary_table(summary))
    return console.export_text()


def test_table_has_interval_and_steady_columns():
    summary = {
        "num_completed": 9,
        "num_requests": 10,
        "duration_s": 12.5,
        "preemptions": 0,
        "normalized_latency_p95": 0.08,
        "normalized_latency_p95_ci_low": 0.07,
        "normalized_latency_p95_ci_high": 0.09,
        "ttft_mean": 0.25,
        "ttft_p99": 1.5,
        "ttft_mean_ci_low": 0.2,
        "ttft_mean_ci_high": 0.3,
        "ttft_p99_ci_low": None,
        "ttft_p99_ci_high": None,
        "confidence_level": 0.95,
        "steady.reached": True,
        "steady.num_completed": 7,
        "steady.num_requests": 8,
        "steady.normalized_latency_p95": 0.075,
        "steady.ttft_mean": 0.22,
        "steady.ttft_p99": 1.25,
    }
    text = _text(summary)
    assert "95% CI" in text and "steady state" in text
    assert "0.07-0.09" in text and "0.075" in text
    assert "200-300 / -" in text  # ms; p99 had too few requests for an interval
    assert "220 / 1,250" in text and "7 / 8" in text


def test_steady_line_says_why_there_is_no_window():
    assert steady_line({"ttft_mean": 1.0}) is None  # a summary from before intervals
    line = steady_line({"steady.reached": False, "steady.reason": "offline: every request"})
    assert line == "steady state: none (offline: every request)"
    line = steady_line(
        {
            "steady.reached": True,
            "steady.start_s": 6.0,
            "steady.end_s": 120.0,
            "steady.method": "mser-5",
            "ci_method": "batch means",
        }
    )
    assert "from 6 s to 120 s (mser-5)" in line and "batch means" in line
    # an old summary keeps its old columns
    assert "CI" not in _text({"ttft_mean": 0.25, "ttft_p99": 1.5})
