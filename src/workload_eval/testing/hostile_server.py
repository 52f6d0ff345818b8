"""An OpenAI-compatible server that misbehaves on purpose, one way per URL prefix.

``http://127.0.0.1:PORT/<mode>`` is a base URL whose completions (and ``/metrics``) break
the protocol in one way: a malformed ``usage``, a non-streamed answer, a giant chunk, an
endless stream, a slowloris, a wrong content type, invalid or deeply nested JSON, an early
close, HTTP errors with huge bodies, echoed credentials, ... (:data:`MODES`). The fuzz
suite runs the real client against each; it listens on 127.0.0.1 only.

Run it: ``python -m workload_eval.testing.hostile_server --port 8002``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from workload_eval.testing.instant_server import free_port, wait_healthy

Handler = Callable[["Ask"], Awaitable[web.StreamResponse]]
MIB = 1 << 20


class Ask:
    """One request as the hostile server sees it."""

    def __init__(self, request: web.Request, body: dict[str, Any], chat: bool) -> None:
        self.request, self.body, self.chat = request, body, chat
        self.max_tokens = int(body.get("max_tokens") or 16)
        self.stream = bool(body.get("stream"))

    def chunk(self, text: str | None = "tok", *, finish: str | None = None, **extra: Any) -> bytes:
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": text},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish}
        return sse({"id": "x", "object": "chunk", "choices": [choice], **extra})

    def usage(self, completion: Any = None, prompt: Any = None) -> dict[str, Any]:
        """Honest counts unless told otherwise (a token-id prompt counts its ids)."""
        completion = self.max_tokens if completion is None else completion
        if prompt is None:
            sent = self.body.get("prompt")
            prompt = len(sent) if isinstance(sent, list) else len(str(sent or "").split())
        return {"prompt_tokens": prompt, "completion_tokens": completion}


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def _open(ask: Ask, content_type: str = "text/event-stream") -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(ask.request)
    return resp


async def _stream(ask: Ask, usage: Any, *, tokens: int | None = None, **per_chunk: Any) -> Any:
    """A well-formed stream whose final usage chunk carries ``usage`` (any JSON)."""
    resp = await _open(ask)
    n = ask.max_tokens if tokens is None else tokens
    for i in range(n):
        await resp.write(ask.chunk(finish="length" if i == n - 1 else None, **per_chunk))
    await resp.write(sse({"id": "x", "choices": [], "usage": usage}))
    await resp.write(DONE)
    return resp


def _close(ask: Ask) -> web.StreamResponse:
    if ask.request.transport is not None:
        ask.request.transport.close()
    return web.Response()


async def honest(ask: Ask) -> web.StreamResponse:
    return await _stream(ask, ask.usage())


async def usage_of(value: Any, ask: Ask) -> web.StreamResponse:
    return await _stream(ask, value)


async def non_stream(ask: Ask, usage: Any) -> web.StreamResponse:
    text = " tok" * ask.max_tokens
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
        if ask.chat
        else {"index": 0, "text": text, "finish_reason": "length"}
    )
    return web.json_response({"id": "x", "choices": [choice], "usage": usage})


async def token_claim(ask: Ask, claims: list[int]) -> web.StreamResponse:
    """Per-chunk usage (vLLM's continuous_usage_stats) claiming these running totals."""
    resp = await _open(ask)
    for c in claims:
        await resp.write(ask.chunk(usage=ask.usage(c)))
    await resp.write(ask.chunk(finish="length"))
    await resp.write(DONE)
    return resp


async def raw_lines(ask: Ask, *payloads: bytes, done: bool = True) -> web.StreamResponse:
    resp = await _open(ask)
    for p in payloads:
        await resp.write(p)
    if done:
        await resp.write(DONE)
    return resp


async def forever(ask: Ask, piece: Callable[[], bytes], pause: float = 0.0) -> web.StreamResponse:
    """Write until the client goes away (or an hour passes)."""
    resp = await _open(ask)
    with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
        for _ in range(10_000_000):
            await resp.write(piece())
            await asyncio.sleep(pause)
    return resp


async def giant(ask: Ask, prefix: bytes, size: int, suffix: bytes = b"") -> web.StreamResponse:
    resp = await _open(ask)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write(prefix)
        block = b"x" * MIB
        for _ in range(size // MIB):
            await resp.write(block)
        await resp.write(suffix)
    return resp


async def error_body(ask: Ask, status: int, size: int) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    await resp.prepare(ask.request)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write(b'{"error": {"message": "')
        block = b"e" * MIB
        for _ in range(max(size // MIB, 1)):
            await resp.write(block)
        await resp.write(b'"}}')
    return resp


def _echo(ask: Ask) -> str:
    return f"{ask.request.method} {ask.request.path_qs} headers={dict(ask.request.headers)}"


async def echo_stream(ask: Ask) -> web.StreamResponse:
    resp = await _open(ask)
    await resp.write(ask.chunk(_echo(ask)))
    await resp.write(sse({"error": {"message": f"you sent {_echo(ask)}"}}))
    return resp


async def truncated_chunked(ask: Ask) -> web.StreamResponse:
    """Raw HTTP: a chunked body cut inside a chunk."""
    transport = ask.request.transport
    assert transport is not None
    transport.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"400\r\n" + ask.chunk()[:50]
    )
    await asyncio.sleep(0.05)
    transport.close()
    return web.Response()


async def _raw(ask: Ask, data: bytes) -> web.StreamResponse:
    """Bytes that are not the HTTP the client expects, then the connection closed."""
    transport = ask.request.transport
    assert transport is not None
    transport.write(data)
    await asyncio.sleep(0.05)
    transport.close()
    return web.Response()


async def hang(ask: Ask) -> web.StreamResponse:
    await asyncio.sleep(3600)
    return web.Response()


def _garbage() -> bytes:
    rng = random.Random(7)
    return bytes(rng.randrange(256) for _ in range(4096)) + b"\n\n"


# mode -> handler; what the client must make of each is in tests/fuzz/cases_servers.py
MODES: dict[str, Handler] = {
    "honest": honest,
    "usage-string": lambda a: usage_of({"prompt_tokens": "abc", "completion_tokens": "abc"}, a),
    "usage-list": lambda a: usage_of([1, 2, 3], a),
    "usage-negative": lambda a: usage_of(a.usage(-5, -1), a),
    "usage-huge": lambda a: usage_of(a.usage(10**12), a),
    "usage-float": lambda a: usage_of(a.usage(3.7), a),
    "usage-bool": lambda a: usage_of(a.usage(True), a),
    "usage-disagrees": lambda a: usage_of(a.usage(max(a.max_tokens - 1, 0)), a),
    "prompt-usage-huge": lambda a: usage_of(a.usage(prompt=10**9), a),
    "token-claim-huge": lambda a: token_claim(a, [200_000_000]),
    "token-claim-decreasing": lambda a: token_claim(a, [2, 1]),
    "non-stream": lambda a: non_stream(a, a.usage()),
    "non-stream-bad-usage": lambda a: non_stream(a, "abc"),
    "non-stream-huge-usage": lambda a: non_stream(a, a.usage(10**12)),
    "giant-chunk": lambda a: giant(a, b"data: ", 64 * MIB),
    "giant-event": lambda a: giant(a, b'data: {"choices":[{"text":"', 8 * MIB, b'"}]}\n\n'),
    "endless-tokens": lambda a: forever(a, a.chunk),
    "endless-pings": lambda a: forever(a, lambda: b": ping\n\n" * 1000),
    "slowloris": lambda a: forever(a, lambda: b":", pause=0.5),
    "no-answer": hang,
    "wrong-content-type": lambda a: _html(),
    "invalid-json": lambda a: raw_lines(a, b"data: {not json}\n\n"),
    "deep-json": lambda a: raw_lines(a, b"data: " + b"[" * 200_000 + b"]" * 200_000 + b"\n\n"),
    "huge-number": lambda a: raw_lines(
        a, b'data: {"usage": {"completion_tokens": 1' + b"0" * 10_000 + b"}}\n\n"
    ),
    "not-an-object": lambda a: raw_lines(a, b"data: [1, 2]\n\n"),
    "choices-not-list": lambda a: raw_lines(a, sse({"choices": "abc"})),
    "text-not-string": lambda a: raw_lines(a, sse({"choices": [{"text": 123, "delta": 5}]})),
    "error-in-stream": lambda a: raw_lines(a, sse({"error": {"message": "boom"}}), done=False),
    "binary-garbage": lambda a: raw_lines(a, _garbage(), done=False),
    "early-close": lambda a: _early_close(a),
    "close-before-headers": lambda a: _async(_close(a)),
    "no-done": lambda a: raw_lines(a, a.chunk(), a.chunk(), done=False),
    "more-tokens": lambda a: _stream(a, a.usage(), tokens=2 * a.max_tokens + 5),
    "truncated-chunked": truncated_chunked,
    "http-500-huge": lambda a: error_body(a, 500, 100 * MIB),
    "http-404-model": lambda a: _async(
        web.json_response({"error": {"message": "The model `x` does not exist."}}, status=404)
    ),
    "http-429": lambda a: _async(web.Response(status=429, text="slow down")),
    "echo-headers": lambda a: _async(web.Response(status=401, text=_echo(a))),
    # elsewhere, with the key if it were followed: a redirect is never followed
    "redirect": lambda a: _async(
        web.Response(status=307, headers={"Location": "http://127.0.0.2:9/steal"})
    ),
    "huge-header": lambda a: _raw(a, b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * MIB + b"\r\n\r\n"),
    "garbage-status": lambda a: _raw(a, b"HELLO THERE\r\n\r\n"),
    "echo-in-stream": echo_stream,
    "lone-surrogate": lambda a: raw_lines(
        a, b'data: {"choices":[{"text":"\\ud800","finish_reason":"length"}]}\n\n'
    ),
}


async def _async(resp: web.StreamResponse) -> web.StreamResponse:
    return resp


async def _html() -> web.StreamResponse:
    return web.Response(text="<html><body>proxy login</body></html>", content_type="text/html")


async def _early_close(ask: Ask) -> web.StreamResponse:
    resp = await _open(ask)
    await resp.write(ask.chunk())
    assert ask.request.transport is not None
    ask.request.transport.close()
    return resp


async def _metrics(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    if mode == "metrics-huge":
        return web.Response(body=b"# " + b"x" * (20 * MIB) + b"\n")
    if mode == "metrics-garbage":
        lines = [
            "vllm:num_requests_running 1e300",
            'vllm:num_requests_waiting{a="b"} NaN',
            "vllm:kv_cache_usage_perc -7",
            'vllm:cache_config_info{block_size="1e9",num_gpu_blocks="1e300"} 1',
            "vllm:num_preemptions_total Inf",
            "vllm:num_requests_running{{{ garbage",
        ]
        return web.Response(text="\n".join(lines) + "\n")
    return web.Response(text='vllm:num_requests_running{model_name="h"} 0\n')


def build_app() -> web.Application:
    app = web.Application(client_max_size=64 * MIB)

    async def generate(request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        handler = MODES.get(mode, honest)
        body = await request.json()
        return await handler(Ask(request, body, request.path.endswith("/chat/completions")))

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="")

    app.router.add_post("/{mode}/v1/completions", generate)
    app.router.add_post("/{mode}/v1/chat/completions", generate)
    app.router.add_get("/{mode}/metrics", _metrics)
    app.router.add_get("/health", health)
    return app


class HostileServerProcess:
    """The hostile server in a child process, as a context manager; ``url(mode)``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def __enter__(self) -> HostileServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "workload_eval.testing.hostile_server",
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ), stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{self.port}/health", 30, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8002)
    a = p.parse_args(argv)
    web.run_app(build_app(), host="127.0.0.1", port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
