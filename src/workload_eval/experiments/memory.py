"""Memory studies: throughput and capacity versus KV-cache size, and the scaling ratio.

The paper's finding to check: about 2.3x offline throughput for 4x the KV blocks.
Both functions read the sweep's tables (index, capacity), never re-run anything.
"""

from __future__ import annotations

import pandas as pd

# What identifies a configuration apart from its KV size (points-table columns, results.py).
CONFIG_COLUMNS = ("engine", "policy", "model", "gpu", "block_size", "workload")
KV = "kv_blocks"  # what the engine really had (the points table's resolved value)


def _keys(df: pd.DataFrame) -> list[str]:
    return [c for c in CONFIG_COLUMNS if c in df.columns]


def memory_table(
    index: pd.DataFrame,
    capacity: pd.DataFrame | None = None,
    *,
    num_requests: int | None = None,
) -> pd.DataFrame:
    """Per configuration and KV size: offline throughput (the largest offline N, or
    ``num_requests``) and, when a capacity table is given, the max rate under the SLO."""
    idx = index
    offline = idx[idx["schedule"] == "offline"] if "schedule" in idx else idx[:0]
    keys = _keys(idx)
    if num_requests is not None:
        offline = offline[offline["num_requests"] == num_requests]
    elif not offline.empty:
        biggest = offline.groupby(keys, dropna=False)["num_requests"].transform("max")
        offline = offline[offline["num_requests"] == biggest]
    metrics = ["request_throughput", "token_throughput"]
    table = (
        offline.groupby([*keys, KV], dropna=False)[metrics].mean().reset_index()
        if not offline.empty
        else pd.DataFrame(columns=[*keys, KV, *metrics])
    )
    if capacity is not None and not capacity.empty and "capacity_rate" in capacity:
        cap = capacity
        ckeys = [k for k in keys if k in cap.columns]
        cap = cap.groupby([*ckeys, KV], dropna=False)["capacity_rate"].mean().reset_index()
        table = table.merge(cap, on=[*ckeys, KV], how="left") if len(table) else cap
    return table.sort_values([*keys, KV], kind="stable").reset_index(drop=True)


def scaling_table(memory: pd.DataFrame) -> pd.DataFrame:
    """Per configuration with 2+ KV sizes: value at the largest KV size over the smallest
    (the paper's 2.3x offline throughput for 4x the blocks)."""
    keys = _keys(memory)
    rows = []
    for cfg, g in memory.dropna(subset=[KV]).groupby(keys, dropna=False, sort=True):
        g = g.sort_values(KV)
        if g[KV].nunique() < 2:
            continue
        lo, hi = g.iloc[0], g.iloc[-1]
        row = dict(zip(keys, cfg if isinstance(cfg, tuple) else (cfg,), strict=True))
        row.update(kv_min=lo[KV], kv_max=hi[KV], kv_ratio=hi[KV] / lo[KV])
        for m in ("request_throughput", "token_throughput", "capacity_rate"):
            if m in g:
                a, b = lo[m], hi[m]
                row[f"{m}_min"], row[f"{m}_max"] = a, b
                row[f"{m}_ratio"] = b / a if pd.notna(a) and pd.notna(b) and a else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
