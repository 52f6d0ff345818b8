"""Arrival schedules: when each request of a workload is sent, deterministic for a seed.

Specs are pydantic models discriminated by ``kind`` (GuideLLM style) so a YAML/JSON spec
deserializes to the right class with field-level errors. Times are seconds from run start.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from workload_eval import limits
from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.errors import UserError
from workload_eval.strict import NoBoolNumbers

# The seed's Poisson process (cacheflow/vLLM-fork ``benchmark/trace.py``): arrival counts
# drawn per 10 ms quantum from ``np.random.seed(seed); np.random.poisson(rate * 0.01)``.
QUANTUM_MS = 10

RateKind = Literal["poisson", "poisson-exp", "gamma", "constant"]

_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_PositiveOpt = Annotated[float | None, Field(default=None, gt=0, allow_inf_nan=False)]
_CountOpt = Annotated[int | None, Field(default=None, gt=0, le=limits.MAX_INT)]


class _Spec(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _within_limits(self) -> _Spec:
        """What this schedule makes the tool allocate stays within ``limits``."""
        try:
            self._check_limits()
        except UserError as e:  # a validation error, so a spec names the file and line
            raise ValueError(str(e)) from None
        return self

    def _check_limits(self) -> None:
        n = getattr(self, "num_requests", None)
        rate, duration = getattr(self, "rate", None), getattr(self, "duration", None)
        if duration is not None:
            limits.check_duration(duration, what=f"schedule {self.kind!r}")
        if n is not None:
            limits.check_request_count(n, what=f"num_requests={n}")
        if rate is not None and duration is not None and self.kind != "sessions":
            expected = rate * duration if n is None else min(n, rate * duration)
            limits.check_request_count(expected, what=f"rate {rate:g}/s over {duration:g} s")
        if rate is not None and duration is None and n is not None:
            limits.check_duration(n / rate, what=f"{n} requests at {rate:g}/s")
        think = getattr(self, "think_time", None)
        if think is not None:
            limits.check_duration(think, what=f"think_time {think:g}")


class OfflineSchedule(_Spec):
    """Every request at t=0 (the seed's offline experiments); None = the whole workload."""

    kind: Literal["offline"] = "offline"
    num_requests: _CountOpt = None


class _RateSchedule(_Spec):
    rate: _Positive
    duration: _PositiveOpt = None
    num_requests: _CountOpt = None

    @model_validator(mode="after")
    def _bounded(self) -> _RateSchedule:
        if self.duration is None and self.num_requests is None:
            raise ValueError(f"schedule {self.kind!r} needs a duration or num_requests")
        return self


class PoissonSchedule(_RateSchedule):
    """The seed's process: Poisson arrival counts per 10 ms quantum."""

    kind: Literal["poisson"] = "poisson"


class PoissonExpSchedule(_RateSchedule):
    """A Poisson process with continuous exponential gaps (vLLM benchmark_serving)."""

    kind: Literal["poisson-exp"] = "poisson-exp"


class GammaSchedule(_RateSchedule):
    """Gamma gaps, shape = burstiness, scale = 1/(rate*burstiness): < 1 burstier, 1 = Poisson."""

    kind: Literal["gamma"] = "gamma"
    burstiness: _Positive = 1.0


class ConstantSchedule(_RateSchedule):
    """Evenly spaced arrivals, 1/rate apart."""

    kind: Literal["constant"] = "constant"


class TraceSchedule(_Spec):
    """Replay the workload's own ``arrival_time``; time_scale 2 replays twice as fast."""

    kind: Literal["trace"] = "trace"
    time_scale: _Positive = 1.0
    duration: _PositiveOpt = None  # keep arrivals before this (after scaling)
    num_requests: _CountOpt = None


class SessionsSchedule(_Spec):
    """Multi-turn sessions: first turns arrive per a rate process, later turns after a reply.

    A follow-up turn is sent ``think_time`` seconds (fixed, or exponential with that mean)
    after the previous turn of its session finishes.
    """

    kind: Literal["sessions"] = "sessions"
    rate: _Positive  # sessions per second
    arrival: RateKind = "poisson-exp"
    burstiness: _Positive = 1.0
    think_time: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    think_time_dist: Literal["fixed", "exponential"] = "fixed"
    duration: _PositiveOpt = None  # keep sessions starting before this
    num_requests: _CountOpt = None  # turns to load from the workload (whole sessions, cut)


class ConcurrencySchedule(_Spec):
    """A closed loop of ``concurrency`` users (GuideLLM's and AIPerf's concurrency; not
    vLLM's ``--max-concurrency``, which caps an open loop): each user sends its next request
    ``think_time`` seconds (fixed, or exponential with that mean) after its previous one
    finished. The requests are taken in workload order; ``num_requests`` of them (None: the
    whole workload). Each request's intended send time is that finish plus think time.
    """

    kind: Literal["concurrency"] = "concurrency"
    concurrency: Annotated[int, Field(gt=0, le=limits.MAX_INT)]
    num_requests: _CountOpt = None
    think_time: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    think_time_dist: Literal["fixed", "exponential"] = "fixed"


ScheduleSpec = Annotated[
    OfflineSchedule
    | PoissonSchedule
    | PoissonExpSchedule
    | GammaSchedule
    | ConstantSchedule
    | TraceSchedule
    | SessionsSchedule
    | ConcurrencySchedule,
    Field(discriminator="kind"),
]
SCHEDULE_KINDS: tuple[str, ...] = (
    "offline",
    "poisson",
    "poisson-exp",
    "gamma",
    "constant",
    "trace",
    "sessions",
    "concurrency",
)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)


def parse_schedule(data: dict[str, Any], *, where: str = "schedule") -> ScheduleSpec:
    """A schedule spec from plain data (YAML/JSON); bad fields become one-line UserErrors."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise UserError(f"{where}: {validation_message(e)}") from None


def validation_message(e: ValidationError) -> str:
    """The first error of a schedule validation as ``field: message (got value)``."""
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if loc and loc[0] in SCHEDULE_KINDS:
        loc = loc[1:]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"].startswith("union_tag") or (err["type"] == "missing" and not loc):
        return f"kind: {msg}"
    if not loc:
        return msg
    if err["type"] == "missing":
        return f"{'.'.join(loc)}: field required"
    return f"{'.'.join(loc)}: {msg} (got {err.get('input')!r})"


# ---------------------------------------------------------------- arrival processes


def _seed_poisson(rate: float, duration: float | None, n: int | None, seed: int) -> np.ndarray:
    """Exactly the seed's arrivals: quantum i holds Poisson(rate*0.01) requests at i*0.01 s.

    Drawn in chunks (legacy draws are sequential, so the stream is the same as one big
    draw) keeping only the arrivals: memory follows the requests, not the quanta.
    """
    rs = np.random.RandomState(seed)  # the stream of np.random.seed(seed)
    lam = rate * (QUANTUM_MS / 1000)
    quantum_s = QUANTUM_MS / 1000
    # Without a duration, draw up to the longest run allowed: never an endless loop.
    horizon = duration if duration is not None else limits.max_duration_s() + quantum_s
    total_quanta = int(horizon / quantum_s)
    parts: list[np.ndarray] = []
    drawn = total = 0
    while (n is None or total < n) and drawn < total_quanta:
        size = _CHUNK if n is None else min(_CHUNK, max(1024, int(1.2 * (n - total) / lam) + 1))
        size = min(size, total_quanta - drawn)
        counts = rs.poisson(lam=lam, size=size)
        parts.append(np.repeat((drawn + np.arange(size)) * quantum_s, counts))
        drawn += size
        total += len(parts[-1])
    if n is not None and duration is None and total < n:
        limits.check_duration(math.inf, what=f"{n} arrivals at {rate:g}/s")
    times = np.concatenate(parts) if parts else np.zeros(0)
    return times if n is None else times[:n]


_CHUNK = 1 << 20


def _gap_arrivals(
    kind: RateKind,
    rate: float,
    burstiness: float,
    duration: float | None,
    n: int | None,
    seed: int,
) -> np.ndarray:
    """First arrival at t=0, then cumulative gaps (vLLM benchmark_serving's convention)."""
    rng = np.random.default_rng(seed)

    def gaps(size: int) -> np.ndarray:
        if kind == "constant":
            return np.full(size, 1.0 / rate)
        if kind == "poisson-exp":
            return rng.exponential(1.0 / rate, size)
        return rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=size)

    if kind == "constant":  # exact multiples, no accumulated rounding
        count = n if duration is None else int(np.ceil(duration * rate - 1e-9))
        if n is not None:
            count = min(count, n)
        times = np.arange(count) / rate
        return times[times < duration] if duration is not None else times
    parts = [np.zeros(1)]
    last, total = 0.0, 1
    want = n if duration is None else int(rate * duration * 1.2) + 16
    # rate x duration is bounded (limits), so far more arrivals than that within the
    # duration means gaps that underflow to 0 (a burstiness of 1e-300): not a process.
    cap = 2 * limits.max_requests() + 1024
    while (n is None or total < n) and (duration is None or last < duration):
        if total > cap:
            raise UserError(
                f"schedule {kind}: the arrivals do not advance in time (gaps of 0 s; "
                f"burstiness {burstiness:g} is too small)"
            )
        t = last + np.cumsum(gaps(max(16, want - total if n is not None else want)))
        parts.append(t)
        last, total = float(t[-1]), total + len(t)
    times = np.concatenate(parts)
    if duration is not None:
        times = times[times < duration]
    return times if n is None else times[:n]


def _rate_arrivals(
    kind: RateKind,
    rate: float,
    burstiness: float,
    duration: float | None,
    n: int | None,
    seed: int,
) -> np.ndarray:
    if kind == "poisson":
        return _seed_poisson(rate, duration, n, seed)
    return _gap_arrivals(kind, rate, burstiness, duration, n, seed)


def arrival_times(spec: ScheduleSpec, seed: int) -> np.ndarray | None:
    """Intended send times, or None when the workload decides the count (trace, sessions)."""
    if isinstance(spec, OfflineSchedule):
        return None if spec.num_requests is None else np.zeros(spec.num_requests)
    if isinstance(spec, TraceSchedule | SessionsSchedule | ConcurrencySchedule):
        return None
    times = _rate_arrivals(
        spec.kind,
        spec.rate,
        getattr(spec, "burstiness", 1.0),
        spec.duration,
        spec.num_requests,
        seed,
    )
    if len(times) == 0:
        raise UserError(
            f"schedule {spec.kind}: rate {spec.rate}/s over {spec.duration} s produced no "
            "arrivals (raise --request-rate or --duration)"
        )
    _check_times(times, f"schedule {spec.kind}")
    return times


def _check_times(times: np.ndarray, what: str) -> None:
    """Arrival times are finite, non-negative and within the duration limit (a tiny
    burstiness or time scale can overflow them; a simulator cannot wait for infinity)."""
    if len(times) and not (np.isfinite(times).all() and times.min() >= 0):
        raise UserError(
            f"{what}: arrival times overflow (a rate, burstiness or time scale too small?)"
        )
    if len(times):
        limits.check_duration(float(times.max()), what=what)
    limits.check_request_count(len(times), what=what)


def request_count(spec: ScheduleSpec, seed: int) -> int | None:
    """How many requests to load from the workload; None = all it has."""
    times = arrival_times(spec, seed)
    if times is not None:
        return len(times)
    return spec.num_requests


# ---------------------------------------------------------------- schedules


def _requests(df: pd.DataFrame) -> list[Request]:
    from workload_eval.workloads import to_requests

    return to_requests(df)


def build_schedule(spec: ScheduleSpec, df: pd.DataFrame, seed: int = 0) -> Schedule:
    """Pair the workload's requests (in row order) with the schedule's arrival times."""
    if len(df) == 0:
        raise UserError("schedule: the workload has no requests")
    params = {**spec.model_dump(mode="json"), "seed": seed}
    if isinstance(spec, TraceSchedule):
        items = _trace_items(spec, df)
    elif isinstance(spec, SessionsSchedule):
        items = _session_items(spec, df, seed)
    elif isinstance(spec, ConcurrencySchedule):
        items = _closed_loop_items(spec, df, seed)
        return Schedule(kind=spec.kind, items=items, params=params, concurrency=spec.concurrency)
    else:
        times = arrival_times(spec, seed)
        if times is None:  # offline over the whole workload
            times = np.zeros(len(df))
        if len(df) < len(times):
            raise UserError(
                f"schedule {spec.kind}: needs {len(times)} requests but the workload has "
                f"{len(df)} (load it with num_requests={len(times)})"
            )
        limits.check_request_count(len(times), what=f"schedule {spec.kind}")
        reqs = _requests(df.iloc[: len(times)])
        items = [ScheduledRequest(r, float(t)) for r, t in zip(reqs, times, strict=True)]
        if df.attrs.get("serialize_turns"):
            _serialize_turns(items)
    return Schedule(kind=spec.kind, items=items, params=params)


def _closed_loop_items(
    spec: ConcurrencySchedule, df: pd.DataFrame, seed: int
) -> list[ScheduledRequest]:
    """Every request due at 0 as far as the schedule knows: the loop decides when (each
    root's think time is its user's pause before it; the first N users start at once)."""
    frame = df if spec.num_requests is None else df.iloc[: spec.num_requests]
    limits.check_request_count(len(frame), what="schedule concurrency")
    items = [ScheduledRequest(r, 0.0) for r in _requests(frame)]
    if df.attrs.get("serialize_turns"):
        _serialize_turns(items)
    if spec.think_time > 0:
        roots = [it for it in items if it.depends_on is None]
        if spec.think_time_dist == "fixed":
            pauses = np.full(len(roots), spec.think_time)
        else:  # its own stream, as the sessions schedule draws think times
            pauses = np.random.default_rng([seed, 1]).exponential(spec.think_time, len(roots))
        pauses[: spec.concurrency] = 0.0  # every user starts at once
        for it, pause in zip(roots, pauses, strict=True):
            it.think_time = float(pause)
    return items


def _serialize_turns(items: list[ScheduledRequest]) -> None:
    """A session's turn waits for its previous turn (inference-perf multi-turn users).

    The turn keeps its scheduled ``arrival_time``; it is meant to be sent at the later of
    that time and its previous turn's completion.
    """
    last: dict[int, int] = {}
    for it in items:
        sid = it.request.session_id
        if sid is None:
            continue
        if sid in last:
            it.depends_on = last[sid]
        last[sid] = it.request.request_id


def _trace_items(spec: TraceSchedule, df: pd.DataFrame) -> list[ScheduledRequest]:
    if "arrival_time" not in df.columns:
        workload = df.attrs.get("workload", "this workload")
        raise UserError(
            f"schedule trace: {workload} has no arrival times (expected a trace workload "
            "such as azure_conv, azure_code or mooncake)"
        )
    t = df["arrival_time"].to_numpy(dtype=float)
    if not np.isfinite(t).all():
        row = int(np.flatnonzero(~np.isfinite(t))[0])
        raise UserError(
            f"schedule trace: request {row} has arrival time {t[row]} (expected a finite time)"
        )
    order = np.argsort(t, kind="stable")
    times = (t[order] - t[order[0]]) / spec.time_scale
    keep = np.ones(len(times), dtype=bool) if spec.duration is None else times < spec.duration
    order, times = order[keep], times[keep]
    if spec.num_requests is not None:
        order, times = order[: spec.num_requests], times[: spec.num_requests]
    _check_times(times, "schedule trace")
    frame = df.iloc[order]
    items = [ScheduledRequest(r, float(x)) for r, x in zip(_requests(frame), times, strict=True)]
    if "think_time" in frame.columns and "session_id" in frame.columns:
        # an exported multi-turn schedule: a turn follows its previous turn by think_time
        _serialize_turns(items)
        for it, think in zip(items, frame["think_time"].to_numpy(dtype=float), strict=True):
            if it.depends_on is not None:
                it.think_time = float(think) / spec.time_scale
    return items


def _session_items(spec: SessionsSchedule, df: pd.DataFrame, seed: int) -> list[ScheduledRequest]:
    missing = [c for c in ("session_id", "turn") if c not in df.columns]
    if missing:
        workload = df.attrs.get("workload", "this workload")
        raise UserError(
            f"schedule sessions: {workload} has no {' / '.join(missing)} column (expected a "
            "multi-turn workload such as sharegpt_chat)"
        )
    frame = df.reset_index(drop=True)
    if spec.num_requests is not None:
        frame = frame.iloc[: spec.num_requests]
    # sessions in order of first appearance, turns in turn order
    first_pos = frame.groupby("session_id", sort=False).cumcount() == 0
    session_order = frame.loc[first_pos, "session_id"].tolist()
    rank = {s: i for i, s in enumerate(session_order)}
    frame = frame.assign(_rank=frame["session_id"].map(rank))
    frame = frame.sort_values(["_rank", "turn"], kind="stable").drop(columns="_rank")
    starts = _rate_arrivals(
        spec.arrival, spec.rate, spec.burstiness, spec.duration, len(session_order), seed
    )
    n_sessions = len(starts)
    if n_sessions == 0:
        raise UserError(f"schedule sessions: no session starts within duration {spec.duration} s")
    frame = frame[frame["session_id"].map(rank) < n_sessions]
    _check_times(starts, "schedule sessions")
    limits.check_request_count(len(frame), what="schedule sessions")
    reqs = _requests(frame)
    own_think = frame["think_time"].to_numpy(dtype=float) if "think_time" in frame else None
    if own_think is not None and spec.think_time > 0:
        raise UserError(
            f"--think-time: {df.attrs.get('workload', 'the workload')} sets its own think "
            "times (field think_time); drop --think-time"
        )
    think_rng = np.random.default_rng([seed, 1])  # its own stream: arrivals stay unchanged
    items: list[ScheduledRequest] = []
    prev_session, prev_id, start = None, None, 0.0
    for i, (r, sid) in enumerate(zip(reqs, frame["session_id"].tolist(), strict=True)):
        if sid != prev_session:
            start = float(starts[rank[sid]])
            items.append(ScheduledRequest(r, start))
        else:
            if own_think is not None:
                think = float(own_think[i])
            elif spec.think_time_dist == "fixed" or spec.think_time == 0:
                think = spec.think_time
            else:
                think = float(think_rng.exponential(spec.think_time))
            items.append(ScheduledRequest(r, start, depends_on=prev_id, think_time=think))
        prev_session, prev_id = sid, r.request_id
    items.sort(key=lambda it: it.arrival_time)  # stable: a session's turns stay in order
    return items


__all__ = [
    "SCHEDULE_KINDS",
    "ConcurrencySchedule",
    "ConstantSchedule",
    "GammaSchedule",
    "OfflineSchedule",
    "PoissonExpSchedule",
    "PoissonSchedule",
    "ScheduleSpec",
    "SessionsSchedule",
    "TraceSchedule",
    "arrival_times",
    "build_schedule",
    "parse_schedule",
    "request_count",
]
