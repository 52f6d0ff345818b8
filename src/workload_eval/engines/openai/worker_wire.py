"""What a load worker is sent (its share of the plan) and sends back (its outcomes): bytes.

No pickle crosses a process: a share is one JSON header line followed by fixed binary frames
``(schedule position: u32, send time from the shared origin: f64, body length: u32, body)``
(the bodies are the plan's request bodies, sent as they are), and the results are JSON lines,
one per request, then one line with the worker's CPU and wall time. Times in results count
from the shared origin ``t0``, so the parent merges every worker's records into one timeline.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from workload_eval.engines.openai.loadgen import Outcome

_FRAME = struct.Struct("<IdI")


class WireError(ValueError):
    """A share or result stream that is not what this module writes."""


@dataclass
class Share:
    """One worker's part of the plan: where to send, and when (from t0) to send which body."""

    url: str
    headers: dict[str, str]
    chat: bool
    request_timeout: float
    items: list[tuple[int, float, bytes]] = field(default_factory=list)  # (position, at, body)


def encode_share(share: Share) -> bytes:
    head = {
        "url": share.url,
        "headers": share.headers,
        "chat": share.chat,
        "request_timeout": share.request_timeout,
        "count": len(share.items),
    }
    parts = [json.dumps(head, separators=(",", ":")).encode(), b"\n"]
    for i, at, body in share.items:
        parts.append(_FRAME.pack(i, at, len(body)))
        parts.append(body)
    return b"".join(parts)


def decode_share(data: bytes) -> Share:
    head_end = data.find(b"\n")
    if head_end < 0:
        raise WireError("share: no header line")
    try:
        head = json.loads(data[:head_end])
        share = Share(
            url=str(head["url"]),
            headers={str(k): str(v) for k, v in dict(head["headers"]).items()},
            chat=bool(head["chat"]),
            request_timeout=float(head["request_timeout"]),
        )
        count = int(head["count"])
    except (ValueError, KeyError, TypeError) as e:
        raise WireError(f"share header: {e}") from None
    pos = head_end + 1
    for _ in range(count):
        if pos + _FRAME.size > len(data):
            raise WireError("share: truncated frame")
        i, at, n = _FRAME.unpack_from(data, pos)
        pos += _FRAME.size
        if pos + n > len(data) or not math.isfinite(at):
            raise WireError("share: truncated or bad body")
        share.items.append((i, at, data[pos : pos + n]))
        pos += n
    if pos != len(data):
        raise WireError("share: bytes after the last frame")
    return share


def _rel(t: float, t0: float) -> float | None:
    return None if t != t else t - t0


def _abs(t: float | None, t0: float) -> float:
    return math.nan if t is None else t0 + float(t)


# Outcome fields that are perf_counter() times: sent relative to t0, so the parent can put
# them on its own clock; ``pieces`` (the streamed text) stays in the worker (only a session's
# follow-up needs it, and those are never split over workers). Every other field of Outcome
# travels as it is, so a field added to Outcome reaches the merged records without a change here.
TIME_FIELDS = ("send_time", "first_token_time", "finish_time")
LOCAL_FIELDS = ("pieces",)


def outcome_line(i: int, out: Outcome, t0: float) -> bytes:
    """One request's outcome as a JSON line, times from ``t0``."""
    rec: dict[str, object] = {"i": i}
    for f in fields(Outcome):
        if f.name in LOCAL_FIELDS:
            continue
        value = getattr(out, f.name)
        if f.name in TIME_FIELDS:
            value = _rel(value, t0)
        elif f.name == "token_times":
            value = [t - t0 for t in value]
        rec[f.name] = value
    return json.dumps(rec, separators=(",", ":")).encode() + b"\n"


def summary_line(cpu_s: float, wall_s: float, interrupted: bool) -> bytes:
    rec = {"end": True, "cpu_s": cpu_s, "wall_s": wall_s, "interrupted": interrupted}
    return json.dumps(rec).encode() + b"\n"


@dataclass
class WorkerResult:
    """What one worker sent back; ``outcomes`` by schedule position, times absolute again."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    interrupted: bool = False
    complete: bool = False  # the closing line arrived (else the worker died mid-way)


def decode_results(lines: Iterable[bytes], t0: float, positions: set[int]) -> WorkerResult:
    """Parse a worker's result lines against the parent's clock origin ``t0``; a position the
    worker was not given, or a malformed line, is a WireError."""
    res = WorkerResult()
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if rec.get("end"):
                res.cpu_s, res.wall_s = float(rec["cpu_s"]), float(rec["wall_s"])
                res.interrupted, res.complete = bool(rec["interrupted"]), True
                continue
            i = int(rec.pop("i"))
            if i not in positions:
                raise WireError(f"result for position {i}, which the worker was not given")
            for name in TIME_FIELDS:
                rec[name] = _abs(rec.get(name), t0)
            rec["token_times"] = [t0 + float(t) for t in rec.get("token_times") or []]
            known = {f.name for f in fields(Outcome)} - set(LOCAL_FIELDS)
            out = Outcome(**{k: v for k, v in rec.items() if k in known})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise WireError(f"worker result: {e}") from None
        res.outcomes[i] = out
    return res


__all__ = [
    "Share",
    "WireError",
    "WorkerResult",
    "decode_results",
    "decode_share",
    "encode_share",
    "outcome_line",
    "summary_line",
]
