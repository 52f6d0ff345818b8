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

from workload_eval.engines.openai.answers import (
    BadAnswer,
    Event,
    loads,
    parse_object,
    plain_token,
)
from workload_eval.engines.openai.http_client import (
    ConnectFailed,
    HttpError,
    Pool,
    StaleConnection,
    encode_headers,
)
from workload_eval.engines.openai.loadgen import Outcome
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
    """The run's HTTP client: one keep-alive pool (``http_client.Pool``), and a fresh
    connection for the retry of a request that met a stale pooled connection."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.pool = Pool(timeout)
        self.stale_retries = 0

    async def close(self) -> None:
        await self.pool.close()

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
            lines = encode_headers(headers)
            reader = _Reader(_Answer(out, ask, chat), ask)
            try:
                await self.pool.post(url, body, lines, reader)
            except StaleConnection:
                self.stale_retries += 1
                out.attempts = 2
                reader = _Reader(_Answer(out, ask, chat), ask)
                await self.pool.post(url, body, lines, reader, fresh=True)
            reader.end()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            fail(out, SERVER, "timeout")
        except BadAnswer as e:
            fail(out, SERVER, f"bad answer: {e}")
        except ConnectFailed as e:
            fail(out, CLIENT, f"{type(e).__name__}: {e}")
        except HttpError as e:  # the server closed, reset or garbled the answer
            fail(out, SERVER, f"{type(e).__name__}: {e}")
        except Exception as e:  # the client's own failure: never lose the record
            fail(out, CLIENT, f"client error: {type(e).__name__}: {e}")


class _Reader:
    """Reads one answer as its bytes arrive (an ``http_client.Sink``): server-sent events,
    a whole JSON answer, or an error body; each bounded."""

    __slots__ = ("answer", "ask", "budget", "buf", "mode", "received", "status")

    def __init__(self, answer: _Answer, ask: Ask) -> None:
        self.answer, self.ask = answer, ask
        self.mode = ""
        self.status = 0
        self.buf = bytearray()
        self.received = 0
        self.budget = answer_budget(ask.tokens)

    def start(self, status: int, content_type: str) -> None:
        self.status = status
        if status != 200:
            self.mode = "error"
        elif content_type == "text/event-stream":
            self.mode = "events"
        elif content_type == "application/json" or content_type.endswith("+json"):
            self.mode = "json"
        else:
            raise BadAnswer(
                f"content type {content_type!r} (expected text/event-stream or application/json)"
            )

    def feed(self, data: bytes, now: float) -> bool:
        buf = self.buf
        if self.mode == "error":
            buf += data[: MAX_ERROR_BODY_BYTES - len(buf)]
            return len(buf) < MAX_ERROR_BODY_BYTES
        self.received += len(data)
        if self.received > self.budget:
            raise BadAnswer(f"answer over {self.budget:,} bytes for {self.ask.tokens:,} tokens")
        buf += data
        if self.mode == "events":
            self._events(now)
        return True

    def _events(self, now: float) -> None:
        """Every complete event in the buffer; one timestamp per network chunk (given to
        every token in it, as vLLM's own benchmark client does)."""
        buf = self.buf
        if b"\r" in buf:
            buf = self.buf = bytearray(buf.replace(b"\r\n", b"\n"))
        end = buf.rfind(b"\n\n")
        if end >= 0:  # the complete events, cut from buf at once
            block = bytes(buf[:end])
            del buf[: end + 2]
            answer, limit = self.answer, self.ask.prompt_limit
            for event in block.split(b"\n\n"):
                if event[:6] == b"data: " and b"\n" not in event:  # the usual: one data line
                    _data(event[6:], answer, now, limit)
                else:
                    _event(event, answer, now, limit)  # comments, names, several lines
        if len(buf) > MAX_EVENT_BYTES:
            raise BadAnswer(f"a stream event over {MAX_EVENT_BYTES:,} bytes")

    def end(self) -> None:
        """The answer is complete (or, for an error body, enough was read)."""
        answer = self.answer
        if self.mode == "error":
            text = bytes(self.buf).decode("utf-8", "replace")
            fail(answer.out, SERVER, f"HTTP {self.status}: {text}")
        elif self.mode == "events":
            answer.end_stream()
        else:
            obj = loads(bytes(self.buf), "answer")
            parsed = parse_object(
                obj, chat=answer.chat, streamed=False, max_prompt_ids=self.ask.prompt_limit
            )
            answer.whole(parsed)


def _event(event: bytes, answer: _Answer, now: float, max_prompt_ids: int) -> None:
    for line in event.split(b"\n") if b"\n" in event else (event,):
        if line.startswith(b"data:"):  # not: SSE comments, pings, event names
            _data(line[5:], answer, now, max_prompt_ids)


def _data(payload: bytes, answer: _Answer, now: float, max_prompt_ids: int) -> None:
    """One event's data: the end mark, the usual chunk (fast), or any other chunk."""
    payload = payload.strip()
    if payload == b"[DONE]":
        answer.done = True
        return
    obj = loads(payload, "stream event")
    plain = plain_token(obj, chat=answer.chat)
    if plain is not None:
        answer.add_text(*plain, now)
        return
    answer.add(
        parse_object(obj, chat=answer.chat, streamed=True, max_prompt_ids=max_prompt_ids), now
    )


__all__ = ["CLIENT", "SERVER", "Ask", "Client", "error_text", "fail"]
