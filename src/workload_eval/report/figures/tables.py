"""The tables the figures draw, picked from the points table."""

from __future__ import annotations

import pandas as pd

from workload_eval.results import offline_points


def pick_kv(table: pd.DataFrame, kv_blocks: int | None) -> pd.DataFrame:
    """Rows at ``kv_blocks``; by default each model at its largest KV size (a model whose
    KV size is unknown, such as a server run without /metrics, keeps all its rows)."""
    if table.empty:
        return table
    if kv_blocks is not None:
        return table[table["kv_blocks"] == kv_blocks]
    biggest = table.groupby("model")["kv_blocks"].transform("max")
    return table[(table["kv_blocks"] == biggest) | biggest.isna()]


def offline_table(points: pd.DataFrame, num_requests: int | None = 1000) -> pd.DataFrame:
    """Offline throughput per (model, kv_blocks, workload) at N requests (mean over seeds)."""
    off = offline_points(points)
    if off.empty:
        return off
    if num_requests is not None and (off["num_requests"] == num_requests).any():
        off = off[off["num_requests"] == num_requests]
    else:  # the biggest N stored
        off = off[
            off["num_requests"]
            == off.groupby(["model", "kv_blocks", "workload"])["num_requests"].transform("max")
        ]
    keys = ["model", "kv_blocks", "workload", "num_requests"]
    return off.groupby(keys)[["request_throughput", "token_throughput"]].mean().reset_index()
