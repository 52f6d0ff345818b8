"""Schedule specs: pydantic models discriminated by ``kind`` (GuideLLM style), so a
YAML/JSON spec deserializes to the right class with field-level errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from workload_eval import limits
from workload_eval.errors import UserError
from workload_eval.strict import NoBoolNumbers

RateKind = Literal["poisson", "poisson-exp", "gamma", "constant"]
RATE_KINDS: tuple[str, ...] = get_args(RateKind)
# the kinds whose load a rate sets (what a capacity search of the rate may vary)
RATE_DRIVEN_KINDS: tuple[str, ...] = (*RATE_KINDS, "sessions")

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
# every kind, in the union's order (the order errors and --schedule's choices list them)
SCHEDULE_KINDS: tuple[str, ...] = tuple(
    spec.model_fields["kind"].default for spec in get_args(get_args(ScheduleSpec)[0])
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
