"""A minimal OpenAI-compatible server that answers instantly, so load generators can be measured.

Completions and chat, streaming (SSE) and not, ``max_tokens`` honoured, ``usage`` returned, a
vLLM-like ``/metrics``. Faults can be injected for failure tests: HTTP 500s, a delay before the
answer, a pause between tokens, and streams closed mid-way.

Run it: ``python -m workload_eval.testing.instant_server --port 8000 [--fail-every 5 ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DEFAULT_MAX_TOKENS = 16
SETTLE_S = 1.0  # s for later processes on a shared port to start listening
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class FaultConfig:
    """Which faults to inject; every counter is over requests in arrival order (1-based)."""

    fail_every: int = 0  # every Nth request answers HTTP 500
    drop_every: int = 0  # every Nth streamed request closes the connection mid-stream
    delay: float = 0.0  # seconds before answering (response headers)
    token_interval: float = 0.0  # seconds between streamed tokens
    api_key: str | None = None  # when set, requests need "Authorization: Bearer <key>"
    keepalive_timeout: float = 75.0  # s an idle keep-alive connection stays open (aiohttp's)
    # Deterministic overlap, for tests that must not depend on timing: a request answers
    # only once this many requests have been running at once (0: no barrier) ...
    barrier: int = 0
    # ... and only after /metrics was scraped this many times while it was running.
    hold_for_scrapes: int = 0


class _State:
    """Counters shared by the handlers; exported on /metrics."""

    def __init__(self) -> None:
        self.count = 0
        self.running = 0
        self.max_running = 0
        self.completed = 0
        self.scrapes = 0


def _prompt_tokens(body: dict[str, Any], chat: bool) -> int:
    """Token ids count as themselves; text counts one token per whitespace-separated word."""
    if chat:
        return sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if prompt and isinstance(prompt[0], list):
            prompt = prompt[0]
        if not prompt or isinstance(prompt[0], int):
            return len(prompt)
        return len(str(prompt[0]).split())
    return len(str(prompt or "").split())


def _chunk(rid: str, model: str, chat: bool, finish: str | None) -> bytes:
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": " tok"}, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": " tok", "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    data = {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def build_app(faults: FaultConfig | None = None) -> web.Application:
    """The aiohttp application; tests may also serve it in-process."""
    faults = faults or FaultConfig()
    state = _State()
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def generate(request: web.Request, chat: bool) -> web.StreamResponse:
        state.count += 1
        n = state.count
        if faults.api_key is not None and (
            request.headers.get("Authorization") != f"Bearer {faults.api_key}"
        ):
            return web.json_response({"error": {"message": "bad api key"}}, status=401)
        body = await request.json()
        state.running += 1
        state.max_running = max(state.max_running, state.running)
        scrapes_at_start = state.scrapes
        try:
            while state.max_running < faults.barrier or (
                state.scrapes < scrapes_at_start + faults.hold_for_scrapes
            ):
                await asyncio.sleep(0.002)
            if faults.delay > 0:
                await asyncio.sleep(faults.delay)
            if faults.fail_every and n % faults.fail_every == 0:
                return web.json_response(
                    {"error": {"message": f"injected failure of request {n}"}}, status=500
                )
            return await _answer(request, body, chat, n)
        finally:
            state.running -= 1
            state.completed += 1

    async def _answer(
        request: web.Request, body: dict[str, Any], chat: bool, n: int
    ) -> web.StreamResponse:
        model = str(body.get("model", ""))
        max_tokens = int(
            body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
        )
        usage = {
            "prompt_tokens": _prompt_tokens(body, chat),
            "completion_tokens": max_tokens,
            "total_tokens": 0,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + max_tokens
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{n}"
        if not body.get("stream"):
            text = " tok" * max_tokens
            choice: dict[str, Any] = (
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length",
                }
                if chat
                else {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
            )
            return web.json_response(
                {
                    "id": rid,
                    "object": "chat.completion" if chat else "text_completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
        tokens = [_chunk(rid, model, chat, None)] * (max_tokens - 1)
        tokens.append(_chunk(rid, model, chat, "length"))
        tail = b""
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = (
                b"data: "
                + json.dumps(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk" if chat else "text_completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    },
                    separators=(",", ":"),
                ).encode()
                + b"\n\n"
            )
        tail += DONE
        drop = bool(faults.drop_every and n % faults.drop_every == 0)
        if faults.token_interval <= 0 and not drop:
            return web.Response(body=b"".join(tokens) + tail, content_type="text/event-stream")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, tok in enumerate(tokens):
            if drop and i >= len(tokens) // 2:
                assert request.transport is not None
                request.transport.close()  # the server "dies" for this stream
                return resp
            await resp.write(tok)
            if faults.token_interval > 0:
                await asyncio.sleep(faults.token_interval)
        await resp.write(tail)
        await resp.write_eof()
        return resp

    async def completions(request: web.Request) -> web.StreamResponse:
        return await generate(request, chat=False)

    async def chat(request: web.Request) -> web.StreamResponse:
        return await generate(request, chat=True)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "instant", "object": "model"}]})

    async def metrics(_: web.Request) -> web.Response:
        state.scrapes += 1
        lines = [
            f'vllm:num_requests_running{{model_name="instant"}} {state.running}',
            'vllm:num_requests_waiting{model_name="instant"} 0',
            'vllm:kv_cache_usage_perc{model_name="instant"} 0.0',
            'vllm:num_preemptions_total{model_name="instant"} 0',
            'vllm:cache_config_info{block_size="32",num_gpu_blocks="100"} 1',
            f"instant:requests_total {state.count}",
            f"instant:completed_total {state.completed}",
            f"instant:max_running {state.max_running}",
        ]
        return web.Response(text="\n".join(lines) + "\n")

    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    return app


def free_port() -> int:
    """A free localhost TCP port (racy by nature; fine for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class InstantServerProcess:
    """The instant server in child processes (their own CPUs), as a context manager.

    ``processes`` > 1 starts that many servers on one port (SO_REUSEPORT: the kernel spreads
    connections over them), so a load generator can be measured past one server core;
    counters on /metrics are then per process.
    """

    def __init__(
        self, faults: FaultConfig | None = None, port: int | None = None, processes: int = 1
    ) -> None:
        self.faults = faults or FaultConfig()
        self.port = port or free_port()
        self.processes = processes
        self.procs: list[subprocess.Popen] = []

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.procs[0] if self.procs else None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InstantServerProcess:
        f = self.faults
        cmd = [
            sys.executable,
            "-m",
            "workload_eval.testing.instant_server",
            "--port",
            str(self.port),
            "--fail-every",
            str(f.fail_every),
            "--drop-every",
            str(f.drop_every),
            "--delay",
            str(f.delay),
            "--token-interval",
            str(f.token_interval),
            "--keepalive-timeout",
            str(f.keepalive_timeout),
            "--barrier",
            str(f.barrier),
            "--hold-for-scrapes",
            str(f.hold_for_scrapes),
        ]
        if self.processes > 1:
            cmd.append("--reuse-port")
        env = dict(os.environ)
        if f.api_key is not None:
            env["INSTANT_SERVER_API_KEY"] = f.api_key
        try:
            for _ in range(self.processes):
                self.procs.append(subprocess.Popen(cmd, env=env))
                wait_healthy(self.base_url + "/health", 30, self.procs[-1])
            if self.processes > 1:  # /health may have been answered by an earlier process
                time.sleep(SETTLE_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--drop-every", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--token-interval", type=float, default=0.0)
    p.add_argument(
        "--reuse-port", action="store_true", help="share the port with other server processes"
    )
    p.add_argument("--keepalive-timeout", type=float, default=75.0)
    p.add_argument("--barrier", type=int, default=0)
    p.add_argument("--hold-for-scrapes", type=int, default=0)
    a = p.parse_args(argv)
    faults = FaultConfig(
        fail_every=a.fail_every,
        drop_every=a.drop_every,
        delay=a.delay,
        token_interval=a.token_interval,
        api_key=os.environ.get("INSTANT_SERVER_API_KEY"),
        keepalive_timeout=a.keepalive_timeout,
        barrier=a.barrier,
        hold_for_scrapes=a.hold_for_scrapes,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        build_app(faults),
        host=a.host,
        port=a.port,
        access_log=None,
        print=None,
        backlog=4096,
        reuse_port=a.reuse_port or None,
        keepalive_timeout=a.keepalive_timeout,
    )


if __name__ == "__main__":
    main()
