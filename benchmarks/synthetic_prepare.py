"""How long a 100,000-request synthetic workload takes to prepare (target: under 2 s).

"Prepare" is what a run does before the engine starts: resolve and generate the workload
(``load_workload``) and build its schedule (``build_schedule``, which makes the
``contracts.Request`` objects with their prompt segments). Best of ``--repeat`` runs, per
workload form, with the machine load printed beside the numbers.

    .venv/bin/python benchmarks/synthetic_prepare.py [--requests 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

from workload_eval.schedules import PoissonExpSchedule, build_schedule, request_count
from workload_eval.workloads import load_workload

FORMS = {
    "synthetic (fixed)": "synthetic:prompt_tokens=512,output_tokens=256",
    "synthetic (lognormal/normal)": (
        "synthetic:prompt_tokens=lognormal(512,256,1,4096),output_tokens=normal(256,64,1,1024)"
    ),
    "shared_prefix (codegen)": "codegen",
    "shared_prefix multi-turn": "codegen_multi_turn",
    "sessions": "sessions:turns=uniform(1,8),prompt_tokens=uniform(20,200),output_tokens=100",
}


def prepare(workload: str, n: int) -> tuple[float, float]:
    """Seconds to load the workload, then to build the schedule."""
    spec = PoissonExpSchedule(rate=100.0, num_requests=n)
    t0 = time.perf_counter()
    df = load_workload(workload, "llama-2-7b", num_requests=request_count(spec, 0))
    t1 = time.perf_counter()
    schedule = build_schedule(spec, df, seed=0)
    t2 = time.perf_counter()
    assert len(schedule) == n
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'workload':32s} {'load s':>8s} {'schedule s':>11s} {'total s':>8s}")
    for label, workload in FORMS.items():
        runs = [prepare(workload, args.requests) for _ in range(args.repeat)]
        load, sched = min(runs, key=sum)
        print(f"{label:32s} {load:8.3f} {sched:11.3f} {load + sched:8.3f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
