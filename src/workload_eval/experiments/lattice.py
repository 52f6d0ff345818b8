"""The paper's capacity rule on its rate grid, extended by the grid's step when needed.

The paper probed a grid of rates around each knee (e.g. 27, 27.5, ..., 31 req/s) and took
the rate just below the first two consecutive violations (``paper.max_rate_under_slo``).
Another engine's knee can lie outside that grid; the grid is then extended on its lattice
(the same step) instead of stopping at "below the grid" or "above it":

- inside the paper's grid, every rate is probed upward from its lowest, as the paper did;
- past its top, the lattice is searched by doubling steps, then bisection, to the first
  violating rate; below its bottom (the lowest rate already violates), by doubling steps
  downward to a passing rate, then bisection;
- from the highest passing rate below that violation, every lattice rate is probed upward
  until two consecutive ones violate: the paper's rule decides on that contiguous walk.

Rates skipped by the doubling and bisection lie between two passing rates or below the
first passing one, and are taken to pass (latency grows with load there). The plan is a
pure function of the verdicts so far, so a resumed sweep proposes the same rates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workload_eval.errors import UserError
from workload_eval.experiments.capacity_search import CapacitySearch, nice_rate
from workload_eval.paper import max_rate_under_slo
from workload_eval.slo import SLO


@dataclass(frozen=True)
class Plan:
    probe: int | None  # the next lattice index to run; None: done
    answer: int | None  # lattice index of the capacity once done (None: below the lattice)
    limit: bool = False  # stopped at the lattice's ends: the answer is a bound


class ExtendedGridSearch(CapacitySearch):
    """``seed-grid`` with ``extend``: the paper's rule on its grid's lattice (see module)."""

    rule = "seed-grid"

    def __init__(
        self, slos: Sequence[SLO], *, rates: Sequence[float], max_rate: float = 1e4, **kw: Any
    ) -> None:
        super().__init__(slos, **kw)
        grid = sorted({nice_rate(float(r)) for r in rates})
        if len(grid) < 2:
            raise UserError("capacity: an extended seed-grid needs at least 2 rates (--rates a,b)")
        self.base = grid[0]
        self.step = min(b - a for a, b in itertools.pairwise(grid))
        self.top = self._index(grid[-1])  # the grid is indices 0 .. top (gaps are probed)
        self.lowest = -math.floor((self.base - 1e-9) / self.step)  # lowest index with rate > 0
        if self._rate(self.lowest) <= 0:
            self.lowest += 1
        self.highest = self._index(max(max_rate, grid[-1]))

    def _rate(self, i: int) -> float:
        return nice_rate(self.base + i * self.step)

    def _index(self, rate: float) -> int:
        return round((rate - self.base) / self.step)

    def _seen(self) -> dict[int, bool]:
        return {self._index(r): v.met for r, v in self._verdicts.items()}

    def plan(self) -> Plan:
        v = self._seen()
        if 0 not in v:
            return Plan(0, None)
        if v[0]:
            top_pass = 0  # the contiguous run of passes from the grid's bottom, in the grid
            while top_pass < self.top and top_pass + 1 in v and v[top_pass + 1]:
                top_pass += 1
            if top_pass + 1 in v and not v[top_pass + 1]:
                return self._walk(v, top_pass)
            if top_pass + 1 <= self.top:
                return Plan(top_pass + 1, None)
            return self._above(v, top_pass)
        return self._below(v)

    def _above(self, v: dict[int, bool], last: int) -> Plan:
        """Past the grid's top: double the step while passing, then bisect to a violation."""
        fails = [i for i, ok in v.items() if i > last and not ok]
        if not fails:
            far = max([i for i in v if i > last], default=last)
            nxt = far + max(1, far - last)
            if nxt > self.highest:
                return Plan(None, far, limit=True)
            return Plan(nxt, None)
        fail = min(fails)
        lo = max(i for i, ok in v.items() if ok and i < fail)
        if fail - lo > 1:
            return Plan((lo + fail) // 2, None)
        return self._walk(v, lo)

    def _below(self, v: dict[int, bool]) -> Plan:
        """The grid's bottom violates: double the step downward to a pass, then bisect."""
        fail = min(i for i, ok in v.items() if not ok)
        passes = [i for i, ok in v.items() if ok and i < fail]
        if not passes:
            if fail <= self.lowest:
                return Plan(None, None, limit=True)
            return Plan(max(self.lowest, -max(1, 2 * -fail)), None)
        lo = max(passes)
        if fail - lo > 1:
            return Plan((lo + fail) // 2, None)
        return self._walk(v, lo)

    def _walk(self, v: dict[int, bool], start: int) -> Plan:
        """From a pass whose next lattice rate violates: upward until two violate in a row."""
        i = start + 1
        while i in v:
            if not v[i] and i - 1 > start and not v[i - 1]:
                return Plan(None, self._decide(v, i))
            i += 1
        if i > self.highest:
            return Plan(None, self._decide(v, i - 1), limit=True)
        return Plan(i, None)

    def _decide(self, v: dict[int, bool], end: int) -> int | None:
        """The paper's rule over every verdict up to the walk's end (all passes below it)."""
        seen = sorted(i for i in v if i <= end)
        ans = max_rate_under_slo([self._rate(i) for i in seen], [v[i] for i in seen]).rate
        return None if ans is None else self._index(ans)

    # -- CapacitySearch ----------------------------------------------------------------
    def _next_rate(self) -> float | None:
        nxt = self.plan().probe
        return None if nxt is None else self._rate(nxt)

    def answer(self) -> float:
        p = self.plan()
        if p.probe is None:
            return self._rate(p.answer) if p.answer is not None else 0.0
        ans = max_rate_under_slo(
            list(self._verdicts), [v.met for v in self._verdicts.values()]
        ).rate
        return ans if ans is not None else 0.0

    def answer_high(self) -> float | None:
        """The lowest probed rate above the answer violated at the confidence (without
        one: the first failure above it)."""
        edge = "possible" if self.confidence is not None else "met"
        low = self.answer()
        above = [r for r in self._verdicts if r > low and not self.passed(r, edge)]
        return min(above, default=None)

    def _bounds(self) -> tuple[float | None, float | None, bool]:
        p = self.plan()
        lower = self._rate(p.answer) if p.answer is not None else None
        above = [r for r, v in self._verdicts.items() if not v.met and (lower is None or r > lower)]
        return lower, min(above, default=None), p.limit or p.answer is None
