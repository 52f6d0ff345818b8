"""Capacity from a points table (the seed's rule), for results that stored no capacity table.

The points table itself is built in one place, :mod:`workload_eval.results`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workload_eval.results import online_points


def seed_rule_capacity(rates: np.ndarray, values: np.ndarray, slo: float) -> float:
    """The seed's rule: the highest rate r whose next two higher rates both violate the SLO.

    With no two consecutive violations, the highest passing rate; 0 when nothing passes.
    """
    order = np.argsort(rates)
    r, v = np.asarray(rates, float)[order], np.asarray(values, float)[order]
    ok = v <= slo
    for i in range(len(r) - 1):
        if not ok[i] and not ok[i + 1]:
            passing = r[:i][ok[:i]]
            return float(passing.max()) if len(passing) else 0.0
    return float(r[ok].max()) if ok.any() else 0.0


def capacity_table(
    points: pd.DataFrame,
    *,
    metric: str = "normalized_latency_p95",
    slo: float = 0.1875,
    min_rates: int = 2,
) -> pd.DataFrame:
    """Max request rate under the SLO per (engine, model, gpu, kv_blocks, workload).

    Repeated seeds at one rate are averaged before the rule is applied; configurations
    probed at fewer than ``min_rates`` rates say too little to name a capacity.
    """
    cols = [
        "engine",
        "model",
        "gpu",
        "kv_blocks",
        "workload",
        "max_rate",
        "probes",
        "metric",
        "slo",
    ]
    online = online_points(points)
    if online.empty or metric not in online:
        return pd.DataFrame(columns=cols)
    keys = ["engine", "model", "gpu", "kv_blocks", "workload"]
    rows = []
    grouped = online.assign(**{k: online[k].fillna("") for k in keys if k != "kv_blocks"})
    for key, g in grouped.groupby(keys, dropna=False, sort=True):
        per_rate = g.groupby("rate")[metric].mean()
        if len(per_rate) < min_rates:
            continue
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "max_rate": seed_rule_capacity(per_rate.index.to_numpy(), per_rate.to_numpy(), slo),
                "probes": len(per_rate),
                "metric": metric,
                "slo": slo,
            }
        )
    return pd.DataFrame(rows, columns=cols)
