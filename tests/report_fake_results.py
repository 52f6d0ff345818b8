"""A small hand-made results folder in the store's documented layout, for report tests.

OUT/points/<key>/{summary.json,requests.parquet,steps.parquet}; summaries carry the typed
run record ``config`` ({spec, resolved}). Numbers follow simple closed forms so tests can
predict them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS
from workload_eval.engines.sim.options import SimOptions
from workload_eval.engines.sim.report import SimReport
from workload_eval.runner import RunConfig, RunSpec

WORKLOADS = {
    "alpaca": (20, 60, 30.0),
    "cnn_dailymail": (800, 60, 4.0),
    "dolly": (60, 70, 17.0),
    "sharegpt": (300, 250, 3.5),
}
MODELS = {"opt-13b": 1.0, "llama-2-13b": 0.85}
KV = (150, 300, 643)
RATES = (0.5, 0.75, 1.0, 1.25, 1.5)  # fractions of the capacity


def capacity_of(workload: str, model: str, kv: int) -> float:
    """Rates below this pass the SLO in the fake data (p95 = 0.1 s/token at 1x capacity)."""
    return WORKLOADS[workload][2] * MODELS[model] * (kv / 643) ** 0.5


def _write_point(
    out: Path,
    config: dict,
    summary: dict,
    n: int,
    rng: np.random.Generator,
    workload: str,
    prompt: int,
    output: int,
) -> None:
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    d = out / "points" / key
    d.mkdir(parents=True)
    spec = RunSpec.model_validate(config)
    resolved = SimReport(
        options=SimOptions(gpu="a100-40gb"),
        kv_blocks=spec.engine_config.kv_blocks,
        model_spec=spec.engine_config.model,
        gpu_spec="a100-40gb",
        perf_model="fake",
        sim_end_time=20.0,
    )
    record = RunConfig(spec=spec, resolved=resolved).model_dump(mode="json")
    (d / "summary.json").write_text(json.dumps({**summary, "config": record}))
    arrival = np.sort(rng.uniform(0, 10, n))
    req = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "workload": workload,
            "session_id": pd.NA,
            "turn": 0,
            "arrival_time": arrival,
            "send_time": arrival,
            "first_token_time": arrival + 0.1,
            "finish_time": arrival + 1.0,
            "prompt_tokens": rng.lognormal(np.log(prompt), 0.6, n).astype(int) + 1,
            "generated_tokens": rng.lognormal(np.log(output), 0.8, n).astype(int) + 1,
            "num_preemptions": 0,
            "status": "ok",
            "error": "",
            "token_times": [[] for _ in range(n)],
        }
    )
    req["expected_output_tokens"] = req["generated_tokens"]
    req["prompt_digest"] = ""
    req[list(REQUEST_COLUMNS)].to_parquet(d / "requests.parquet", index=False)
    t = np.arange(0, 20, 0.05)
    total = int(config["engine_config"]["kv_blocks"])
    steps = pd.DataFrame(
        {
            "time": t,
            "duration": 0.05,
            "kind": "decode",
            "batched_tokens": 32,
            "num_running": (20 + 10 * np.sin(t)).astype(int),
            "num_waiting": (t % 3).astype(int),
            "num_preempted": (rng.uniform(size=len(t)) < 0.02).astype(int),
            "kv_blocks_used": (total * (0.5 + 0.4 * np.sin(t / 3) ** 2)).astype(int),
            "kv_blocks_total": total,
            "logical_tokens": 1000,
            "physical_tokens": 1100,
            "num_steps": 1,
        }
    )
    steps[list(STEP_COLUMNS)].to_parquet(d / "steps.parquet", index=False)


def make_results(
    out: Path,
    *,
    workloads: dict | None = None,
    models: dict | None = None,
    kv: tuple[int, ...] = KV,
) -> Path:
    """Offline N=100/1000 and online points around each capacity, for every combination."""
    rng = np.random.default_rng(0)
    workloads = workloads or WORKLOADS
    models = models or MODELS
    for w, (prompt, output, _) in workloads.items():
        for m, speed in models.items():
            for k in kv:
                ec = {"model": m, "options": {"gpu": "a100-40gb"}, "kv_blocks": k, "block_size": 16}
                for n in (100, 1000):
                    thr = WORKLOADS.get(w, (0, 0, 10.0))[2] * speed * (k / 643) ** 0.4
                    config = {
                        "engine": "sim",
                        "engine_config": ec,
                        "workload": w,
                        "schedule": {"kind": "offline", "num_requests": n},
                        "seed": 0,
                    }
                    summary = {
                        "request_throughput": thr * (0.6 if n == 100 else 1.0),
                        "token_throughput": thr * (prompt + output),
                        "num_requests": n,
                        "num_completed": n,
                        "num_failed": 0,
                        "preemptions": 0,
                        "duration_s": n / thr,
                    }
                    _write_point(out, config, summary, 50, rng, w, prompt, output)
                cap = capacity_of(w, m, k) if w in WORKLOADS else 5.0
                for frac in RATES:
                    rate = round(cap * frac, 4)
                    config = {
                        "engine": "sim",
                        "engine_config": ec,
                        "workload": w,
                        "schedule": {"kind": "poisson", "rate": rate, "duration": 600.0},
                        "seed": 0,
                    }
                    p95 = 0.1 * frac**3
                    summary = {
                        "request_throughput": rate,
                        "token_throughput": rate * 100,
                        "normalized_latency_mean": p95 / 2,
                        "normalized_latency_p95": p95,
                        "ttft_p95": 0.2 * frac**4,
                        "num_requests": 600 * rate,
                        "num_completed": 600 * rate,
                        "num_failed": 0,
                        "preemptions": int(10 * frac),
                        "duration_s": 600.0,
                    }
                    _write_point(out, config, summary, 30, rng, w, prompt, output)
    return out
