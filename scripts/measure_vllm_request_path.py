"""Measure vLLM's own request path around the engine core, on a real (CPU) vLLM server.

Starts ``vllm.entrypoints.openai.api_server`` with the project's tiny random Llama model, sends
sequential streamed completions of inference-perf-like prompts (random token ids decoded to
text, ~575 tokens) to an idle server and splits each time to first token into:

- ``client - prometheus``: HTTP (request parse, response headers, the first SSE event), prompt
  tokenisation and anything before vLLM stamps the request's arrival; measured twice, with one
  aiohttp session per request (inference-perf E0: a new TCP connection each time, loopback, so
  no DNS) and with one shared session;
- ``prometheus - (queue + prefill)``: the hand-over API server -> engine core and back
  (input processing, ZMQ both ways, output processing and detokenisation of the first token);
- ``queue + prefill``: the engine core's own scheduled -> first token time (the simulator's);
- the API server process's CPU time per request (its share of the path, free of waiting for
  a CPU on a busy machine).

The API server's CPU time is what matters; run it on an otherwise idle machine if possible (a
busy one inflates every part; medians and minima are printed).

    python scripts/measure_vllm_request_path.py [--requests 60] [--prompt-tokens 575]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

METRICS = {
    "ttft": "vllm:time_to_first_token_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
}


def _sums(base_url: str) -> dict[str, tuple[float, float]]:
    text = urllib.request.urlopen(base_url + "/metrics", timeout=10).read().decode()
    out = {}
    for key, name in METRICS.items():
        s = re.search(rf"^{name}_sum\{{[^}}]*\}} ([0-9.e+-]+)", text, re.M)
        c = re.search(rf"^{name}_count\{{[^}}]*\}} ([0-9.e+-]+)", text, re.M)
        out[key] = (float(s.group(1)) if s else 0.0, float(c.group(1)) if c else 0.0)
    return out


async def _one(session, url: str, body: dict) -> float:
    start = time.perf_counter()
    async with session.post(url, json=body) as r:
        async for line in r.content:
            if line.strip():
                first = time.perf_counter() - start
                break
        async for _ in r.content:
            pass
    return first


async def _client(base_url: str, prompts: list[str], fresh: bool) -> list[float]:
    import aiohttp

    url = base_url + "/v1/completions"
    out = []
    shared = None if fresh else aiohttp.ClientSession()
    try:
        for p in prompts:
            body = {"model": "tiny", "prompt": p, "max_tokens": 2, "stream": True,
                    "ignore_eos": True}  # fmt: skip
            if fresh:  # inference-perf E0: a new session (and TCP connection) per request
                async with aiohttp.ClientSession() as s:
                    out.append(await _one(s, url, body))
            else:
                out.append(await _one(shared, url, body))
            await asyncio.sleep(0.05)  # an idle server for each request
    finally:
        if shared is not None:
            await shared.close()
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(base_url: str, prompts: list[str], fresh: bool, api_pid: int) -> None:
    before = _sums(base_url)
    cpu0 = _cpu_seconds(api_pid)
    client = asyncio.run(_client(base_url, prompts, fresh))
    cpu = (_cpu_seconds(api_pid) - cpu0) / len(prompts)
    after = _sums(base_url)
    n = after["ttft"][1] - before["ttft"][1]
    mean = {k: (after[k][0] - before[k][0]) / max(n, 1) for k in METRICS}
    label = "new session per request" if fresh else "shared session"
    engine = mean["queue"] + mean["prefill"]
    med, low, avg = statistics.median(client), min(client), statistics.mean(client)
    print(f"{label}: {len(client)} requests; client TTFT median {med * 1e3:.2f} "
          f"ms (min {low * 1e3:.2f}), mean {avg * 1e3:.2f} ms; "
          f"prometheus TTFT mean {mean['ttft'] * 1e3:.2f} ms; engine queue + prefill "
          f"{engine * 1e3:.2f} ms")  # fmt: skip
    print(f"  client - prometheus (HTTP, tokenisation, SSE): {(avg - mean['ttft']) * 1e3:.2f} "
          f"ms; prometheus - engine (hand-over both ways, output processing): "
          f"{(mean['ttft'] - engine) * 1e3:.2f} ms")  # fmt: skip
    print(f"  API server process CPU time per request (HTTP, tokenisation, input and output "
          f"processing, two SSE events): {cpu * 1e3:.2f} ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="../shared/tokenizers")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--prompt-tokens", type=int, default=575)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from workload_eval.tiny_model import build_tiny_model

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    root = Path(tempfile.mkdtemp(prefix="vllm-path-"))
    model = build_tiny_model("llama", root / "model", args.tokenizer)
    tok = AutoTokenizer.from_pretrained(str(model))
    rng = np.random.default_rng(0)
    prompts = [tok.decode(rng.integers(0, tok.vocab_size, args.prompt_tokens).tolist(),
                          skip_special_tokens=True) for _ in range(args.requests)]  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--enforce-eager", "--max-num-seqs", "16",
           "--num-gpu-blocks-override", "512", "--no-enable-prefix-caching"]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(base_url + "/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"vLLM did not start: see {root / 'server.log'}") from None
                time.sleep(1)
        asyncio.run(_client(base_url, prompts[:5], False))  # warm up
        for fresh in (True, False, True, False):
            _measure(base_url, prompts, fresh, proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


if __name__ == "__main__":
    main()
