"""SLO capacity: the highest request rate whose runs meet every SLO.

A search is a small object that proposes the next (rate, seed) pairs from the results
recorded so far (GuideLLM's adaptive-profile idea), so the same search drives a plain
loop over any ``evaluate(rate, seed) -> metrics`` callable, or a parallel sweep.

With a ``confidence`` a rate meets the SLOs only when every bound holds over its metric's
confidence interval (experiments.verdicts); the search then finds two edges, the highest
rate met at that confidence (the answer, ``low``) and the lowest rate violated at it
(``high``): the rate where the SLO really starts to fail lies in [low, high). Without a
confidence, [low, high) is the search's bracket (the last pass, the first failure).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.experiments.verdicts import Aggregate, Verdict, judge_run, judge_runs
from workload_eval.paper import SLO_TEXT, RuleAnswer, max_rate_under_slo
from workload_eval.slo import SLO, observed, run_level

Evaluator = Callable[[float, int], Mapping[str, Any]]


def check_objectives(slos: Sequence[SLO], *, where: str = "--slo") -> None:
    """A capacity needs a bound on the run (a per-request bound only defines goodput)."""
    if not run_level(slos):
        raise UserError(
            f"{where}: capacity needs a bound on a run metric, e.g. {SLO_TEXT} or "
            "slo_attainment>=0.9 (a per-request bound such as ttft<=0.5 only defines goodput "
            "and slo_attainment)"
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
    confidence: float | None = None  # the level verdicts were judged at (None: point values)
    high: float | None = None  # the lowest rate violated at that confidence (None: none)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_runs(self) -> int:
        return len(self.probes)

    def as_row(self) -> dict[str, Any]:
        return {
            "capacity_rate": self.rate,
            "capacity_low": self.rate,
            "capacity_high": self.high,
            "confidence": self.confidence,
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
        confidence: float | None = None,
    ) -> None:
        check_objectives(slos, where="capacity")
        if not seeds:
            raise UserError("capacity: at least one seed is needed")
        self.slos = list(slos)
        self.objectives = run_level(self.slos)  # what a run is judged by
        self.seeds = list(dict.fromkeys(int(s) for s in seeds))
        self.aggregate: Aggregate = aggregate
        self.repeat_band = repeat_band
        self.confidence = confidence
        self._runs: dict[float, dict[int, dict[str, Any]]] = {}
        self._order: list[float] = []  # rates in the order their verdicts were reached
        self._verdicts: dict[float, Verdict] = {}
        self._current: float | None = None
        self._done = False

    # -- what subclasses decide -------------------------------------------------------
    @abstractmethod
    def _next_rate(self) -> float | None:
        """The next rate to probe, or None when the answer is known."""

    @abstractmethod
    def answer(self) -> float:
        """The capacity given the verdicts so far."""

    def answer_high(self) -> float | None:
        """The top of the answer's interval: the lowest rate violated at the confidence
        (without one: the first failure above the answer); None when none was found."""
        return None

    def _bounds(self) -> tuple[float | None, float | None, bool]:
        return None, None, False

    def passed(self, rate: float, edge: str = "met") -> bool:
        """A judged rate's verdict: ``met`` (the answer's edge) or ``possible``."""
        return getattr(self._verdicts[rate], edge)

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
            self._verdicts[rate] = self._verdict(rate)
            self._order.append(rate)
        return []

    def record(self, rate: float, seed: int, metrics: Mapping[str, Any]) -> None:
        self._runs.setdefault(_nice(rate), {})[int(seed)] = dict(metrics)

    def judge(self, metrics: Mapping[str, Any]) -> Verdict:
        """One run against the objectives at the search's confidence."""
        return judge_run(metrics, self.objectives, self.confidence)

    def passes(self, metrics: Mapping[str, Any]) -> bool:
        return self.judge(metrics).met

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
            verdict = self.judge(m)
            if verdict.met != verdict.possible:  # undecided at the confidence
                return True
            for s in self.objectives:
                margin = s.margin(m)
                if not math.isnan(margin) and margin < band:
                    return True
        return False

    def _verdict(self, rate: float) -> Verdict:
        runs = list(self._runs[rate].values())
        return judge_runs(runs, self.objectives, self.confidence, self.aggregate)

    def result(self) -> CapacityResult:
        rows = []
        for rate, runs in self._runs.items():
            for seed, m in sorted(runs.items()):
                v = self.judge(m)
                rows.append(
                    {"rate": rate, "seed": seed, "passed": v.met, "possible": v.possible}
                    | _scalars(m)
                )
        probes = pd.DataFrame(rows)
        if not probes.empty:
            probes = probes.sort_values(["rate", "seed"], kind="stable").reset_index(drop=True)
        per_rate = []
        for rate in sorted(self._verdicts):
            runs = list(self._runs[rate].values())
            verdict = self._verdicts[rate]
            row = {
                "rate": rate,
                "passed": verdict.met,
                "possible": verdict.possible,
                "verdict": verdict.label,
                "seeds": len(runs),
                **_mean_metrics(runs, [s.metric for s in self.objectives]),
            }
            for name, (low, high) in verdict.intervals.items():
                if self.confidence is not None:
                    row[f"{name}_ci_low"], row[f"{name}_ci_high"] = low, high
            per_rate.append(row)
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
            confidence=self.confidence,
            high=self.answer_high(),
        )


class BisectSearch(CapacitySearch):
    """Bracket by growing/shrinking ``start`` by ``factor``, then bisect to ``tolerance``.

    Stops when (upper - lower) <= tolerance * upper, so the answer (the highest rate seen
    to pass) is within ``tolerance`` (relative) below the true crossing for a monotone
    metric. ``integer`` searches whole numbers (a closed loop's users) to the exact answer:
    it stops when the bracket's ends are adjacent.
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
        integer: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(slos, **kw)
        self.integer = integer
        if integer:
            start, min_rate, max_rate = max(1, round(start)), 1, max(1, math.floor(max_rate))
        if not 0 < tolerance < 1:
            raise UserError(f"capacity: tolerance must be in (0, 1), got {tolerance}")
        if start <= 0 or factor <= 1 or not 0 < min_rate < max_rate:
            raise UserError("capacity: need start > 0, factor > 1 and 0 < min_rate < max_rate")
        self.tolerance, self.start, self.factor = tolerance, start, factor
        self.min_rate, self.max_rate = min_rate, max_rate
        self._hit_limit: dict[str, bool] = {"met": False, "possible": False}

    def bracket(self, edge: str = "met") -> tuple[float | None, float | None]:
        """(highest passing rate below the lowest failing one, lowest failing rate) on one
        edge; a pass above a failure is noise: the failure is trusted."""
        fails = [r for r in self._verdicts if not self.passed(r, edge)]
        upper = min(fails, default=None)
        lower = max(
            (r for r in self._verdicts if self.passed(r, edge) and (upper is None or r < upper)),
            default=None,
        )
        return lower, upper

    def _next_on(self, edge: str) -> float | None:
        lo, hi = self.bracket(edge)
        if lo is None and hi is None:
            return min(max(self.start, self.min_rate), self.max_rate)
        if hi is None:
            assert lo is not None
            nxt = min(lo * self.factor, self.max_rate)
            nxt = float(math.floor(nxt)) if self.integer else nxt
            if lo >= self.max_rate or _nice(nxt) in self._verdicts:
                self._hit_limit[edge] = True
                return None
            return nxt
        if lo is None:
            nxt = max(hi / self.factor, self.min_rate)
            nxt = float(math.ceil(nxt)) if self.integer else nxt
            if hi <= self.min_rate or _nice(nxt) in self._verdicts:  # at the floor
                self._hit_limit[edge] = True
                return None
            return nxt
        if self.integer:
            mid = float((lo + hi) // 2)
            return None if mid in (lo, hi) else mid
        if hi - lo <= self.tolerance * hi:
            return None
        mid = _nice((lo + hi) / 2)
        return None if mid in (lo, hi) else mid

    def _next_rate(self) -> float | None:
        """The answer's edge first, then (with a confidence) the interval's top."""
        nxt = self._next_on("met")
        if nxt is None and self.confidence is not None:
            nxt = self._next_on("possible")
        return nxt

    @property
    def lower(self) -> float | None:
        return self.bracket()[0]

    @property
    def upper(self) -> float | None:
        return self.bracket()[1]

    def answer(self) -> float:
        return self.lower if self.lower is not None else 0.0

    def answer_high(self) -> float | None:
        return self.bracket("possible" if self.confidence is not None else "met")[1]

    def _bounds(self) -> tuple[float | None, float | None, bool]:
        return self.lower, self.upper, self._hit_limit["met"]


class SeedGridSearch(CapacitySearch):
    """The paper's rule (``paper.max_rate_under_slo``) on a fixed grid, probed upward and
    stopped once the rule has decided (with a confidence: on both edges)."""

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

    def _rule(self, edge: str = "met") -> RuleAnswer:
        return max_rate_under_slo(self._order, [self.passed(r, edge) for r in self._order])

    def _next_rate(self) -> float | None:
        decided = self._rule().decided
        if self.confidence is not None:
            decided = decided and self._rule("possible").decided
        if self._i >= len(self.grid) or decided:
            return None
        rate = self.grid[self._i]
        self._i += 1
        return rate

    def answer(self) -> float:
        rate = self._rule().rate
        return rate if rate is not None else 0.0

    def answer_high(self) -> float | None:
        return self._rule("possible" if self.confidence is not None else "met").upper

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
    confidence: float | None = None,
    extend: bool = False,
    **kw: Any,
) -> CapacitySearch:
    """One constructor for the CLI and specs; ``rates`` seed the bisection's start.

    ``extend`` (seed-grid only): the grid is extended by its step where the answer lies
    outside it (``experiments.lattice``) instead of stopping at the grid's ends.
    """
    common: dict[str, Any] = {
        "seeds": seeds,
        "aggregate": aggregate,
        "repeat_band": repeat_band,
        "confidence": confidence,
    }
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
        vals = [observed(m, name) for m in runs]
        out[name] = float(np.mean(vals)) if vals else math.nan
    return out
