"""The load generator's HTTP client (``http_client``) against scripted raw servers.

The real servers (instant, hostile, vLLM) cover the usual answers elsewhere; these are the
framings and faults a well-behaved server rarely produces: an answer framed by the close,
``Connection: close``, a head without end, garbage, silence.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from workload_eval.engines.openai import alarm as alarm_module
from workload_eval.engines.openai.alarm import TICK, Alarm
from workload_eval.engines.openai.http_client import (
    ConnectFailed,
    HttpError,
    Pool,
    encode_headers,
    target,
)
from workload_eval.limits import MAX_RESPONSE_HEAD_BYTES

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection
JSON_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"  # a whole answer: "{}"


class Collect:
    """A sink that keeps everything (or stops after ``stop_after`` bytes)."""

    def __init__(self, stop_after: int | None = None, refuse: bool = False) -> None:
        self.status = 0
        self.content_type = ""
        self.body = b""
        self.stop_after, self.refuse = stop_after, refuse

    def start(self, status: int, content_type: str) -> None:
        self.status, self.content_type = status, content_type

    def feed(self, data: bytes, now: float) -> bool:
        if self.refuse:
            raise ValueError("not this")
        self.body += data
        return self.stop_after is None or len(self.body) < self.stop_after


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def serve(
    answer: Answer,
    run: Callable[[str, Pool], Awaitable[None]],
    *,
    tls: tuple[ssl.SSLContext, ssl.SSLContext | None] | None = None,
    closes: list[str] | None = None,
) -> list:
    """Serve ``answer`` to every request on 127.0.0.1 while ``run(url, pool)`` runs;
    returns the raw requests the server saw. ``tls``: (the server's context, the pool's);
    ``closes`` gets "client" for each connection the client closed between requests."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                seen.append(request)
                if not await answer(request, writer):
                    break
        except asyncio.IncompleteReadError as e:
            if closes is not None and not e.partial:
                closes.append("client")
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        server_tls, pool_tls = tls or (None, None)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        pool = Pool(timeout=5, tls=pool_tls)
        scheme = "https" if tls else "http"
        try:
            await run(f"{scheme}://127.0.0.1:{port}/v1/completions", pool)
        finally:
            await pool.close()
            server.close()

    asyncio.run(main())
    return seen


def _send(data: bytes, keep: bool = True) -> Answer:
    async def answer(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return answer


def test_an_answer_framed_by_the_close_is_whole_and_not_pooled():
    async def run(url: str, pool: Pool) -> None:
        sink = Collect()
        await pool.post(url, b"{}", b"", sink)
        assert (sink.status, sink.content_type) == (200, "text/event-stream")
        assert sink.body == b"data: [DONE]\n\n" and not pool.idle_connections()

    head = b"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\n\r\n"
    serve(_send(head + b"data: [DONE]\n\n", keep=False), run)


def test_chunked_answers_reuse_one_connection():
    async def run(url: str, pool: Pool) -> None:
        for _ in range(3):
            sink = Collect()
            await pool.post(url, b"{}", b"", sink)
            assert sink.body == b"hello world"
        assert pool.connections_made == 1 and len(pool.idle_connections()) == 1

    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = head + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    serve(_send(chunked), run)


def test_garbage_after_a_whole_answer_leaves_the_answer_and_drops_the_connection():
    async def run(url: str, pool: Pool) -> None:
        sink = Collect()
        await pool.post(url, b"{}", b"", sink)
        assert (sink.status, sink.body) == (200, b"{}") and not pool.idle_connections()

    serve(_send(JSON_OK + b"SMTP ready\r\n\r\n"), run)


def test_a_fresh_connection_is_closed_after_its_answer():
    async def run(url: str, pool: Pool) -> None:
        await pool.post(url, b"{}", b"", Collect(), fresh=True)
        assert pool.connections_made == 1 and not pool.idle_connections()
        for _ in range(100):  # until the server's reader has seen the close
            if closes:
                break
            await asyncio.sleep(0.01)

    closes: list[str] = []
    serve(_send(JSON_OK), run, closes=closes)  # the server would keep it open
    assert closes == ["client"]


def test_connection_close_is_honoured():
    async def run(url: str, pool: Pool) -> None:
        for _ in range(2):
            await pool.post(url, b"{}", b"", Collect())
        assert pool.connections_made == 2 and not pool.idle_connections()

    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    serve(_send(closing, keep=False), run)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_RESPONSE_HEAD_BYTES + 10), "head over"),
        (b"SMTP ready\r\n\r\n", "malformed HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "mid-answer"),
        (b"", "before answering"),
    ],
    ids=["endless-head", "not-http", "cut-short", "closed-at-once"],
)
def test_broken_answers_are_http_errors(answer: bytes, error: str):
    async def run(url: str, pool: Pool) -> None:
        with pytest.raises(HttpError, match=error):
            await pool.post(url, b"{}", b"", Collect())
        assert not pool.idle_connections()

    serve(_send(answer, keep=False), run)


def test_silence_times_out_by_the_deadline():
    async def silent(_: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)
        return False

    async def run(url: str, pool: Pool) -> None:
        pool.timeout = 0.3
        t = time.perf_counter()
        with pytest.raises(TimeoutError):
            await pool.post(url, b"{}", b"", Collect())
        assert 0.25 <= time.perf_counter() - t < 10  # the deadline, not the 30 s of silence

    serve(silent, run)


def test_a_sink_that_refuses_or_has_enough_ends_the_connection():
    whole = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"

    async def run(url: str, pool: Pool) -> None:
        with pytest.raises(ValueError, match="not this"):
            await pool.post(url, b"{}", b"", Collect(refuse=True))
        sink = Collect(stop_after=1)
        await pool.post(url, b"{}", b"", sink)  # enough: returns, connection dropped
        assert sink.body.startswith(b"0") and not pool.idle_connections()

    serve(_send(whole), run)


def test_the_request_carries_one_of_each_framing_header():
    async def run(url: str, pool: Pool) -> None:
        headers = encode_headers(
            {"content-type": "application/json", "Host": "evil", "Authorization": "Bearer k"}
        )
        await pool.post(url, b'{"a": 1}', headers, Collect())

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    (request,) = serve(_send(ok), run)
    lines = request.lower().split(b"\r\n")
    assert request.startswith(b"POST /v1/completions HTTP/1.1\r\n")
    assert sum(x.startswith(b"content-type:") for x in lines) == 1
    assert sum(x.startswith(b"host:") for x in lines) == 1 and b"evil" not in request
    assert b"content-length: 8" in lines and request.endswith(b'{"a": 1}')
    assert b"authorization: bearer k" in lines


@pytest.mark.parametrize(
    "call",
    [
        lambda: target("ftp://host/x"),
        lambda: target("http://host:99999/x"),
        lambda: encode_headers({"Authorization": "Bearer a\r\nX-Evil: 1"}),
    ],
    ids=["not-http", "bad-port", "header-injection"],
)
def test_what_no_request_can_carry_is_refused(call):
    with pytest.raises(ConnectFailed):
        call()


@pytest.mark.parametrize("timerfd", [True, False], ids=["timerfd", "loop-timer"])
def test_the_alarm_rings_at_its_latest_time(timerfd: bool, monkeypatch):
    """A timerfd never rings before its time; the loop's timer (other systems) no sooner
    than a tick before it. A setting replaces the one before; a past time rings at once."""
    if not timerfd:
        monkeypatch.setattr(alarm_module, "_LIBC", None)
    slack = 0.0 if timerfd else TICK

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        rang: list[float] = []
        ring = asyncio.Event()
        alarm = Alarm(loop, lambda: (rang.append(time.perf_counter()), ring.set()))
        assert alarm.precise == (timerfd and sys.platform.startswith("linux"))
        try:
            due = time.perf_counter() + 0.0123
            alarm.set(due + 10)  # replaced by the next setting
            alarm.set(due)
            await asyncio.wait_for(ring.wait(), 5)
            assert rang[0] >= due - slack
            ring.clear()
            alarm.set(time.perf_counter() - 1)  # in the past: at once
            await asyncio.wait_for(ring.wait(), 5)
        finally:
            alarm.close()
        return rang

    assert len(asyncio.run(main())) == 2


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, str]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and its path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, str(cert_path)


def test_https_answers_come_over_a_verified_connection(tmp_path):
    server_tls, cert = _self_signed(tmp_path)

    async def run(url: str, pool: Pool) -> None:
        for _ in range(2):
            sink = Collect()
            await pool.post(url, b"{}", b"", sink)
            assert (sink.status, sink.body) == (200, b"{}")
        assert pool.connections_made == 1

    trusted = ssl.create_default_context(cafile=cert)
    serve(_send(JSON_OK), run, tls=(server_tls, trusted))


def test_an_https_server_nobody_vouches_for_is_refused(tmp_path):
    server_tls, _ = _self_signed(tmp_path)

    async def run(url: str, pool: Pool) -> None:
        with pytest.raises(ConnectFailed, match="certificate verify failed"):
            await pool.post(url, b"{}", b"", Collect())

    serve(_send(JSON_OK), run, tls=(server_tls, None))  # the system's trust store
