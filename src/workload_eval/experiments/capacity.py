"""SLO capacity: the highest request rate whose runs meet every SLO.

A search is a small object that proposes the next (rate, seed) pairs from the results
recorded so far (GuideLLM's adaptive-profile idea), so the same search drives a plain
loop over any ``evaluate(rate, seed) -> metrics`` callable, or a parallel sweep.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from workload_eval.errors import UserError
from workload_eval.paper import SLO_TEXT, RuleAnswer, max_rate_under_slo

Evaluator = Callable[[float, int], Mapping[str, Any]]
Aggregate = Literal["majority", "mean", "all"]

_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?"
_SLO_RE = re.compile(rf"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*({_NUMBER})\s*$")
# Metrics measured in seconds: positive for any run that completed a request.
_TIME_METRICS = ("ttft", "tpot", "itl", "e2e_latency", "normalized_latency", "duration_s")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


class SLO(BaseModel):
    """One objective on a run's summary metric, e.g. ``normalized_latency_p95<=0.1875``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    op: Literal["<=", "<", ">=", ">"] = "<="
    value: float

    @model_validator(mode="after")
    def _decides_something(self) -> SLO:
        """A bound that no run can meet (or every run meets) would make the capacity 0
        (or the search's limit) silently: refuse it."""
        v, op = self.value, self.op
        text = f"{self.metric}{op}{v!r}"
        if not math.isfinite(v):
            raise ValueError(f"SLO {text}: the bound must be a finite number")
        time_like = self.metric.startswith(_TIME_METRICS)
        if (op == "<=" and v < 0) or (op == "<" and v <= 0):
            raise ValueError(f"SLO {text} can never hold: {self.metric} is never negative")
        if op == "<=" and v == 0 and time_like:
            raise ValueError(f"SLO {text} can never hold: {self.metric} is a positive time")
        if (op == ">=" and v <= 0) or (op == ">" and v < 0):
            raise ValueError(f"SLO {text} always holds: {self.metric} is never negative")
        if self.metric == "slo_attainment" and v > 1:
            raise ValueError(f"SLO {text}: slo_attainment is a fraction from 0 to 1")
        return self

    @classmethod
    def parse(cls, text: str, *, where: str = "--slo") -> SLO:
        m = _SLO_RE.match(str(text))
        if m is None:
            raise UserError(
                f"{where}: cannot parse SLO {text!r} (expected METRIC<=VALUE, "
                f"e.g. {SLO_TEXT}; operators <=, <, >=, >)"
            )
        try:
            return cls(metric=m.group(1), op=m.group(2), value=float(m.group(3)))  # type: ignore[arg-type]
        except ValidationError as e:
            msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
            raise UserError(f"{where}: {msg}") from None

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def observed(self, metrics: Mapping[str, Any]) -> float:
        return _observed(metrics, self.metric)

    def met(self, metrics: Mapping[str, Any]) -> bool:
        """A missing or NaN metric (e.g. nothing completed) counts as a violation."""
        v = self.observed(metrics)
        return not math.isnan(v) and _OPS[self.op](v, self.value)

    def margin(self, metrics: Mapping[str, Any]) -> float:
        """Relative distance to the threshold (NaN when unknown); small means noisy."""
        v = self.observed(metrics)
        if math.isnan(v):
            return math.nan
        scale = abs(self.value) or 1.0
        return abs(v - self.value) / scale


def _observed(metrics: Mapping[str, Any], name: str) -> float:
    v = metrics.get(name)
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def parse_slos(
    items: Iterable[str | SLO] | Mapping[str, float], *, where: str = "--slo"
) -> list[SLO]:
    """SLOs from strings (``metric<=v``), SLO objects, or a {metric: max} mapping."""
    if isinstance(items, Mapping):
        return [SLO.parse(f"{k}<={float(v)!r}", where=where) for k, v in items.items()]
    return [s if isinstance(s, SLO) else SLO.parse(s, where=where) for s in items]


def summary_metrics() -> list[str]:
    """Scalar keys of a run's summary.json that an SLO may bound (metrics.summarize)."""
    from workload_eval.metrics import PERCENTILES

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
    for prefix in ("ttft", "tpot", "itl", "e2e_latency", "send_lag"):
        names += [f"{prefix}_mean", *(f"{prefix}_p{p}" for p in PERCENTILES)]
    return names


def check_metrics(slos: Iterable[SLO], *, where: str = "--slo") -> None:
    """Reject SLOs on metrics a run summary does not have (a typo would never pass)."""
    known = summary_metrics()
    for s in slos:
        if s.metric not in known:
            raise UserError(
                f"{where}: unknown metric {s.metric!r} in SLO '{s}' (expected one of "
                f"{', '.join(known)})"
            )


def _nice(rate: float) -> float:
    """Round proposed rates to 6 significant digits so stored keys and tables read well."""
    return float(f"{rate:.6g}")


@dataclass
class CapacityResult:
    """The answer plus every probe, so a plot or a reviewer can check the search."""

    rate: float
    rule: str
    slos: list[SLO]
    probes: pd.DataFrame  # one row per (rate, seed) run: rate, seed, passed, metrics...
    rates: pd.DataFrame  # one row per probed rate: rate, passed, seeds, mean metrics
    lower: float | None = None  # highest rate known to pass
    upper: float | None = None  # lowest rate known to fail above `lower`
    censored: bool = False  # the answer hit the search's limit (grid end, max rate)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_runs(self) -> int:
        return len(self.probes)

    def as_row(self) -> dict[str, Any]:
        return {
            "capacity_rate": self.rate,
            "rule": self.rule,
            "slos": ";".join(str(s) for s in self.slos),
            "lower": self.lower,
            "upper": self.upper,
            "censored": self.censored,
            "num_rates": len(self.rates),
            "num_runs": self.num_runs,
            **self.extra,
        }


class CapacitySearch(ABC):
    """Proposes rates until it knows the answer; repeats seeds where a verdict is noisy.

    With several seeds, the first seed runs alone and the others run only when some SLO
    metric lands within ``repeat_band`` (relative) of its threshold; ``repeat_band=None``
    always runs every seed. ``aggregate`` turns the seeds' runs into one verdict.
    """

    rule: str = ""

    def __init__(
        self,
        slos: Sequence[SLO],
        *,
        seeds: Sequence[int] = (0,),
        aggregate: Aggregate = "majority",
        repeat_band: float | None = 0.1,
    ) -> None:
        if not slos:
            raise UserError("capacity: at least one SLO is needed (e.g. --slo 'ttft_p99<=2')")
        if not seeds:
            raise UserError("capacity: at least one seed is needed")
        self.slos = list(slos)
        self.seeds = list(dict.fromkeys(int(s) for s in seeds))
        self.aggregate: Aggregate = aggregate
        self.repeat_band = repeat_band
        self._runs: dict[float, dict[int, dict[str, Any]]] = {}
        self._order: list[float] = []  # rates in the order their verdicts were reached
        self._verdicts: dict[float, bool] = {}
        self._current: float | None = None
        self._done = False

    # -- what subclasses decide -------------------------------------------------------
    @abstractmethod
    def _next_rate(self) -> float | None:
        """The next rate to probe, or None when the answer is known."""

    @abstractmethod
    def _on_verdict(self, rate: float, passed: bool) -> None:
        """Update the search state with one rate's verdict."""

    @abstractmethod
    def answer(self) -> float:
        """The capacity given the verdicts so far."""

    def _bounds(self) -> tuple[float | None, float | None, bool]:
        return None, None, False

    # -- the protocol ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    def propose(self) -> list[tuple[float, int]]:
        """(rate, seed) pairs to run next; the same pairs again until they are recorded."""
        while not self._done:
            if self._current is None:
                nxt = self._next_rate()
                if nxt is None:
                    self._done = True
                    break
                self._current = _nice(nxt)
            missing = self._missing_seeds(self._current)
            if missing:
                return [(self._current, s) for s in missing]
            rate, self._current = self._current, None
            passed = self._verdict(rate)
            self._verdicts[rate] = passed
            self._order.append(rate)
            self._on_verdict(rate, passed)
        return []

    def record(self, rate: float, seed: int, metrics: Mapping[str, Any]) -> None:
        self._runs.setdefault(_nice(rate), {})[int(seed)] = dict(metrics)

    def passes(self, metrics: Mapping[str, Any]) -> bool:
        return all(s.met(metrics) for s in self.slos)

    def _missing_seeds(self, rate: float) -> list[int]:
        runs = self._runs.get(rate, {})
        if not runs:
            first_only = self.repeat_band is not None and len(self.seeds) > 1
            return [self.seeds[0]] if first_only else list(self.seeds)
        if self.repeat_band is not None and not self._noisy(runs):
            return []
        return [s for s in self.seeds if s not in runs]

    def _noisy(self, runs: Mapping[int, Mapping[str, Any]]) -> bool:
        band = self.repeat_band or 0.0
        for m in runs.values():
            for s in self.slos:
                margin = s.margin(m)
                if not math.isnan(margin) and margin < band:
                    return True
        return False

    def _verdict(self, rate: float) -> bool:
        runs = list(self._runs[rate].values())
        if self.aggregate == "mean":
            return self.passes(_mean_metrics(runs, [s.metric for s in self.slos]))
        ok = [self.passes(m) for m in runs]
        if self.aggregate == "all":
            return all(ok)
        return sum(ok) * 2 > len(ok)

    def result(self) -> CapacityResult:
        rows = []
        for rate, runs in self._runs.items():
            for seed, m in sorted(runs.items()):
                rows.append({"rate": rate, "seed": seed, "passed": self.passes(m), **_scalars(m)})
        probes = pd.DataFrame(rows)
        if not probes.empty:
            probes = probes.sort_values(["rate", "seed"], kind="stable").reset_index(drop=True)
        per_rate = []
        for rate in sorted(self._verdicts):
            runs = list(self._runs[rate].values())
            means = _mean_metrics(runs, [s.metric for s in self.slos])
            per_rate.append(
                {"rate": rate, "passed": self._verdicts[rate], "seeds": len(runs), **means}
            )
        lower, upper, censored = self._bounds()
        return CapacityResult(
            rate=self.answer(),
            rule=self.rule,
            slos=self.slos,
            probes=probes,
            rates=pd.DataFrame(per_rate),
            lower=lower,
            upper=upper,
            censored=censored,
        )


class BisectSearch(CapacitySearch):
    """Bracket by growing/shrinking ``start`` by ``factor``, then bisect to ``tolerance``.

    Stops when (upper - lower) <= tolerance * upper, so the answer (the highest rate seen
    to pass) is within ``tolerance`` (relative) below the true crossing for a monotone
    metric.
    """

    rule = "bisect"

    def __init__(
        self,
        slos: Sequence[SLO],
        *,
        tolerance: float = 0.02,
        start: float = 1.0,
        factor: float = 2.0,
        min_rate: float = 1e-3,
        max_rate: float = 1e4,
        **kw: Any,
    ) -> None:
        super().__init__(slos, **kw)
        if not 0 < tolerance < 1:
            raise UserError(f"capacity: tolerance must be in (0, 1), got {tolerance}")
        if start <= 0 or factor <= 1 or not 0 < min_rate < max_rate:
            raise UserError("capacity: need start > 0, factor > 1 and 0 < min_rate < max_rate")
        self.tolerance, self.start, self.factor = tolerance, start, factor
        self.min_rate, self.max_rate = min_rate, max_rate
        self.lower: float | None = None
        self.upper: float | None = None
        self._hit_limit = False

    def _next_rate(self) -> float | None:
        lo, hi = self.lower, self.upper
        if lo is None and hi is None:
            return min(max(self.start, self.min_rate), self.max_rate)
        if hi is None:
            assert lo is not None
            if lo >= self.max_rate:
                self._hit_limit = True
                return None
            return min(lo * self.factor, self.max_rate)
        if lo is None:
            if hi <= self.min_rate:
                self._hit_limit = True
                return None
            return max(hi / self.factor, self.min_rate)
        if hi - lo <= self.tolerance * hi:
            return None
        mid = _nice((lo + hi) / 2)
        return None if mid in (lo, hi) else mid

    def _on_verdict(self, rate: float, passed: bool) -> None:
        if passed:
            self.lower = rate if self.lower is None else max(self.lower, rate)
        else:
            self.upper = rate if self.upper is None else min(self.upper, rate)
        if self.lower is not None and self.upper is not None and self.upper <= self.lower:
            # Non-monotone noise: a lower rate failed above a pass; trust the failure.
            self.lower = max(
                (r for r, v in self._verdicts.items() if v and r < self.upper), default=None
            )

    def answer(self) -> float:
        return self.lower if self.lower is not None else 0.0

    def _bounds(self) -> tuple[float | None, float | None, bool]:
        return self.lower, self.upper, self._hit_limit


class SeedGridSearch(CapacitySearch):
    """The paper's rule (``paper.max_rate_under_slo``) on a fixed grid, probed upward and
    stopped once the rule has decided."""

    rule = "seed-grid"

    def __init__(self, slos: Sequence[SLO], *, rates: Sequence[float], **kw: Any) -> None:
        super().__init__(slos, **kw)
        grid = sorted({_nice(float(r)) for r in rates})
        if len(grid) < 3:
            raise UserError(
                "capacity: the seed-grid rule needs at least 3 rates (a rate and the two "
                "above it; --rates a,b,c)"
            )
        self.grid = grid
        self._i = 0

    def _rule(self) -> RuleAnswer:
        return max_rate_under_slo(self._order, [self._verdicts[r] for r in self._order])

    def _next_rate(self) -> float | None:
        if self._i >= len(self.grid) or self._rule().decided:
            return None
        rate = self.grid[self._i]
        self._i += 1
        return rate

    def _on_verdict(self, rate: float, passed: bool) -> None:
        pass  # the verdicts so far are the whole state: _rule() reads them

    def answer(self) -> float:
        rate = self._rule().rate
        return rate if rate is not None else 0.0

    def _bounds(self) -> tuple[float | None, float | None, bool]:
        ans = self._rule()
        return ans.rate, ans.upper, ans.censored


def make_search(
    slos: Sequence[SLO],
    *,
    rule: Literal["bisect", "seed-grid"] = "bisect",
    rates: Sequence[float] | None = None,
    tolerance: float = 0.02,
    start: float = 1.0,
    seeds: Sequence[int] = (0,),
    aggregate: Aggregate = "majority",
    repeat_band: float | None = 0.1,
    extend: bool = False,
    **kw: Any,
) -> CapacitySearch:
    """One constructor for the CLI and specs; ``rates`` seed the bisection's start.

    ``extend`` (seed-grid only): the grid is extended by its step where the answer lies
    outside it (``experiments.lattice``) instead of stopping at the grid's ends.
    """
    common: dict[str, Any] = {"seeds": seeds, "aggregate": aggregate, "repeat_band": repeat_band}
    if rule == "seed-grid":
        if not rates:
            raise UserError("capacity: --rule seed-grid needs --rates (e.g. 27,27.5,28,...)")
        if extend:
            from workload_eval.experiments.lattice import ExtendedGridSearch

            return ExtendedGridSearch(slos, rates=rates, max_rate=kw.get("max_rate", 1e4), **common)
        return SeedGridSearch(slos, rates=rates, **common)
    if rule != "bisect":
        raise UserError(f"capacity: unknown rule {rule!r} (expected bisect or seed-grid)")
    if rates:
        start = float(min(rates))
    return BisectSearch(slos, tolerance=tolerance, start=start, **common, **kw)


def find_capacity(
    evaluate: Evaluator, search: CapacitySearch, *, on_probe: Callable[..., None] | None = None
) -> CapacityResult:
    """Drive ``search`` with ``evaluate(rate, seed) -> metrics`` until it has an answer."""
    while pairs := search.propose():
        for rate, seed in pairs:
            metrics = evaluate(rate, seed)
            search.record(rate, seed, metrics)
            if on_probe is not None:
                on_probe(rate, seed, metrics, search.passes(metrics))
    return search.result()


def _scalars(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if isinstance(v, int | float | str | bool) or v is None}


def _mean_metrics(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in dict.fromkeys(names):
        vals = [_observed(m, name) for m in runs]
        out[name] = float(np.mean(vals)) if vals else math.nan
    return out
