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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from workload_eval.errors import UserError
from workload_eval.experiments.capacity_search import (
    CapacityResult,
    CapacitySearch,
    check_objectives,
    nice_rate,
)
from workload_eval.experiments.verdicts import Aggregate
from workload_eval.paper import RuleAnswer, max_rate_under_slo
from workload_eval.slo import SLO

Evaluator = Callable[[float, int], Mapping[str, Any]]


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
            if lo >= self.max_rate or nice_rate(nxt) in self._verdicts:
                self._hit_limit[edge] = True
                return None
            return nxt
        if lo is None:
            nxt = max(hi / self.factor, self.min_rate)
            nxt = float(math.ceil(nxt)) if self.integer else nxt
            if hi <= self.min_rate or nice_rate(nxt) in self._verdicts:  # at the floor
                self._hit_limit[edge] = True
                return None
            return nxt
        if self.integer:
            mid = float((lo + hi) // 2)
            return None if mid in (lo, hi) else mid
        if hi - lo <= self.tolerance * hi:
            return None
        mid = nice_rate((lo + hi) / 2)
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
        grid = sorted({nice_rate(float(r)) for r in rates})
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


__all__ = [
    "BisectSearch",
    "CapacityResult",
    "CapacitySearch",
    "Evaluator",
    "SeedGridSearch",
    "check_objectives",
    "find_capacity",
    "make_search",
]
