"""One load worker: sends its share of an open-loop plan at absolute times from a shared origin.

Runs as ``python -m workload_eval.engines.openai.worker`` (a child of the openai engine, see
workers.py) or inside a Ray actor (ray_workers.py). The protocol over stdin/stdout:

1. stdin: an 8-byte little-endian length, then the share (worker_wire.encode_share);
2. stdout: ``ready`` once the share is parsed, the connection pool built and the plan frozen;
3. stdin: ``go <t0>``, the shared origin as a ``perf_counter()`` value (CLOCK_MONOTONIC,
   the same clock in every process of one machine);
4. stdout: one JSON line per request, then the closing line (worker_wire.summary_line).

The sending itself is the single-process load generator (loadgen.run_open_loop) on the
share's items, so every worker keeps its part of the one global schedule exactly as the
single-process client keeps the whole.
"""

from __future__ import annotations

import asyncio
import signal
import struct
import sys
from collections.abc import Callable
from typing import BinaryIO

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.engines.openai import loadgen
from workload_eval.engines.openai.stream import Ask, Client
from workload_eval.engines.openai.worker_wire import Share, decode_share, outcome_line, summary_line
from workload_eval.gc_pause import gc_paused

_LENGTH = struct.Struct("<Q")


def share_schedule(share: Share) -> Schedule:
    """The share as a schedule of its own (positions 0..n-1; requests carry no workload)."""
    items = [ScheduledRequest(Request(k, 0, 0), at) for k, (_, at, _) in enumerate(share.items)]
    return Schedule("share", items)


async def serve(share: Share, t0: float, write: Callable[[bytes], None]) -> None:
    """Send the share's bodies at ``t0 + at`` and ``write`` one result line per request."""
    schedule = share_schedule(share)
    client = Client(share.request_timeout)
    bodies = [body for _, _, body in share.items]

    async def send(k: int, out: loadgen.Outcome) -> None:
        body, bodies[k] = bodies[k], b""
        ask = Ask(tokens=loadgen.asked_tokens(body), body_bytes=len(body))
        await client.send(share.url, body, out, ask, chat=share.chat, headers=share.headers)

    try:
        result = await loadgen.run_open_loop(schedule, send, t0=t0)
    finally:
        await client.close()
    for k, out in enumerate(result.outcomes):
        if out is None:
            out = loadgen.Outcome(
                status="failed", error="not sent (run interrupted)", side="client"
            )
        write(outcome_line(share.items[k][0], out, t0))
    write(summary_line(result.cpu_s, result.wall_s, result.interrupted))


def _read_share(stdin: BinaryIO) -> Share:
    head = stdin.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise SystemExit("load worker: no share on stdin")
    (n,) = _LENGTH.unpack(head)
    data = stdin.read(n)
    if len(data) != n:
        raise SystemExit("load worker: truncated share on stdin")
    return decode_share(data)


def frame_share(encoded: bytes) -> bytes:
    """The share as the worker reads it from stdin (length first)."""
    return _LENGTH.pack(len(encoded)) + encoded


def main() -> None:
    # the parent stops a worker with SIGINT: take it even when started with SIGINT ignored
    # (a background job), else the worker would send its whole share after a Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    share = _read_share(stdin)

    async def run() -> None:
        stdout.write(b"ready\n")
        stdout.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, stdin.readline)
        word, _, t0 = line.decode().partition(" ")
        if word != "go":
            raise SystemExit(f"load worker: expected 'go <t0>', got {line[:40]!r}")
        await serve(share, float(t0), stdout.write)
        stdout.flush()

    try:
        with gc_paused(), asyncio.Runner(loop_factory=loadgen.new_event_loop) as runner:
            runner.run(run())
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: the results gathered are already written
        stdout.flush()
        sys.exit(130)


if __name__ == "__main__":
    main()
