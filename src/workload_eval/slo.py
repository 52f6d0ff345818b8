"""Service-level objectives: one grammar, ``METRIC OP VALUE``, in every command and spec.

A bound on a per-request latency (``ttft``, ``tpot``, ``e2e_latency``, ``normalized_latency``,
seconds) is met by each request that stays within it; such bounds define a run's ``goodput``
and ``slo_attainment``. A bound on a run's summary metric (``normalized_latency_p95``,
``ttft_p99``, ``goodput``, ``slo_attainment``, ...) is met by the run. A run meets its SLOs
when every run-level bound holds; ``capacity`` searches the highest rate where it does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import numpy as np
from pydantic import ConfigDict, ValidationError, model_validator

from workload_eval.errors import UserError
from workload_eval.paper import SLO_TEXT
from workload_eval.strict import NoBoolNumbers

# Per-request latencies a bound can apply to (seconds; normalized_latency in s per token).
REQUEST_METRICS: tuple[str, ...] = ("ttft", "tpot", "e2e_latency", "normalized_latency")
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)  # of every latency in a run summary
STEADY_PREFIX = "steady."  # summary keys of the steady-state window (analysis.steady)

_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?"
_SLO_RE = re.compile(rf"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*({_NUMBER})\s*$")
Op = Literal["<=", "<", ">=", ">"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}
# Metrics measured in seconds: positive for any run that completed a request.
_TIME_METRICS = ("ttft", "tpot", "itl", "e2e_latency", "normalized_latency", "duration_s")
GRAMMAR = f"METRIC<=VALUE (operators <=, <, >=, >), e.g. {SLO_TEXT} or ttft<=0.5"


def run_metrics() -> list[str]:
    """Scalar keys of a run's summary.json that a run-level bound may name (metrics.summarize)."""
    names = [
        "request_throughput",
        "token_throughput",
        "output_token_throughput",
        "goodput",
        "slo_attainment",
        "normalized_latency_mean",
        "normalized_latency_p95",
        "preemptions",
        "num_failed",
        "num_completed",
        "duration_s",
    ]
    latencies = []
    for prefix in ("ttft", "tpot", "itl", "e2e_latency"):
        latencies += [f"{prefix}_mean", *(f"{prefix}_p{p}" for p in PERCENTILES)]
    names += [*latencies, "send_lag_mean", *(f"send_lag_p{p}" for p in PERCENTILES)]
    # the same over the run's steady-state window (metrics.steady_metrics)
    steady = [*names[:7], *latencies]
    return names + [f"{STEADY_PREFIX}{n}" for n in steady]


class SLO(NoBoolNumbers):
    """One bound, on each request's latency or on a run's summary metric."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    op: Op = "<="
    value: float

    @model_validator(mode="after")
    def _decides_something(self) -> SLO:
        """A bound that no run can meet (or every run meets) would make the capacity 0
        (or the search's limit) and goodput 0 silently: refuse it."""
        v, op, name = self.value, self.op, self.metric
        if not math.isfinite(v):
            raise ValueError(f"SLO {self}: the bound must be a finite number")
        if self.per_request and not v > 0:
            raise ValueError(f"{self}: a per-request bound must be a positive number of seconds")
        if (op == "<=" and v < 0) or (op == "<" and v <= 0):
            raise ValueError(f"SLO {self} can never hold: {name} is never negative")
        if op == "<=" and v == 0 and name.removeprefix(STEADY_PREFIX).startswith(_TIME_METRICS):
            raise ValueError(f"SLO {self} can never hold: {name} is a positive time")
        if (op == ">=" and v <= 0) or (op == ">" and v < 0):
            raise ValueError(f"SLO {self} always holds: {name} is never negative")
        if name == "slo_attainment" and v > 1:
            raise ValueError(f"SLO {self}: slo_attainment is a fraction from 0 to 1")
        return self

    @classmethod
    def parse(cls, text: str, *, where: str = "--slo") -> SLO:
        m = _SLO_RE.match(str(text))
        if m is None:
            raise UserError(f"{where}: cannot parse SLO {text!r} (expected {GRAMMAR})")
        op: Op = m.group(2)  # type: ignore[assignment]  # the regex admits only the four
        return cls.checked(where, metric=m.group(1), op=op, value=float(m.group(3)))

    @classmethod
    def checked(cls, where: str, **fields: object) -> SLO:
        """The SLO, or its first problem as one line naming ``where``."""
        try:
            return cls.model_validate(fields)
        except ValidationError as e:
            msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
            raise UserError(f"{where}: {msg}") from None

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    @property
    def per_request(self) -> bool:
        """A bound each request must meet (defines goodput), not a bound on the run."""
        return self.metric in REQUEST_METRICS

    def holds(self, value: float) -> bool:
        """NaN (undefined, e.g. nothing completed) never meets a bound."""
        return not math.isnan(value) and _OPS[self.op](value, self.value)

    def holds_each(self, values: np.ndarray) -> np.ndarray:
        """:meth:`holds` element-wise (NaN never holds)."""
        return _OPS[self.op](np.asarray(values, dtype=float), self.value)

    def observed(self, metrics: Mapping[str, object]) -> float:
        return observed(metrics, self.metric)

    def met(self, metrics: Mapping[str, object]) -> bool:
        """A missing or NaN metric (e.g. nothing completed) counts as a violation."""
        return self.holds(self.observed(metrics))

    def margin(self, metrics: Mapping[str, object]) -> float:
        """Relative distance to the threshold (NaN when unknown); small means noisy."""
        v = self.observed(metrics)
        if math.isnan(v):
            return math.nan
        scale = abs(self.value) or 1.0
        return abs(v - self.value) / scale


def observed(metrics: Mapping[str, object], metric: str) -> float:
    """A summary's number for ``metric``; NaN when it is missing or not a number."""
    v = metrics.get(metric)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)


def check_slo(slo: SLO, *, where: str = "--slo") -> SLO:
    """A known metric, and a positive number of seconds for a per-request latency."""
    if slo.per_request:  # positive and finite: checked when the SLO was made
        return slo
    known = run_metrics()
    if slo.metric not in known:
        raise UserError(
            f"{where}: unknown metric {slo.metric!r} in SLO '{slo}' (expected a per-request "
            f"latency, {', '.join(REQUEST_METRICS)}, or a run metric, {', '.join(known)})"
        )
    return slo


SLOInput = Iterable[str | SLO | Mapping[str, object]] | Mapping[str, float]


def _one(item: str | SLO | Mapping[str, object], where: str) -> SLO:
    if isinstance(item, SLO):
        return item
    if isinstance(item, Mapping):
        return SLO.checked(where, **{str(k): v for k, v in item.items()})
    return SLO.parse(item, where=where)


def parse_slos(items: SLOInput, *, where: str = "--slo") -> list[SLO]:
    """SLOs from ``METRIC<=VALUE`` strings, SLO objects or their dicts, or a {metric: upper
    bound} mapping; each checked (:func:`check_slo`)."""
    if isinstance(items, Mapping):
        out = [SLO.checked(where, metric=str(k), op="<=", value=v) for k, v in items.items()]
    else:
        out = [_one(s, where) for s in items]
    return [check_slo(s, where=where) for s in out]


def run_level(slos: Iterable[SLO]) -> list[SLO]:
    return [s for s in slos if not s.per_request]


def per_request(slos: Iterable[SLO]) -> list[SLO]:
    return [s for s in slos if s.per_request]


__all__ = [
    "GRAMMAR",
    "PERCENTILES",
    "REQUEST_METRICS",
    "SLO",
    "check_slo",
    "observed",
    "parse_slos",
    "per_request",
    "run_level",
    "run_metrics",
]
