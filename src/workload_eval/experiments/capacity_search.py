"""What every capacity search shares: its verdicts per rate, its noisy-rate repeats, and the
result it reports (CapacityResult); the rules that choose the rates are in ``capacity``."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.experiments.verdicts import Aggregate, Verdict, judge_run, judge_runs
from workload_eval.paper import SLO_TEXT
from workload_eval.slo import SLO, observed, run_level


def check_objectives(slos: Sequence[SLO], *, where: str = "--slo") -> None:
    """A capacity needs a bound on the run (a per-request bound only defines goodput)."""
    if not run_level(slos):
        raise UserError(
            f"{where}: capacity needs a bound on a run metric, e.g. {SLO_TEXT} or "
            "slo_attainment>=0.9 (a per-request bound such as ttft<=0.5 only defines goodput "
            "and slo_attainment)"
        )


def nice_rate(rate: float) -> float:
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
                self._current = nice_rate(nxt)
            missing = self._missing_seeds(self._current)
            if missing:
                return [(self._current, s) for s in missing]
            rate, self._current = self._current, None
            self._verdicts[rate] = self._verdict(rate)
            self._order.append(rate)
        return []

    def record(self, rate: float, seed: int, metrics: Mapping[str, Any]) -> None:
        self._runs.setdefault(nice_rate(rate), {})[int(seed)] = dict(metrics)

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


def _scalars(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if isinstance(v, int | float | str | bool) or v is None}


def _mean_metrics(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in dict.fromkeys(names):
        vals = [observed(m, name) for m in runs]
        out[name] = float(np.mean(vals)) if vals else math.nan
    return out
