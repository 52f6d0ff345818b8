"""Hand-made rows of requests.parquet and the summary keys every run has, shared by the
tests of metrics, slices, steady state and the run command."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The summary keys of the design (docs/INTERFACES.md, Metrics): every run has them.
SUMMARY_METRIC_KEYS = {
    "request_throughput",
    "token_throughput",
    "output_token_throughput",
    "normalized_latency_mean",
    "normalized_latency_p95",
    *(
        f"{m}_{s}"
        for m in ("ttft", "tpot", "itl", "e2e_latency")
        for s in ("mean", "p50", "p90", "p95", "p99")
    ),
    "num_requests",
    "num_completed",
    "num_failed",
    "duration_s",
    "preemptions",
}


def request_row(
    rid: int,
    arrival: float,
    first: float,
    finish: float,
    prompt: int,
    generated: int,
    status: str = "ok",
    preempt: int = 0,
    token_times: Iterable[float] = (),
) -> dict[str, Any]:
    """One request sent at its arrival, with its first token and finish times (REQUEST_COLUMNS)."""
    return {
        "request_id": rid,
        "workload": "w",
        "session_id": None,
        "turn": 0,
        "arrival_time": arrival,
        "send_time": arrival,
        "first_token_time": first,
        "finish_time": finish,
        "prompt_tokens": prompt,
        "generated_tokens": generated,
        "expected_output_tokens": generated,
        "num_preemptions": preempt,
        "status": status,
        "error": "" if status == "ok" else "x",
        "token_times": list(token_times),
        "prompt_digest": "",
    }
