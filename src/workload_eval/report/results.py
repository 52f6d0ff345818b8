"""Capacity from a points table (the paper's rule), for results that stored no capacity table.

The points table itself is built in one place, :mod:`workload_eval.results`.
"""

from __future__ import annotations

import pandas as pd

from workload_eval.paper import SLO_S_PER_TOKEN, max_rate_under_slo
from workload_eval.results import online_points


def capacity_table(
    points: pd.DataFrame,
    *,
    metric: str = "normalized_latency_p95",
    slo: float = SLO_S_PER_TOKEN,
    min_rates: int = 2,
) -> pd.DataFrame:
    """Max request rate under the SLO per (engine, model, gpu, kv_blocks, workload), by the
    paper's rule over the probed rates (0 when the lowest two already violate).

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
                "max_rate": max_rate_under_slo(per_rate.index, per_rate.to_numpy() <= slo).rate
                or 0.0,
                "probes": len(per_rate),
                "metric": metric,
                "slo": slo,
            }
        )
    return pd.DataFrame(rows, columns=cols)
