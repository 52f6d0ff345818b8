"""Stored tables a report reads besides the points: capacity, the sweep index, a run's
step table. Each may be damaged (a full disk, a kill -9, a hand edit): a table that cannot
be read is named in ``problems`` and left out, and the rest of the report renders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from pyarrow import ArrowException

from workload_eval.report import style
from workload_eval.results import online_points


def read_table(path: Path, problems: list[str], **kw: Any) -> pd.DataFrame | None:
    """A stored Parquet/CSV table, or None (named in ``problems``) when it is damaged."""
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, **kw)
        return pd.read_parquet(path, **kw)
    except (OSError, ValueError, KeyError, TypeError, ArrowException, UnicodeDecodeError) as e:
        problems.append(f"skipped {path}: cannot read it ({type(e).__name__}: {str(e)[:120]})")
        return None


def _numbers(
    df: pd.DataFrame, columns: tuple[str, ...], path: Path, problems: list[str]
) -> pd.DataFrame:
    """Columns that must hold numbers, as numbers; a value that is not one is left empty
    and the table named (a hand-edited or foreign table)."""
    out = df.copy()
    for col in columns:
        values = pd.to_numeric(out[col], errors="coerce")
        if (values.isna() & out[col].notna()).any():
            problems.append(f"{path}: column {col} holds values that are not numbers (left empty)")
        out[col] = values
    return out


def stored_capacity(results_dir: Path, problems: list[str]) -> pd.DataFrame | None:
    """A capacity table stored by the experiments package, when the study wrote one."""
    for name in ("capacity.parquet", "capacity.csv"):
        p = results_dir / name
        if p.is_file():
            df = read_table(p, problems)
            if df is None:
                continue
            if "max_rate" not in df and "capacity_rate" in df:  # experiments.sweep's table
                df = df.rename(columns={"capacity_rate": "max_rate"})
            if {"model", "kv_blocks", "workload", "max_rate"} <= set(df.columns):
                df = _numbers(df, ("kv_blocks", "max_rate"), p, problems)
                if "engine" not in df:
                    df["engine"] = ""
                if "gpu" not in df:
                    df["gpu"] = ""
                first = ["engine", "model", "gpu", "kv_blocks", "workload", "max_rate"]
                df = df[first + [c for c in df.columns if c not in first]]
                return df.sort_values(["model", "kv_blocks", "workload"]).reset_index(drop=True)
    return None


def memory_scaling(results_dir: Path, problems: list[str]) -> pd.DataFrame | None:
    """Throughput and capacity at the biggest KV size over the smallest (the paper's 2.3x),
    from the sweep's index and capacity tables when the study has them."""
    index_path = results_dir / "index.parquet"
    if not index_path.is_file():
        return None
    try:
        from workload_eval.experiments.memory import memory_table, scaling_table
    except ImportError:
        return None
    cap_path = results_dir / "capacity.parquet"
    capacity = read_table(cap_path, problems) if cap_path.is_file() else None
    index = read_table(index_path, problems)
    if index is None:
        return None
    try:
        table = scaling_table(memory_table(index, capacity))
    except (KeyError, ValueError, TypeError) as e:  # a table of another shape
        problems.append(f"{index_path}: not a sweep index ({type(e).__name__}: {e})")
        return None
    if table.empty or not (table.get("kv_ratio", pd.Series(dtype=float)) > 1).any():
        return None
    keep = [c for c in table.columns if not c.startswith(("engine", "policy", "gpu", "block_size"))]
    return table[keep]


def timeline_runs(
    points: pd.DataFrame, capacity: pd.DataFrame, results_dir: Path, problems: list[str]
) -> dict[str, tuple[pd.DataFrame, str]]:
    """Per workload, the online run closest below its capacity (first model, biggest KV)."""
    online = online_points(points)
    runs: dict[str, tuple[pd.DataFrame, str]] = {}
    if online.empty:
        return runs
    biggest = online[online["kv_blocks"] == online["kv_blocks"].max()]
    model = sorted(
        (biggest if len(biggest) else online)["model"].unique(), key=style.model_sort_key
    )[0]
    for w, g in online[online["model"] == model].groupby("workload"):
        g = g[g["kv_blocks"] == g["kv_blocks"].max()] if g["kv_blocks"].notna().any() else g
        cap = capacity[(capacity["workload"] == w) & (capacity["model"] == model)]
        limit = float(cap["max_rate"].max()) if len(cap) else math.inf
        below = g[g["rate"] <= limit]
        row = (below if len(below) else g).sort_values("rate").iloc[-1 if len(below) else 0]
        path = results_dir / row["key"] / "steps.parquet"
        if not path.is_file():
            continue
        steps = read_table(path, problems)
        needed = {"time", "kv_blocks_used", "kv_blocks_total", "num_running", "num_waiting"}
        if steps is None or steps.empty or not needed <= set(steps.columns):
            continue
        if "num_preempted" not in steps:
            steps = steps.assign(num_preempted=0)
        steps = _numbers(steps, (*needed, "num_preempted"), path, problems).dropna(subset=["time"])
        kv = "" if pd.isna(row["kv_blocks"]) else f", {int(row['kv_blocks'])} blocks"
        runs[str(w)] = (steps, f"{style.model_label(model)}{kv}, {row['rate']:g} req/s")
    return runs


__all__ = ["memory_scaling", "read_table", "stored_capacity", "timeline_runs"]
