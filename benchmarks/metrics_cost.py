"""What the measurement analyses cost on the paper's online Alpaca run (16,797 requests).

OPT-13B on an A100 40GB, 643 KV blocks, the seed's Poisson process at 28 req/s for 600 s,
simulated once; then, best of ``--repeat``, the CPU time of: the summary's plain metrics
(the distributions the summary had before intervals), every latency's confidence interval,
the steady-state window, the whole ``summarize`` (plain + intervals + steady.*), the time
slices, and writing ``slices.parquet``. Printed beside the simulation's own CPU time.

    python benchmarks/metrics_cost.py [--rate 28] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from workload_eval.analysis.intervals import family_intervals
from workload_eval.analysis.slices import time_slices
from workload_eval.analysis.steady import steady_window
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine
from workload_eval.metrics import (
    completed,
    distribution,
    inter_token_latencies,
    request_metrics,
    summarize,
)
from workload_eval.schedules import arrival_times, build_schedule, parse_schedule
from workload_eval.slo import PERCENTILES
from workload_eval.storage import atomic_write_parquet
from workload_eval.workloads import load_workload


def cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=28.0)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    spec = parse_schedule({"kind": "poisson", "rate": args.rate, "duration": args.duration})
    df = load_workload("alpaca", "opt-13b", num_requests=len(arrival_times(spec, seed=0)))
    schedule = build_schedule(spec, df, seed=0)
    config = EngineConfig(
        model="opt-13b", kv_blocks=643, options={"gpu": "a100-40gb", "policy": "vllm-0.2"}
    )
    t0 = time.process_time()
    records = SimEngine().run(schedule, config)
    sim_cpu = time.process_time() - t0
    req = records.requests
    done = completed(req).sort_values("arrival_time", kind="stable")
    per = request_metrics(done)
    series = {
        "ttft": per["ttft"].to_numpy(float),
        "tpot": per["tpot"].to_numpy(float),
        "itl": inter_token_latencies(done),
        "e2e_latency": per["e2e_latency"].to_numpy(float),
    }

    def plain() -> None:
        for prefix, values in series.items():
            distribution(values, prefix)
        np.nanpercentile(per["normalized_latency"], 95)

    def intervals() -> None:
        family_intervals(per["normalized_latency"].to_numpy(float), "normalized_latency", (95,))
        for prefix, values in series.items():
            family_intervals(values, prefix, PERCENTILES)

    slices = time_slices(records)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slices.parquet"
        rows = [
            ("plain distributions (before)", cpu(plain, args.repeat)),
            ("confidence intervals", cpu(intervals, args.repeat)),
            ("steady-state window (MSER-5)", cpu(lambda: steady_window(req), args.repeat)),
            ("summarize (all of it)", cpu(lambda: summarize(records), args.repeat)),
            ("time slices (10 s)", cpu(lambda: time_slices(records), args.repeat)),
            ("write slices.parquet", cpu(lambda: atomic_write_parquet(path, slices), args.repeat)),
        ]
    s = summarize(records)
    steady = f"from {s['steady.start_s']:.1f} s" if s["steady.reached"] else "none"
    print(
        f"alpaca, {len(req)} requests at {args.rate:g} req/s for {args.duration:.0f} s, "
        f"{len(records.steps)} step rows; simulation {sim_cpu:.3f} s CPU; steady state "
        f"{steady}, "
        f"{len(slices)} slices"
    )
    for name, seconds in rows:
        print(f"  {name:<30} {seconds * 1e3:8.1f} ms CPU  ({seconds / sim_cpu:6.1%} of the sim)")
    load = os.getloadavg()[0]
    print(f"(best of {args.repeat}; load average {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
