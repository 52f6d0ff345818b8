"""Does our step-by-step vLLM driver cost throughput? Same offline batch, ours vs ``LLM.generate``.

Builds the tiny llama model (or uses --model), runs one offline batch through
``VllmEngine`` and through vLLM's own ``LLM.generate`` with identical prompts and sampling
(ignore_eos, max_tokens = the workload's output length), alternating, and prints both
throughputs (prompt + generated tokens per second of wall time) and their ratio.
Target: ratio >= 0.97.

    .venv/bin/python benchmarks/vllm_driver_overhead.py [--requests 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _batch(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    prompts = rng.integers(16, 256, n)
    outputs = rng.integers(16, 256, n)
    return [(int(p), int(o)) for p, o in zip(prompts, outputs, strict=True)]


def _measure(side: str, model: str, n: int, repeats: int, kv_blocks: int) -> dict:
    """One side in this process (one live engine): warm up, then time ``repeats`` runs."""
    from workload_eval.contracts import Request, Schedule, ScheduledRequest
    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.vllm import VllmEngine
    from workload_eval.workloads.synthesizer import PromptSynthesizer, Vocab

    lengths = _batch(n, seed=0)
    total = sum(p + o for p, o in lengths)
    config = EngineConfig(
        model=model,
        kv_blocks=kv_blocks,
        block_size=32,
        max_model_len=1024,
        max_num_batched_tokens=2048,
        max_num_seqs=256,
    )
    schedule = Schedule(
        "offline",
        [ScheduledRequest(Request(i, p, o), 0.0) for i, (p, o) in enumerate(lengths)],
    )
    expected = [o for _, o in lengths]
    if side == "driver":
        engine = VllmEngine()

        def once() -> None:
            rec = engine.run(schedule, config)
            assert rec.requests["generated_tokens"].tolist() == expected

    else:
        from vllm import LLM, SamplingParams

        from workload_eval.engines.vllm.args import build_engine_args

        llm = LLM(**build_engine_args(config))
        vocab = Vocab.of(llm.get_tokenizer(), int(llm.llm_engine.model_config.get_vocab_size()))
        synth = PromptSynthesizer(vocab, config.seed)  # the exact prompt ids the driver sends
        prompts = [{"prompt_token_ids": synth.prompt_ids(item.request)} for item in schedule.items]
        params = [
            SamplingParams(max_tokens=o, ignore_eos=True, temperature=1.0, detokenize=False)
            for o in expected
        ]

        def once() -> None:
            outs = llm.generate(prompts, params, use_tqdm=False)
            assert [len(o.outputs[0].token_ids) for o in outs] == expected

    once()  # warm-up
    rates, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        once()
        rates.append(total / (time.perf_counter() - t))
        cpus.append(time.process_time() - c)
    return {"side": side, "tokens": total, "rates": rates, "client_cpu": cpus}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: build the tiny llama model)")
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="alternating processes per side")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per process")
    ap.add_argument("--kv-blocks", type=int, default=2048)
    ap.add_argument("--tokenizer-dir", default=None)
    ap.add_argument("--side", choices=["driver", "generate"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    if args.side:  # child process: one side, one engine, JSON on the last line
        res = _measure(args.side, args.model, args.requests, args.repeats, args.kv_blocks)
        print("RESULT " + json.dumps(res))
        return

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        from workload_eval.tiny_model import build_tiny_model

        model = str(build_tiny_model("llama", Path(tmp.name) / "tiny", args.tokenizer_dir))
    results: dict[str, dict[str, list[float]]] = {
        s: {"rates": [], "client_cpu": []} for s in ("driver", "generate")
    }
    tokens = 0
    for r in range(args.rounds):
        order = ("driver", "generate") if r % 2 == 0 else ("generate", "driver")
        for side in order:
            cmd = [
                sys.executable,
                __file__,
                "--side",
                side,
                "--model",
                model,
                "--requests",
                str(args.requests),
                "--repeats",
                str(args.repeats),
                "--kv-blocks",
                str(args.kv_blocks),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                sys.exit(f"{side} failed:\n{out.stderr[-3000:]}")
            res = json.loads(line[-1][len("RESULT ") :])
            tokens = res["tokens"]
            results[side]["rates"] += res["rates"]
            results[side]["client_cpu"] += res["client_cpu"]
            print(
                f"round {r + 1} {side:8s}: " + ", ".join(f"{x:.0f}" for x in res["rates"]),
                flush=True,
            )
    a = statistics.median(results["driver"]["rates"])
    b = statistics.median(results["generate"]["rates"])
    print(f"batch: {args.requests} requests, {tokens} tokens (prompt + generated), model {model}")
    print(f"driver (VllmEngine) : {a:9.1f} tok/s (median of {len(results['driver']['rates'])})")
    print(f"vLLM LLM.generate   : {b:9.1f} tok/s (median of {len(results['generate']['rates'])})")
    print(
        f"client CPU s/run    : driver {statistics.median(results['driver']['client_cpu']):.2f},"
        f" generate {statistics.median(results['generate']['client_cpu']):.2f}"
    )
    print(f"ratio driver/generate: {a / b:.3f}  (target >= 0.97)")


if __name__ == "__main__":
    main()
