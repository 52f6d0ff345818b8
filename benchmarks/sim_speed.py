"""How much faster than real time the simulator runs the paper's online Alpaca experiment.

OPT-13B on an A100 40GB with 643 KV blocks, the seed's Poisson process at 28 req/s for 600 s
(~16,800 requests), Alpaca lengths, one scheduler policy (``--policy``, optionally with
``--prefix-caching``). Prints simulated seconds / wall seconds and / CPU seconds of this
process (the fair figure on a busy shared machine), best of ``--repeat`` runs.
``--profile`` prints the hottest functions (cProfile).

    python benchmarks/sim_speed.py [--policy vllm-v1] [--prefix-caching] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine
from workload_eval.schedules import arrival_times, build_schedule, parse_schedule
from workload_eval.workloads import load_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=28.0)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--kv-blocks", type=int, default=643)
    ap.add_argument("--policy", default="vllm-0.2", choices=["vllm-0.2", "vllm-v0", "vllm-v1"])
    ap.add_argument("--prefix-caching", action="store_true", help="vllm-v1 only")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-skip-ahead", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    spec = parse_schedule({"kind": "poisson", "rate": args.rate, "duration": args.duration})
    count = len(arrival_times(spec, seed=0))
    df = load_workload("alpaca", "opt-13b", num_requests=count)
    schedule = build_schedule(spec, df, seed=0)
    config = EngineConfig(
        model="opt-13b",
        kv_blocks=args.kv_blocks,
        enable_prefix_caching=args.prefix_caching,
        options={"gpu": "a100-40gb", "policy": args.policy, "skip_ahead": not args.no_skip_ahead},
    )
    print(
        f"alpaca ({df.attrs.get('source')}), {len(schedule)} requests, {args.rate} req/s for "
        f"{args.duration:.0f} s, opt-13b / a100-40gb, {args.kv_blocks} blocks, {args.policy}"
        + (" + prefix caching" if args.prefix_caching else "")
    )

    best = best_cpu = float("inf")
    records = None
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        records = SimEngine().run(schedule, config)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    assert records is not None
    sim_seconds = float(records.requests["finish_time"].max())
    steps = int(records.steps["num_steps"].sum())
    print(
        f"simulated {sim_seconds:.1f} s ({steps} engine steps, {len(records.steps)} records, "
        f"{int(records.requests['num_preemptions'].sum())} preemptions) "
        f"in {best:.3f} s wall (best of {args.repeat})"
    )
    print(
        f"speed-up over real time: {sim_seconds / best:,.0f}x wall, "
        f"{sim_seconds / best_cpu:,.0f}x CPU ({best_cpu:.3f} s; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(SimEngine().run, schedule, config)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
