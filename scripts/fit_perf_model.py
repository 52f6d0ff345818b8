"""Re-derive the performance model's engine-overhead constants from the seed paper's results.

Stage 1 (hardware efficiencies, overlap) is closed-form from DistServe's published OPT-13B
fit; see ``calibration.SOURCES``. This script does stage 2: with those fixed, it fits the
per-step and per-sequence engine overheads of the paper's vLLM 0.2.1 fork to the paper's
offline request throughputs (OPT-13B, A100-40GB, N=1000, all workloads and KV sizes), by
minimizing the mean squared log error over a coarse grid then a local refinement.

It simulates with a compact re-implementation of the vLLM 0.2 policy (prefill-first, padded
batch limit, padding limit 256, 1% watermark, recompute preemption of the newest request)
so it runs without the full simulator; ``benchmarks/sim_vs_paper.py`` checks the result on
the real simulator.

    .venv/bin/python scripts/fit_perf_model.py [--num-requests 1000] [--evaluate-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections import deque
from pathlib import Path

import numpy as np

from workload_eval.engines.sim.calibration import PERF, PerfConstants
from workload_eval.engines.sim.hardware import resolve_gpu
from workload_eval.engines.sim.perf_model import RooflinePerfModel
from workload_eval.models import resolve_model
from workload_eval.workloads import load_workload

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sim_vs_paper import PAPER_TOKENS_PER_REQUEST, eos_truncate

SHARED = Path(__file__).resolve().parents[2] / "shared"
WORKLOADS = ["alpaca", "cnn_dailymail", "dolly", "sharegpt"]


def simulate_offline(
    prompts: list[int],
    outputs: list[int],
    pm,
    kv_blocks: int,
    *,
    block_size: int = 16,
    max_batched: int = 2560,
    max_seqs: int = 2048,
    max_len: int = 2048,
) -> float:
    """Requests/s of an offline run under the vLLM 0.2 policy (all requests at t=0)."""
    watermark = int(0.01 * kv_blocks)
    free = kv_blocks
    waiting = deque(range(len(prompts)))
    plen = list(prompts)  # grows on recompute preemption
    gen = [0] * len(prompts)
    blocks = [0] * len(prompts)
    running: list[int] = []
    now, done = 0.0, 0
    limit = min(max_len, max_batched)
    while waiting or running:
        admitted: list[int] = []
        longest = total = sq = 0
        while waiting:
            r = waiting[0]
            length = plen[r] + gen[r]
            if length > limit:
                waiting.popleft()
                continue
            need = -(-length // block_size)
            m = max(longest, length)
            n = len(admitted) + 1
            if (
                free - need < watermark
                or n * m > max_batched
                or len(running) + n > max_seqs
                or n * m - (total + length) > 256
            ):
                break
            waiting.popleft()
            free -= need
            blocks[r] = need
            admitted.append(r)
            longest, total, sq = m, total + length, sq + length * length
        if admitted:
            now += pm.prefill_time(len(admitted), len(admitted) * longest, sq)
            for r in admitted:
                gen[r] += 1  # a (re-)prefill samples the next token
                if gen[r] >= outputs[r]:
                    free += blocks[r]
                    done += 1
                else:
                    running.append(r)
            running.sort()
            continue
        if not running:
            break
        kept: list[int] = []
        queue = deque(running)
        while queue:
            r = queue.popleft()
            n_tok = plen[r] + gen[r]
            need = -(-n_tok // block_size) - blocks[r]
            preempted_self = False
            while need > free:
                victim = queue.pop() if queue else r
                free += blocks[victim]
                blocks[victim] = 0
                waiting.appendleft(victim)
                if victim == r:
                    preempted_self = True
                    break
            if preempted_self:
                continue
            free -= need
            blocks[r] += need
            kept.append(r)
        if not kept:
            continue
        ctx = sum(plen[r] + gen[r] for r in kept)
        now += pm.decode_time(len(kept), ctx)
        running = []
        for r in kept:
            gen[r] += 1
            if gen[r] >= outputs[r]:
                free += blocks[r]
                done += 1
            else:
                running.append(r)
        # recompute-preempted requests re-enter in arrival order
        if waiting and len(waiting) > 1:
            waiting = deque(sorted(waiting))
    return done / now


def load_lengths(n: int, match: bool = False) -> dict[str, tuple[list[int], list[int]]]:
    out = {}
    for w in WORKLOADS:
        df = load_workload(
            w,
            "opt-13b",
            num_requests=n,
            data_dir=SHARED / "datasets",
            tokenizer_dir=SHARED / "tokenizers",
        )
        prompts, outputs = df["prompt_len"].to_numpy(), df["output_len"].to_numpy()
        if match:
            outputs = eos_truncate(prompts, outputs, PAPER_TOKENS_PER_REQUEST[w])
        out[w] = (prompts.tolist(), outputs.tolist())
    return out


def paper_points(n: int) -> list[tuple[str, int, float]]:
    doc = json.loads((SHARED / "calibration" / "opt-13b-offline.json").read_text())
    return [
        (w, e["kv_blocks"], e["by_num_requests"][str(n)]["request"])
        for w in WORKLOADS
        for e in doc["data"][w]
    ]


def evaluate(constants: PerfConstants, lengths, points) -> list[tuple[str, int, float, float]]:
    pm = RooflinePerfModel(resolve_model("opt-13b"), resolve_gpu("a100-40gb"), constants)
    return [(w, kv, paper, simulate_offline(*lengths[w], pm, kv)) for w, kv, paper in points]


def loss(rows) -> float:
    return float(np.mean([math.log(sim / paper) ** 2 for _, _, paper, sim in rows]))


FITTED = ("prefill_step_overhead", "decode_step_overhead", "decode_seq_overhead")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=1000)
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument(
        "--reference-lengths",
        action="store_true",
        help="use the datasets' reference output lengths, not EOS-matched ones",
    )
    ap.add_argument(
        "--fit-on",
        default=",".join(WORKLOADS),
        help="comma-separated workloads whose points drive the fit",
    )
    args = ap.parse_args()
    lengths = load_lengths(args.num_requests, match=not args.reference_lengths)
    all_points = paper_points(args.num_requests)
    points = [p for p in all_points if p[0] in args.fit_on.split(",")]
    best = PERF
    rows = evaluate(best, lengths, points)
    print(f"current constants: loss {loss(rows):.4f}")
    if not args.evaluate_only:
        best_loss = loss(rows)
        steps = {
            "prefill_step_overhead": 0.004,
            "decode_step_overhead": 0.004,
            "decode_seq_overhead": 4e-5,
        }
        for _ in range(6):  # coordinate descent with shrinking steps
            for name in FITTED:
                for sign in (1, -1):
                    while True:
                        value = getattr(best, name) + sign * steps[name]
                        if value < 0:
                            break
                        cand = dataclasses.replace(best, **{name: value})
                        cand_loss = loss(evaluate(cand, lengths, points))
                        if cand_loss >= best_loss:
                            break
                        best, best_loss = cand, cand_loss
                        print(f"  {name} = {value:.6g}: loss {best_loss:.4f}")
            steps = {k: v / 2 for k, v in steps.items()}
    rows = evaluate(best, lengths, all_points)
    for w, kv, paper, sim in rows:
        print(f"{w:14s} {kv:4d}  paper {paper:7.3f}  sim {sim:7.3f}  err {sim / paper - 1:+.1%}")
    errs = [abs(sim / paper - 1) for *_, paper, sim in rows]
    print(
        f"median |error| {np.median(errs):.1%}; constants: "
        + ", ".join(f"{k}={getattr(best, k):.6g}" for k in FITTED)
    )


if __name__ == "__main__":
    main()
