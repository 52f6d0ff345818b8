"""A lean HTTP/1.1 client for the load generator's hot path: keep-alive connections as
asyncio protocols, answers parsed by httptools (llhttp, the parser uvicorn serves with).

Why not aiohttp here: at thousands of requests per second the client's CPU per request
decides whether it keeps the schedule, and aiohttp's request/response machinery cost
~90 us of CPU per request against ~30 us for this (``benchmarks/loadgen.py``; same server,
same bodies). aiohttp still serves the side routes (``/metrics``, the cache reset).

What it does: POST a body; bound the answer's head (``MAX_RESPONSE_HEAD_BYTES``); hand
the body's bytes to a :class:`Sink` as they arrive, with their arrival time (token times
are taken there, not when a task next runs); one deadline per request, connecting
included; one keep-alive pool per origin (newest idle connection first, so the one least
likely to have been closed by the server); a fresh unpooled connection on demand; https.
What it does not: redirects (a 3xx is an answer), proxies, compression (none is asked
for), HTTP/2. Failures are typed: :class:`ConnectFailed` (never reached the server),
:class:`StaleConnection` (a reused connection failed before any byte of an answer, so
the request never reached the server either), :class:`HttpError` (the server's part).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

from workload_eval.limits import MAX_RESPONSE_HEAD_BYTES

perf = time.perf_counter
KEEPALIVE_S = 60.0  # s an idle pooled connection is reused (a server closes its own earlier)
_FORBIDDEN_IN_HEADERS = ("\r", "\n", "\0")


class HttpError(Exception):
    """The exchange failed, on the server's side unless a subclass says otherwise; the
    message says how."""


class ConnectFailed(HttpError):
    """No connection to the server (or a URL or header no request can carry)."""


class StaleConnection(HttpError):
    """A reused keep-alive connection failed before any byte of an answer came back."""


class Sink(Protocol):
    """Where an answer goes as it arrives; what it raises becomes the request's failure."""

    def start(self, status: int, content_type: str) -> None:
        """The head arrived (``content_type`` lowercased, without parameters)."""

    def feed(self, data: bytes, now: float) -> bool:
        """Body bytes that arrived at ``now``; False when nothing more is wanted."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go, and the request line's fixed part."""

    host: str
    port: int
    tls: bool
    head: bytes  # "POST <path> HTTP/1.1\r\nHost: ...\r\n..." up to the per-request headers

    @property
    def origin(self) -> tuple[str, int, bool]:
        return self.host, self.port, self.tls


@functools.lru_cache(maxsize=64)
def target(url: str) -> Target:
    """The target of ``url``; ConnectFailed when it is no http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConnectFailed(f"invalid URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"invalid URL {url!r} (expected http://host[:port]/path)")
    tls = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = parts.netloc.rpartition("@")[2]  # never send credentials of the URL
    _check_header("URL", path + netloc)
    head = f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nAccept: */*\r\n".encode()
    return Target(parts.hostname, port or (443 if tls else 80), tls, head)


def _check_header(name: str, value: str) -> None:
    if any(c in value for c in _FORBIDDEN_IN_HEADERS):
        raise ConnectFailed(f"{name} holds a line break or NUL (it would split the request)")


_JSON = b"Content-Type: application/json\r\n"
_OURS = frozenset(("host", "content-length", "transfer-encoding", "connection"))


def encode_headers(headers: dict[str, str] | None) -> bytes:
    """The caller's headers as request lines (a JSON content type unless one is given; the
    framing headers are the client's own); ConnectFailed when one could split the request."""
    if not headers:
        return _JSON
    lines = []
    typed = False
    for name, value in headers.items():
        _check_header(f"header {name!r}", name + value)
        key = name.lower()
        if key in _OURS:
            continue
        typed |= key == "content-type"
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8") + (b"" if typed else _JSON)


class _Exchange:
    """One request and its answer on one connection: the parser's callbacks and the outcome."""

    __slots__ = (
        "began",
        "complete",
        "conn",
        "content_type",
        "framed",
        "future",
        "head_bytes",
        "headers_done",
        "keep_alive",
        "now",
        "parser",
        "refusal",
        "reused",
        "sink",
        "stopped",
    )

    def __init__(
        self, conn: _Connection, sink: Sink, reused: bool, future: asyncio.Future[None]
    ) -> None:
        self.conn, self.sink, self.reused, self.future = conn, sink, reused, future
        self.parser = httptools.HttpResponseParser(self)
        self.head_bytes = 0
        self.began = self.headers_done = self.complete = self.stopped = self.framed = False
        self.keep_alive = False
        self.refusal: Exception | None = None  # what the sink raised
        self.content_type = "application/octet-stream"  # HTTP's default when none is given
        self.now = 0.0

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.began = True

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"content-type":
            mime = value.split(b";", 1)[0].strip().lower()
            self.content_type = mime.decode("latin-1")
        elif key in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        if not self.complete:
            self.headers_done = True
            try:
                self.sink.start(self.parser.get_status_code(), self.content_type)
            except Exception as e:  # kept here: httptools' own error chains it unreliably
                self.refusal = e
                raise

    def on_body(self, body: bytes) -> None:
        if self.complete or self.stopped:
            return
        try:
            self.stopped = not self.sink.feed(body, self.now)
        except Exception as e:
            self.refusal = e
            raise

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it after this

    # -- the connection's events
    def received(self, data: bytes) -> None:
        self.now = perf()
        if not self.headers_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as e:  # the sink refused the answer
            self.end(self.refusal or HttpError(str(e)))
            return
        except httptools.HttpParserError as e:
            if not self.complete:
                self.end(HttpError(f"malformed HTTP answer: {e}"))
                return
            self.keep_alive = False  # garbage after a whole answer: the answer stands
        if not self.headers_done and self.head_bytes > MAX_RESPONSE_HEAD_BYTES:
            self.end(HttpError(f"answer's head over {MAX_RESPONSE_HEAD_BYTES:,} bytes"))
        elif self.complete or self.stopped:
            self.end(keep=self.complete and not self.stopped and self.keep_alive)

    def lost(self, exc: Exception | None) -> None:
        """The connection closed under this exchange."""
        if self.headers_done and not self.framed:
            self.complete = True  # an answer framed by the close (no length, not chunked)
            self.end()
        elif not self.began and self.reused:
            self.end(StaleConnection("reused connection closed before any answer"))
        elif not self.began:
            reason = f" ({exc})" if exc is not None else ""
            self.end(HttpError(f"server closed the connection before answering{reason}"))
        else:
            self.end(HttpError("server closed the connection mid-answer"))

    def end(self, failure: BaseException | None = None, *, keep: bool = False) -> None:
        """The exchange is over (``failure``: how it failed): the connection is kept for
        the next request when ``keep``, else closed; the waiting request is told once."""
        self.conn.finished(self, keep)
        if self.future.done():
            return
        if failure is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(failure)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: forwards its bytes to the exchange in progress."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.exchange.received(data)

    def eof_received(self) -> bool:
        return False  # close: HTTP/1.1 has no half-closed answers

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.lost(exc)

    def finished(self, exchange: _Exchange, keep: bool) -> None:
        if self.exchange is exchange:
            self.exchange = None
        if not keep:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Keep-alive connections per origin, and fresh ones on demand; every request has one
    deadline (``timeout`` seconds), connecting included."""

    def __init__(self, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: how https servers are verified (default: the system's trust store)."""
        self.timeout = timeout
        self.idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self.busy: set[_Connection] = set()
        self.connections_made = 0
        self._tls = tls

    async def post(
        self, url: str, body: bytes, headers: bytes, sink: Sink, *, fresh: bool = False
    ) -> None:
        """POST ``body`` to ``url`` and feed the answer to ``sink``; returns once the answer
        is complete (or the sink wanted no more). ``fresh``: a new connection, not pooled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        t = target(url)
        conn = None if fresh else self._idle(t.origin)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(t, deadline)
        assert conn.transport is not None
        future: asyncio.Future[None] = loop.create_future()
        exchange = _Exchange(conn, sink, reused, future)
        conn.exchange = exchange
        self.busy.add(conn)
        timer = loop.call_at(deadline, _time_out, exchange)
        try:
            length = b"Content-Length: %d\r\n\r\n" % len(body)
            conn.transport.write(t.head + headers + length + body)
            await future
        except BaseException:
            conn.finished(exchange, keep=False)  # cancelled or failed mid-answer: not reusable
            raise
        finally:
            timer.cancel()
            self.busy.discard(conn)
        if fresh:
            conn.close()  # a retry's own connection: never pooled, never left open
        elif not conn.closed:
            conn.idle_since = loop.time()
            self.idle.setdefault(t.origin, []).append(conn)

    def _idle(self, origin: tuple[str, int, bool]) -> _Connection | None:
        conns = self.idle.get(origin)
        if not conns:
            return None
        now = asyncio.get_running_loop().time()
        while conns:
            conn = conns.pop()  # the newest first
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        return None

    async def _connect(self, t: Target, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if t.tls else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    _Connection, t.host, t.port, ssl=tls, server_hostname=t.host if tls else None
                )
        except OSError as e:  # refused, unreachable, no such host, TLS handshake failed
            raise ConnectFailed(f"Cannot connect to host {t.host}:{t.port} ({e})") from None
        self.connections_made += 1
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def idle_connections(self) -> list[_Connection]:
        return [c for conns in self.idle.values() for c in conns]

    async def close(self) -> None:
        for conn in [*self.idle_connections(), *self.busy]:
            conn.close()
        self.idle.clear()
        self.busy.clear()
        await asyncio.sleep(0)  # let the transports finish closing


def _time_out(exchange: _Exchange) -> None:
    exchange.end(TimeoutError())


__all__ = [
    "ConnectFailed",
    "HttpError",
    "Pool",
    "Sink",
    "StaleConnection",
    "Target",
    "encode_headers",
    "target",
]
