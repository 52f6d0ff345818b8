"""SLO capacity: the highest request rate whose runs meet every SLO.

A search is a small object that proposes the next (rate, seed) pairs from the results
recorded so far (GuideLLM's adaptive-profile idea), so the same search drives a plain
loop over any ``evaluate(rate, seed) -> metrics`` callable, or a parallel sweep.
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
from workload_eval.paper import SLO_TEXT, RuleAnswer, max_rate_under_slo
from workload_eval.slo import SLO, observed, run_level

Evaluator = Callable[[float, int], Mapping[str, Any]]
Aggregate = Literal["majority", "mean", "all"]


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
        check_objectives(slos, where="capacity")
        if not seeds:
            raise UserError("capacity: at least one seed is needed")
        self.slos = list(slos)
        self.objectives = run_level(self.slos)  # what a run is judged by
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
        return all(s.met(metrics) for s in self.objectives)

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
            for s in self.objectives:
                margin = s.margin(m)
                if not math.isnan(margin) and margin < band:
                    return True
        return False

    def _verdict(self, rate: float) -> bool:
        runs = list(self._runs[rate].values())
        if self.aggregate == "mean":
            return self.passes(_mean_metrics(runs, [s.metric for s in self.objectives]))
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
            means = _mean_metrics(runs, [s.metric for s in self.objectives])
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
        vals = [observed(m, name) for m in runs]
        out[name] = float(np.mean(vals)) if vals else math.nan
    return out
