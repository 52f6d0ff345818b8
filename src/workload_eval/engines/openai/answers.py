"""A server's answer is untrusted input: every field the client uses is typed and bounded.

One stream event (or a whole non-streamed answer) is parsed into an :class:`Event`; what
breaks the OpenAI protocol (a ``usage`` that is a string, a list or negative, a token
count beyond what was asked for, text that is not text, JSON nested beyond reason) raises
:class:`BadAnswer`, whose message becomes the request's error. The size of what is read is
bounded by the reader (``stream.py``) with the limits in :mod:`workload_eval.limits`.

Hand-written checks rather than a pydantic model: this runs for every chunk of every
request inside the load generator (thousands per second), where a model costs too much.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import aiohttp
import orjson

from workload_eval.limits import MAX_INT


class BadAnswer(Exception):
    """The server's answer broke the protocol; the message says how (the request's error)."""


@dataclass(slots=True)
class Usage:
    """Token counts a server claims (vLLM's per-chunk usage or the final one)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)
class Event:
    """One parsed answer: a stream chunk, or a whole non-streamed answer."""

    # the token text it carries; None: no token (a role chunk); "" for completions is a
    # token whose text is not printable yet (part of a multi-byte character)
    text: str | None = None
    finished: bool = False  # a choice said why it stopped
    usage: Usage | None = None
    prompt_ids: list[int] | None = None  # the prompt ids the server saw (vLLM's return_token_ids)
    error: str | None = None  # an error object the server sent instead of choices


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"{value!r}"[:40]


def count(value: object, where: str) -> int | None:
    """A token count: a whole number in [0, MAX_INT] (an integral float is accepted)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadAnswer(f"{where} is {_kind(value)} (expected a whole number of tokens)")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise BadAnswer(f"{where} is {value!r} (expected a whole number of tokens)")
        value = int(value)
    if not 0 <= value <= MAX_INT:
        raise BadAnswer(f"{where} is {value} (expected 0 to {MAX_INT:,} tokens)")
    return value


def parse_usage(raw: object) -> Usage | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadAnswer(f"usage is {_kind(raw)} (expected an object)")
    return Usage(
        count(raw.get("prompt_tokens"), "usage.prompt_tokens"),
        count(raw.get("completion_tokens"), "usage.completion_tokens"),
    )


def _token_ids(raw: object, limit: int) -> list[int] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadAnswer(f"prompt_token_ids is {_kind(raw)} (expected a list of token ids)")
    if len(raw) > limit:
        raise BadAnswer(f"prompt_token_ids has {len(raw):,} ids (more than the {limit:,} sent)")
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_INT:
            raise BadAnswer(f"prompt_token_ids holds {_kind(v)} (expected token ids)")
    return raw


def loads(payload: bytes | str, what: str) -> object:
    """JSON from a server: invalid, too deep or too large numbers are a BadAnswer."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass  # orjson is strict: the standard parser says why (or accepts NaN, big ints)
    try:
        return json.loads(payload)
    except RecursionError:
        raise BadAnswer(f"{what} is JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:  # incl. ints over Python's digit limit
        raise BadAnswer(f"{what} is not valid JSON ({str(e)[:80]})") from None


def _text(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadAnswer(f"{where} is {_kind(value)} (expected text)")


def _choice(choices: object) -> dict[str, object] | None:
    if choices is None:
        return None
    if not isinstance(choices, list):
        raise BadAnswer(f"choices is {_kind(choices)} (expected a list)")
    if not choices:
        return None
    first = choices[0]
    if not isinstance(first, dict):
        raise BadAnswer(f"choices[0] is {_kind(first)} (expected an object)")
    return first


def _finished(choice: dict[str, object]) -> bool:
    reason = choice.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        raise BadAnswer(f"finish_reason is {_kind(reason)} (expected text or null)")
    return bool(reason)


def parse_object(obj: object, *, chat: bool, streamed: bool, max_prompt_ids: int) -> Event:
    """A decoded chunk (``streamed``) or whole answer -> Event; BadAnswer when malformed."""
    what = "stream event" if streamed else "answer"
    if not isinstance(obj, dict):
        raise BadAnswer(f"{what} is {_kind(obj)} (expected a JSON object)")
    choice = _choice(obj.get("choices"))
    if choice is None and "error" in obj:
        return Event(error=str(obj["error"]))
    event = Event(usage=parse_usage(obj.get("usage")))
    if choice is None:
        return event
    event.prompt_ids = _token_ids(choice.get("prompt_token_ids"), max_prompt_ids)
    event.finished = _finished(choice)
    if not chat:
        event.text = _text(choice.get("text"), "choices[0].text")
        return event
    key = "delta" if streamed else "message"
    body = choice.get(key)
    if body is None:
        return event
    if not isinstance(body, dict):
        raise BadAnswer(f"choices[0].{key} is {_kind(body)} (expected an object)")
    content = _text(body.get("content"), f"choices[0].{key}.content")
    reasoning = _text(body.get("reasoning_content"), f"choices[0].{key}.reasoning_content")
    event.text = content or reasoning or None  # the role chunk's "" is no token
    return event


def plain_token(obj: object, *, chat: bool) -> tuple[str | None, bool] | None:
    """(text, finished) of the usual stream chunk -- one choice with text (or a chat delta)
    and a finish reason, no usage, no prompt ids -- as ``parse_object`` reads it; None when
    the chunk is anything else (then ``parse_object`` parses it, and says what is wrong).

    Why: at thousands of requests per second every request streams tens of these; building
    an Event for each was a third of the load generator's CPU.
    """
    if type(obj) is not dict or obj.get("usage") is not None:
        return None
    choices = obj.get("choices")
    if type(choices) is not list or not choices:
        return None
    first = choices[0]
    if type(first) is not dict or first.get("prompt_token_ids") is not None:
        return None
    reason = first.get("finish_reason")
    if reason is not None and type(reason) is not str:
        return None
    if not chat:
        text = first.get("text")
        return (text, bool(reason)) if text is None or type(text) is str else None
    delta = first.get("delta")
    if delta is None:
        return None, bool(reason)
    if type(delta) is not dict:
        return None
    content, reasoning = delta.get("content"), delta.get("reasoning_content")
    if (content is not None and type(content) is not str) or (
        reasoning is not None and type(reasoning) is not str
    ):
        return None
    return content or reasoning or None, bool(reason)


async def read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body (all of it when shorter): never more is held."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = await content.read(limit - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


__all__ = [
    "BadAnswer",
    "Event",
    "Usage",
    "count",
    "loads",
    "parse_object",
    "parse_usage",
    "plain_token",
    "read_at_most",
]
