"""Does the conclusion depend on the workload? Systems compared workload by workload.

From the one points table (results.py), or a sweep's capacity table: the rows are split
into *systems* by one configuration column (``by``: engine, model, gpu, kv_blocks, ...)
and into *scenarios* by every other configuration column that varies (a rate, an offline
N, a KV size when comparing GPUs); configuration columns that are a property of the
system (one value per system, e.g. the KV blocks a GPU resolved) are neither. In each
scenario and workload each system gets its metric (the mean over seeds), an interval
(across seeds when several ran, analysis.seeds; else the run's own, analysis.intervals),
a rank, and its ratio to a baseline system. A **rank reversal** is a pair of systems A, B
and a pair of workloads where A is better on one and B on the other. It is **beyond
noise** when on both workloads the two systems' intervals do not overlap (a conservative
test: non-overlapping 95% intervals mean a difference significant at well below 5%;
Schenker & Gentleman 2001, The American Statistician 55(3)); otherwise it is flagged as
within noise, or as unknown when there are no intervals.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workload_eval.analysis.intervals import CONFIDENCE_LEVEL, mean_interval
from workload_eval.errors import UserError
from workload_eval.results import configuration_names

# A metric is better when lower if its name (without steady.) starts with one of these.
LOWER_IS_BETTER = (
    "ttft",
    "tpot",
    "itl",
    "e2e_latency",
    "normalized_latency",
    "send_lag",
    "preemptions",
    "num_failed",
    "duration_s",
)
SCENARIO = "scenario"


def lower_is_better(metric: str) -> bool:
    return metric.removeprefix("steady.").startswith(LOWER_IS_BETTER)


@dataclass
class Comparison:
    """The tables of one comparison (every one also written as CSV and JSON)."""

    by: str
    metric: str
    higher_is_better: bool
    baseline: str
    level: float
    systems: list[str]
    workloads: list[str]
    system_columns: list[str]  # configuration columns that belong to the system
    scenario_columns: list[str]  # configuration columns that split the comparison
    values: pd.DataFrame  # scenario, workload, system, value, ci_low, ci_high, ...
    pairs: pd.DataFrame  # scenario, workload, system_a, system_b, ratio, a_better, ...
    reversals: pd.DataFrame  # scenario, system_a, system_b, a_wins_on, b_wins_on, ...
    scenarios: dict[str, dict[str, object]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # the points kept (--where)

    @property
    def beyond_noise(self) -> pd.DataFrame:
        if self.reversals.empty:
            return self.reversals
        return self.reversals[self.reversals["noise"] == "beyond noise"]


def label(value: object) -> str:
    """A system's or a setting's name: integral floats as integers (kv_blocks 643.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def _filter(table: pd.DataFrame, where: Mapping[str, str]) -> pd.DataFrame:
    for column, wanted in where.items():
        if column not in table:
            raise UserError(f"--where {column}={wanted}: no column {column!r} in the results")
        table = table[table[column].map(label) == wanted]
    return table


def _intervals(group: pd.DataFrame, metric: str, level: float) -> tuple[float, float, str]:
    values = pd.to_numeric(group[metric], errors="coerce").to_numpy(dtype=float)
    if len(values) > 1:
        ci = mean_interval(values, level=level)
        return (ci.low, ci.high, "seeds") if ci else (math.nan, math.nan, "")
    # one run: its own interval; a capacity search at a confidence: met .. violated
    for low, high, source in (
        (f"{metric}_ci_low", f"{metric}_ci_high", "run"),
        ("capacity_low", "capacity_high", "search"),
    ):
        if source == "search" and not (
            metric.startswith("capacity")
            and "confidence" in group
            and group["confidence"].notna().all()
        ):
            continue
        if low in group and high in group:
            lo, hi = (float(pd.to_numeric(group[c], errors="coerce").iloc[0]) for c in (low, high))
            if math.isfinite(lo) and math.isfinite(hi):
                return lo, hi, source
    return math.nan, math.nan, ""


def _split_columns(table: pd.DataFrame, by: str) -> tuple[list[str], list[str]]:
    """(system columns, scenario columns) among the configuration columns that vary."""
    varying = [
        c
        for c in configuration_names(table)
        if c not in (by, "workload", "seed") and table[c].map(label).nunique() > 1
    ]
    systems = table[by].map(label)
    system = [c for c in varying if table[c].map(label).groupby(systems).nunique().max() == 1]
    return system, [c for c in varying if c not in system]


def compare(
    table: pd.DataFrame,
    by: str,
    metric: str,
    *,
    higher_is_better: bool | None = None,
    baseline: str | None = None,
    where: Mapping[str, str] | None = None,
    level: float = CONFIDENCE_LEVEL,
) -> Comparison:
    """Compare the systems named by column ``by`` on ``metric``, workload by workload."""
    table = _filter(table, where or {})
    known = configuration_names(table)
    if by not in table.columns or by in ("workload", "seed"):
        raise UserError(
            f"--by {by}: not a configuration column to compare by (expected one of "
            f"{', '.join(c for c in known if c not in ('workload', 'seed'))})"
        )
    if metric not in table.columns:
        raise UserError(f"--metric {metric}: no such metric in the results")
    if not pd.api.types.is_numeric_dtype(pd.to_numeric(table[metric], errors="coerce")):
        raise UserError(f"--metric {metric}: not a number")
    table = table[pd.to_numeric(table[metric], errors="coerce").notna()]
    systems = sorted(table[by].map(label).unique(), key=_natural)
    workloads = sorted(table["workload"].map(label).unique())
    if len(systems) < 2:
        raise UserError(
            f"--by {by}: the results have {len(systems)} value(s) of {by} with a {metric} "
            f"({', '.join(systems) or 'none'}): nothing to compare"
        )
    if baseline is not None and baseline not in systems:
        raise UserError(f"--baseline {baseline}: not one of the systems ({', '.join(systems)})")
    base = baseline or systems[0]
    better_high = not lower_is_better(metric) if higher_is_better is None else higher_is_better
    system_cols, scenario_cols = _split_columns(table, by)

    rows, scenarios = [], {}
    keyed = table.assign(_system=table[by].map(label), _workload=table["workload"].map(label))
    for name, scenario in _scenarios(keyed, scenario_cols):
        scenarios[name] = scenario
        inside = np.ones(len(keyed), dtype=bool)
        for column, value in scenario.items():
            inside &= (keyed[column].map(label) == value).to_numpy()
        part = keyed[inside]
        for (workload, system), g in part.groupby(["_workload", "_system"], sort=True):
            low, high, source = _intervals(g, metric, level)
            value = float(pd.to_numeric(g[metric], errors="coerce").mean())
            rows.append(
                {
                    SCENARIO: name,
                    "workload": workload,
                    "system": system,
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                    "interval": source,
                    "runs": len(g),
                }
            )
    values = pd.DataFrame(rows)
    values = _ranks(values, better_high, base)
    pairs = _pairs(values, systems, better_high)
    reversals = _reversals(pairs)
    return Comparison(
        by=by,
        metric=metric,
        higher_is_better=better_high,
        baseline=base,
        level=level,
        systems=systems,
        workloads=workloads,
        system_columns=system_cols,
        scenario_columns=scenario_cols,
        values=values,
        pairs=pairs,
        reversals=reversals,
        scenarios=scenarios,
        where=dict(where or {}),
    )


def _natural(text: str) -> tuple:
    """Numbers in numeric order (150 before 1000), text alphabetically."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _scenarios(table: pd.DataFrame, columns: Sequence[str]):
    if not columns:
        yield "all", {}
        return
    combos = table[list(columns)].map(label).drop_duplicates()
    combos = combos.sort_values(list(columns), key=lambda s: s.map(_natural), kind="stable")
    for combo in combos.to_dict("records"):
        name = ", ".join(f"{c}={v}" for c, v in combo.items() if v != "-")  # set ones only
        yield name or "all", combo


def _ranks(values: pd.DataFrame, better_high: bool, base: str) -> pd.DataFrame:
    if values.empty:
        return values
    groups = values.groupby([SCENARIO, "workload"])
    values["rank"] = groups["value"].rank(ascending=not better_high, method="min").astype(int)
    best = groups["value"].transform("max" if better_high else "min")
    values["ratio_to_best"] = values["value"] / best
    base_value = values["value"].where(values["system"] == base)
    values["ratio_to_baseline"] = values["value"] / base_value.groupby(
        [values[SCENARIO], values["workload"]]
    ).transform("max")
    return values


def _separated(a: pd.Series, b: pd.Series) -> bool | None:
    """Whether two systems' intervals do not overlap (None: one has no interval)."""
    if not all(np.isfinite(x) for x in (a.ci_low, a.ci_high, b.ci_low, b.ci_high)):
        return None
    return bool(a.ci_high < b.ci_low or b.ci_high < a.ci_low)


def _pairs(values: pd.DataFrame, systems: list[str], better_high: bool) -> pd.DataFrame:
    rows = []
    for (scenario, workload), g in values.groupby([SCENARIO, "workload"], sort=False):
        by_system = {r.system: r for r in g.itertuples()}
        for a, b in itertools.combinations(systems, 2):
            if a not in by_system or b not in by_system:
                continue
            ra, rb = by_system[a], by_system[b]
            if ra.value == rb.value:
                winner = ""
            else:
                winner = a if (ra.value > rb.value) == better_high else b
            rows.append(
                {
                    SCENARIO: scenario,
                    "workload": workload,
                    "system_a": a,
                    "system_b": b,
                    "value_a": ra.value,
                    "value_b": rb.value,
                    "ratio": ra.value / rb.value if rb.value else math.nan,
                    "better": winner,
                    "separated": _separated(ra, rb),
                }
            )
    return pd.DataFrame(rows)


def _reversals(pairs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    if pairs.empty:
        return pd.DataFrame()
    for (scenario, a, b), g in pairs.groupby([SCENARIO, "system_a", "system_b"], sort=False):
        decided = [r for r in g.itertuples() if r.better]
        for r1, r2 in itertools.combinations(decided, 2):
            if r1.better == r2.better:
                continue
            first, second = (r1, r2) if r1.better == a else (r2, r1)
            seps = (first.separated, second.separated)
            if None in seps:
                noise = "no interval"
            elif all(seps):
                noise = "beyond noise"
            else:
                noise = "within noise"
            rows.append(
                {
                    SCENARIO: scenario,
                    "system_a": a,
                    "system_b": b,
                    "a_wins_on": first.workload,  # where A is better ...
                    "a_value_1": first.value_a,
                    "b_value_1": first.value_b,
                    "b_wins_on": second.workload,  # ... and where B is
                    "a_value_2": second.value_a,
                    "b_value_2": second.value_b,
                    "noise": noise,
                }
            )
    return pd.DataFrame(rows)


__all__ = ["Comparison", "compare", "label", "lower_is_better"]
