"""One request over HTTP: send it, read its answer within bounds, say who failed.

What a request may make the client hold is bounded (``limits``: one event, the whole
answer in proportion to the tokens asked for, an error body), and every field used is
typed (``answers``): a broken or hostile server costs one failed record with the reason,
never the run. Token counts are what was actually streamed; a ``usage`` that disagrees is
flagged (``Outcome.usage_mismatch``), not believed.

Stale keep-alive connections: a server closes an idle pooled connection (its keep-alive
timeout) while the client, stalled, has not yet seen the close and reuses it. Such a
request never reached the server. A request that fails on a *reused* connection before
any byte of an answer came back is sent once more on a fresh connection (never pooled),
and the outcome says so (``attempts == 2``). Failures are classified: ``client`` (the
request never reached the server: no connection, the client's own error, interrupted) or
``server`` (an HTTP error, a malformed or truncated answer, no answer in time).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp

from workload_eval.engines.openai.answers import (
    BadAnswer,
    Event,
    loads,
    parse_object,
    plain_token,
    read_at_most,
)
from workload_eval.engines.openai.loadgen import Outcome, make_session
from workload_eval.limits import (
    ERROR_CHARS,
    MAX_ERROR_BODY_BYTES,
    MAX_EVENT_BYTES,
    MAX_TEMPLATE_TOKENS,
    answer_budget,
)
from workload_eval.redaction import scrub_server_text

perf = time.perf_counter
CLIENT, SERVER = "client", "server"
# Errors of a reused connection before any answer came back: the server had closed it.
_STALE_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def error_text(text: str) -> str:
    """An error message as stored: credentials out, one bounded line."""
    return scrub_server_text(" ".join(text.split()))[:ERROR_CHARS]


def fail(out: Outcome, side: str, error: str) -> None:
    out.finish_time = perf()
    out.status, out.side, out.error = "failed", side, error_text(error)


@dataclass(frozen=True)
class Ask:
    """What one request asked for: the bounds its answer is checked against."""

    tokens: int  # max_tokens x n
    body_bytes: int

    @property
    def prompt_limit(self) -> int:
        """Most prompt tokens a server may count: what was sent plus a chat template's."""
        return self.body_bytes + MAX_TEMPLATE_TOKENS


class _Stale(Exception):
    """A reused connection failed before any answer: send again on a fresh one."""


class _Answer:
    """Accumulates one answer into its Outcome, checking each event against the ask."""

    def __init__(self, out: Outcome, ask: Ask, chat: bool) -> None:
        self.out, self.ask, self.chat = out, ask, chat
        self.finished = self.done = False
        self.claimed: int | None = None  # the server's final completion_tokens

    def add(self, ev: Event, now: float) -> None:
        out = self.out
        if ev.error is not None:
            raise BadAnswer(f"server error in stream: {ev.error}")
        if ev.usage is not None:
            if (p := ev.usage.prompt_tokens) is not None:
                if p > self.ask.prompt_limit:
                    raise BadAnswer(
                        f"usage.prompt_tokens is {p:,}, more than the {self.ask.body_bytes:,} "
                        f"bytes sent could hold (+{MAX_TEMPLATE_TOKENS:,} for a chat template)"
                    )
                out.prompt_tokens = p
            if (c := ev.usage.completion_tokens) is not None:
                self._within_ask(c, "usage.completion_tokens is")
                self.claimed = c
        if ev.prompt_ids is not None and out.prompt_token_ids is None:
            out.prompt_token_ids = ev.prompt_ids
        k = 1  # vLLM's per-chunk usage says how many tokens a merged chunk carries
        if ev.text is not None and ev.usage is not None and ev.usage.completion_tokens is not None:
            k = ev.usage.completion_tokens - len(out.token_times)
            if k < 0:
                raise BadAnswer(
                    f"usage.completion_tokens went down to {ev.usage.completion_tokens} "
                    f"after {len(out.token_times)} streamed tokens"
                )
        self.add_text(ev.text, ev.finished, now, k)

    def add_text(self, text: str | None, finished: bool, now: float, tokens: int = 1) -> None:
        """The text of ``tokens`` tokens (none when ``text`` is None) and whether the choice
        finished: ``add``'s last step, and all a plain chunk needs (answers.plain_token)."""
        if text is not None:
            out = self.out
            times = out.token_times
            if not times:
                out.first_token_time = now
            self._within_ask(len(times) + tokens, "the server streamed")
            times.extend([now] * tokens)
            out.pieces.append(text)
        self.finished |= finished

    def _within_ask(self, tokens: int, what: str) -> None:
        if tokens > self.ask.tokens:
            raise BadAnswer(
                f"{what} {tokens:,} tokens, more than the {self.ask.tokens:,} asked for"
            )

    def end_stream(self) -> None:
        """The stream closed: ok if it said it was done; count what was streamed."""
        out = self.out
        out.finish_time = perf()
        streamed = len(out.token_times)
        out.usage_mismatch = self.claimed is not None and self.claimed != streamed
        out.completion_tokens = streamed
        if self.done or self.finished:
            out.status = "ok"
        else:
            fail(out, SERVER, "stream ended before [DONE] (connection closed?)")

    def whole(self, ev: Event) -> None:
        """A non-streamed answer: one token time (the end), usage as the only count."""
        self.add(Event(usage=ev.usage, prompt_ids=ev.prompt_ids, error=ev.error), perf())
        out = self.out
        now = out.finish_time = out.first_token_time = perf()
        out.token_times.append(now)
        out.pieces.append(ev.text or "")
        out.completion_tokens = self.claimed
        out.status = "ok"


class Client:
    """The run's HTTP client: one keep-alive pool, and fresh connections for the retry of a
    request that met a stale pooled connection."""

    def __init__(
        self,
        max_concurrency: int | None = None,
        timeout: float = 600.0,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """A new pool, or ``session`` (then reused connections are not seen: no retry)."""
        self.timeout = timeout
        if session is None:
            trace = aiohttp.TraceConfig()
            trace.on_connection_reuseconn.append(_mark_reused)
            session = make_session(max_concurrency, timeout, trace_configs=[trace])
        self.pool = session
        self._fresh: aiohttp.ClientSession | None = None
        self.stale_retries = 0

    def _fresh_session(self) -> aiohttp.ClientSession:
        if self._fresh is None:
            self._fresh = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._fresh

    async def close(self, *, pool: bool = True) -> None:
        if pool:
            await self.pool.close()
        if self._fresh is not None:
            await self._fresh.close()

    async def send(
        self,
        url: str,
        body: bytes,
        out: Outcome,
        ask: Ask,
        *,
        chat: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        """POST one (chat) completion and read it into ``out``; never raises (but for
        cancellation): every failure is the request's error, with its side."""
        out.send_time = perf()
        out.attempts = 1
        try:
            try:
                await self._post(self.pool, url, body, out, ask, chat, headers)
            except _Stale:
                self.stale_retries += 1
                out.attempts = 2
                await self._post(self._fresh_session(), url, body, out, ask, chat, headers)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            fail(out, SERVER, "timeout")
        except BadAnswer as e:
            fail(out, SERVER, f"bad answer: {e}")
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as e:
            fail(out, CLIENT, f"{type(e).__name__}: {e}")
        except aiohttp.ClientError as e:  # the server closed, reset or garbled the answer
            fail(out, SERVER, f"{type(e).__name__}: {e}")
        except Exception as e:  # the client's own failure: never lose the record
            fail(out, CLIENT, f"client error: {type(e).__name__}: {e}")

    async def _post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        out: Outcome,
        ask: Ask,
        chat: bool,
        headers: dict[str, str] | None,
    ) -> None:
        ctx = SimpleNamespace(reused=False)  # set by the pool's trace when it reuses one
        answered = False
        try:
            # a redirect is an answer (HTTP 3xx): never followed, with the key, elsewhere
            async with session.post(
                url, data=body, headers=headers, trace_request_ctx=ctx, allow_redirects=False
            ) as resp:
                answered = True
                await _read(resp, out, ask, chat)
        except _STALE_ERRORS as e:
            if ctx.reused and not answered and session is self.pool:
                raise _Stale from e
            raise


async def _mark_reused(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
) -> None:
    ctx.trace_request_ctx.reused = True


async def _read(resp: aiohttp.ClientResponse, out: Outcome, ask: Ask, chat: bool) -> None:
    if resp.status != 200:
        raw = await read_at_most(resp.content, MAX_ERROR_BODY_BYTES)
        fail(out, SERVER, f"HTTP {resp.status}: {raw.decode('utf-8', 'replace')}")
        return
    answer = _Answer(out, ask, chat)
    ctype = resp.content_type
    if ctype == "text/event-stream":
        await _read_events(resp, answer, ask)
    elif ctype == "application/json" or ctype.endswith("+json"):
        budget = answer_budget(ask.tokens)
        raw = await read_at_most(resp.content, budget + 1)
        if len(raw) > budget:
            raise BadAnswer(f"answer over {budget:,} bytes for {ask.tokens:,} tokens")
        obj = loads(raw, "answer")
        answer.whole(parse_object(obj, chat=chat, streamed=False, max_prompt_ids=ask.prompt_limit))
    else:
        raise BadAnswer(f"content type {ctype!r} (expected text/event-stream or application/json)")


async def _read_events(resp: aiohttp.ClientResponse, answer: _Answer, ask: Ask) -> None:
    """Server-sent events, one timestamp per network chunk (given to every token in it,
    as vLLM's own benchmark client does)."""
    budget = answer_budget(ask.tokens)
    limit = ask.prompt_limit
    received = 0
    buf = bytearray()
    async for data in resp.content.iter_any():
        now = perf()
        received += len(data)
        if received > budget:
            raise BadAnswer(f"answer over {budget:,} bytes for {ask.tokens:,} tokens")
        buf += data
        if b"\r" in data:
            buf = bytearray(buf.replace(b"\r\n", b"\n"))
        start = 0  # events are cut from buf in place, and buf trimmed once per chunk
        while (end := buf.find(b"\n\n", start)) >= 0:
            _event(bytes(buf[start:end]), answer, now, limit)
            start = end + 2
        if start:
            del buf[:start]
        if len(buf) > MAX_EVENT_BYTES:
            raise BadAnswer(f"a stream event over {MAX_EVENT_BYTES:,} bytes")
    answer.end_stream()


def _event(event: bytes, answer: _Answer, now: float, max_prompt_ids: int) -> None:
    for line in event.split(b"\n") if b"\n" in event else (event,):
        if not line.startswith(b"data:"):
            continue  # SSE comments, pings, event names
        payload = line[5:].strip()
        if payload == b"[DONE]":
            answer.done = True
            continue
        obj = loads(payload, "stream event")
        plain = plain_token(obj, chat=answer.chat)
        if plain is not None:
            answer.add_text(*plain, now)
            continue
        ev = parse_object(obj, chat=answer.chat, streamed=True, max_prompt_ids=max_prompt_ids)
        answer.add(ev, now)


__all__ = ["CLIENT", "SERVER", "Ask", "Client", "error_text", "fail"]
