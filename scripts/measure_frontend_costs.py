"""Measure the request path outside the engine that ``validation/measurement.py`` adds.

1. Llama-2 tokenizer (Hugging Face, as vLLM's API server and inference-perf use it): encoding a
   shared-prefix prompt (random token ids decoded to text, 100 + 466 tokens) and re-encoding
   prompt + output as inference-perf E0 does before taking ``end_time``.
2. HTTP: an aiohttp client streaming a completion from an aiohttp server on loopback
   (``testing.instant_server``, which answers at once): POST -> first SSE line, and one more
   SSE event; the floor of any HTTP front end, before vLLM's own request handling.

Prints medians; the machine and its load are printed too (they matter: see the numbers).

    python scripts/measure_frontend_costs.py --tokenizer ../shared/tokenizers/llama-2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time

import numpy as np


def tokenizer_costs(path: str, repeats: int = 5) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    rng = np.random.default_rng(0)
    prompts = [tok.decode(rng.integers(0, tok.vocab_size, 566).tolist()) for _ in range(100)]
    outputs = [tok.decode(rng.integers(0, tok.vocab_size, 248).tolist()) for _ in range(100)]
    p_tokens = sum(len(tok(p).input_ids) for p in prompts)
    o_tokens = sum(len(tok(o).input_ids) for o in outputs)
    enc = min(_timed(lambda: [tok(p) for p in prompts]) for _ in range(repeats))
    both = min(_timed(lambda: [(tok(p), tok(o)) for p, o in zip(prompts, outputs, strict=True)])
               for _ in range(repeats))  # fmt: skip
    print(f"prompt encode: {enc / 100 * 1e3:.3f} ms per request, "
          f"{enc / p_tokens * 1e6:.2f} us per token ({p_tokens / 100:.1f} tokens)")  # fmt: skip
    print(f"prompt + output re-encode: {both / 100 * 1e3:.3f} ms per request, "
          f"{both / (p_tokens + o_tokens) * 1e6:.2f} us per token")  # fmt: skip


def _timed(fn) -> float:
    """CPU seconds of this process: a busy shared machine does not count its waiting."""
    start = time.process_time()
    fn()
    return time.process_time() - start


async def _http_costs(n: int) -> tuple[list[float], list[float]]:
    import aiohttp
    from aiohttp import web

    from workload_eval.testing.instant_server import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = web.AppRunner(build_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    first, second = [], []
    body = {"model": "m", "prompt": "hello " * 500, "max_tokens": 2, "stream": True}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(n):
                start = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{port}/v1/completions", json=body) as r:
                    stamps = []
                    async for line in r.content:
                        if line.strip():
                            stamps.append(time.perf_counter())
                first.append(stamps[0] - start)
                second.append(stamps[1] - stamps[0])
    finally:
        await runner.cleanup()
    return first, second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="../shared/tokenizers/llama-2")
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    tokenizer_costs(args.tokenizer)
    first, second = asyncio.run(_http_costs(args.requests))
    print(f"loopback HTTP: POST -> first SSE line {statistics.median(first) * 1e3:.3f} ms, "
          f"next SSE event {statistics.median(second) * 1e3:.3f} ms (medians)")  # fmt: skip


if __name__ == "__main__":
    main()
