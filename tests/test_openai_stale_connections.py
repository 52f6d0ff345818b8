"""A pooled keep-alive connection that the server closed while the client was stalled.

The real instant server closes idle connections after 0.2 s. The client sends a first
batch (the pool keeps its connections), then stalls: its event loop is blocked until the
kernel holds the server's close of every pooled connection (checked, not waited for by
luck), and the next batch is sent before the loop could notice. That is the race behind
"ServerDisconnectedError: Server disconnected" after a client stall (issue 12, class 9):
the requests never reached the server. The run's client sends each of them once more on
a fresh connection and says so (``attempts == 2``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import aiohttp
import pytest

from workload_eval.engines.openai import loadgen
from workload_eval.engines.openai.stream import Ask, Client
from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

BATCH = 4
BODY = json.dumps({"model": "m", "prompt": [1, 2, 3], "max_tokens": 4, "stream": True}).encode()
ASK = Ask(tokens=4, body_bytes=len(BODY))


@pytest.fixture(scope="module")
def server():
    with InstantServerProcess(FaultConfig(keepalive_timeout=0.2)) as srv:
        yield srv


def _aiohttp_pooled_sockets(session: aiohttp.ClientSession) -> list[int]:
    conns = session.connector._conns  # type: ignore[union-attr]  # the pool, for the check only
    return [
        proto.transport.get_extra_info("socket").fileno() for q in conns.values() for proto, _ in q
    ]


def _our_pooled_sockets(client: Client) -> list[int]:
    return [c.transport.get_extra_info("socket").fileno() for c in client.pool.idle_connections()]


def _closed_by_peer(fd: int) -> bool:
    """The kernel already holds the peer's FIN (a zero-byte peek), whatever the loop knows."""
    with socket.socket(fileno=os.dup(fd)) as s:
        try:
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False


def _stall_until_the_server_closed(fds: list[int]) -> int:
    """Block the event loop (a client stall) until every pooled connection (``fds``) is
    closed by the server; returns how many there are."""
    assert len(fds) == BATCH, fds
    deadline = time.monotonic() + 60
    while not all(_closed_by_peer(fd) for fd in fds):
        assert time.monotonic() < deadline, "the server never closed its idle connections"
        time.sleep(0.02)  # deliberately blocking: the loop must not see the close
    return len(fds)


async def _batches(url: str, send) -> list[loadgen.Outcome]:
    first = [loadgen.Outcome() for _ in range(BATCH)]
    await asyncio.gather(*(send(url, o) for o in first))
    assert all(o.status == "ok" for o in first), [o.error for o in first]
    return first


def test_a_stale_pooled_connection_fails_a_plain_client(server):
    """The reproduction: a plain pooled client (aiohttp's) that knows nothing of stale
    connections fails these requests, so the race the next test survives is real."""
    url = server.base_url + "/v1/completions"

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as session:

            async def send(u: str, out: loadgen.Outcome) -> None:
                try:
                    async with session.post(u, data=BODY) as resp:
                        await resp.read()
                        out.status = "ok"
                except aiohttp.ClientError as e:
                    out.status, out.error = "failed", f"{type(e).__name__}: {e}"

            await _batches(url, send)
            _stall_until_the_server_closed(_aiohttp_pooled_sockets(session))
            second = [loadgen.Outcome() for _ in range(BATCH)]
            await asyncio.gather(*(send(url, o) for o in second))
            return [o.error for o in second]

    errors = asyncio.run(scenario())
    assert all(errors), errors
    # what aiohttp says depends on where it meets the close: writing the body or reading
    signs = ("Server disconnected", "Can not write request", "reset")
    assert all(any(s in e for s in signs) for e in errors), errors


def test_the_run_client_sends_it_again_on_a_fresh_connection(server):
    url = server.base_url + "/v1/completions"

    async def scenario() -> tuple[list[loadgen.Outcome], int]:
        client = Client(30)
        try:

            async def send(u: str, out: loadgen.Outcome) -> None:
                await client.send(u, BODY, out, ASK, chat=False)

            first = await _batches(url, send)
            assert all(o.attempts == 1 for o in first)
            _stall_until_the_server_closed(_our_pooled_sockets(client))
            second = [loadgen.Outcome() for _ in range(BATCH)]
            await asyncio.gather(*(send(url, o) for o in second))
            return second, client.stale_retries
        finally:
            await client.close()

    second, retries = asyncio.run(scenario())
    assert all(o.status == "ok" for o in second), [o.error for o in second]
    assert [o.attempts for o in second] == [2] * BATCH and retries == BATCH
    assert all(len(o.token_times) == 4 for o in second)


def test_a_server_that_is_not_there_is_a_client_side_failure(server):
    """Refused connections never reached a server: client side, sent once (fresh pool)."""
    from workload_eval.testing.instant_server import free_port

    async def scenario() -> loadgen.Outcome:
        client = Client(5)
        out = loadgen.Outcome()
        try:
            await client.send(
                f"http://127.0.0.1:{free_port()}/v1/completions", BODY, out, ASK, chat=False
            )
        finally:
            await client.close()
        return out

    out = asyncio.run(scenario())
    assert out.status == "failed" and out.side == "client" and out.attempts == 1
    assert "Cannot connect" in out.error
