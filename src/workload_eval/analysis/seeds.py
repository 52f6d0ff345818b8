"""Intervals across seeds: one row per configuration run under several seeds.

Each seed is an independent replication (its own arrival times, workload sample and
engine sampling), so the spread of a metric over seeds is the honest spread of the whole
measurement, and the Student-t interval of its mean over ``n`` seeds (``n - 1`` degrees
of freedom, analysis.intervals.mean_interval) is the textbook interval for independent
replications (Law, *Simulation Modeling and Analysis*, section 9.4.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workload_eval.analysis.intervals import CONFIDENCE_LEVEL, mean_interval
from workload_eval.results import CONFIG_COLUMNS, CONFIG_KEY, METRIC_COLUMNS
from workload_eval.slo import run_metrics

SEED_SUFFIXES = ("_seed_sd", "_seed_ci_low", "_seed_ci_high")


def seed_metrics(table: pd.DataFrame) -> list[str]:
    """The numeric metrics of a points table that get an across-seed interval."""
    wanted = dict.fromkeys([*METRIC_COLUMNS, *run_metrics()])
    return [m for m in wanted if m in table.columns and pd.api.types.is_numeric_dtype(table[m])]


def across_seeds(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    level: float = CONFIDENCE_LEVEL,
    min_seeds: int = 2,
) -> pd.DataFrame:
    """Per configuration (``config_key``) with at least ``min_seeds`` seeds: its
    configuration columns, ``num_seeds``, ``seeds`` and, per metric, the mean over seeds,
    ``<m>_seed_sd``, ``<m>_seed_ci_low`` and ``<m>_seed_ci_high``."""
    if table.empty or CONFIG_KEY not in table:
        return pd.DataFrame()
    names = list(metrics) if metrics is not None else seed_metrics(table)
    config = [c for c in CONFIG_COLUMNS if c != "seed" and c in table.columns]
    rows = []
    for key, group in table.groupby(CONFIG_KEY, sort=True):
        if group["seed"].nunique() < min_seeds:
            continue
        row: dict[str, object] = {CONFIG_KEY: key, **group.iloc[0][config].to_dict()}
        row["num_seeds"] = int(group["seed"].nunique())
        row["seeds"] = ",".join(str(int(s)) for s in sorted(group["seed"].unique()))
        for m in names:
            values = pd.to_numeric(group[m], errors="coerce").to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            ci = mean_interval(finite, level=level)
            row[m] = float(finite.mean()) if len(finite) else None
            row[f"{m}_seed_sd"] = float(finite.std(ddof=1)) if len(finite) > 1 else None
            row[f"{m}_seed_ci_low"] = ci.low if ci else None
            row[f"{m}_seed_ci_high"] = ci.high if ci else None
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["SEED_SUFFIXES", "across_seeds", "seed_metrics"]
