"""Read a results folder into one flat table, so every figure and table reads the same rows.

Works from stored files only: every ``summary.json`` under the folder (the experiments
store keeps them at ``points/<key>/summary.json``; a single ``workload-eval run`` folder
is one point). The configuration is taken from each summary's ``config``, whatever its
nesting, by the names the contracts use (model, kv_blocks, workload, schedule kind, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.paper import SLO_S_PER_TOKEN, max_rate_under_slo

# Configuration columns of the points table, in display order.
CONFIG_COLUMNS: tuple[str, ...] = (
    "engine",
    "model",
    "gpu",
    "kv_blocks",
    "block_size",
    "policy",
    "workload",
    "schedule",
    "num_requests",
    "rate",
    "duration",
    "seed",
)
# Metrics the report shows first; any other numeric summary key is kept after them.
METRIC_COLUMNS: tuple[str, ...] = (
    "request_throughput",
    "token_throughput",
    "output_token_throughput",
    "normalized_latency_mean",
    "normalized_latency_p95",
    "ttft_mean",
    "ttft_p50",
    "ttft_p95",
    "ttft_p99",
    "tpot_mean",
    "tpot_p95",
    "e2e_latency_mean",
    "e2e_latency_p95",
    "num_requests_total",
    "num_completed",
    "num_failed",
    "duration_s",
    "preemptions",
)
# Leaf names searched in the nested config, per column (first hit wins, schedule first).
_SCHEDULE_KEYS = {
    "schedule": "kind",
    "num_requests": "num_requests",
    "rate": "rate",
    "duration": "duration",
}
_ENGINE_KEYS = ("model", "gpu", "kv_blocks", "block_size", "policy")


def find_summaries(results_dir: str | Path) -> list[Path]:
    """Every summary.json under the folder (a points store, a run folder, or a tree of runs)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(
            f"{root}: no such results folder (expected a folder written by "
            "`workload-eval sweep`, `run` or `reproduce`)"
        )
    return sorted(p for p in root.rglob("summary.json") if not p.name.startswith("."))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys, so any config nesting can be searched by leaf name."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = obj
    return out


def _pick(flat: dict[str, Any], leaf: str, prefer: str | None = None) -> Any:
    """The value of the first dotted key ending in ``leaf``; keys under ``prefer`` first."""
    hits = [k for k in flat if k == leaf or k.endswith(f".{leaf}")]
    if prefer is not None:
        hits.sort(key=lambda k: (f"{prefer}." not in f".{k}", k.count("."), k))
    else:
        hits.sort(key=lambda k: (k.count("."), k))
    for k in hits:
        if flat[k] is not None:
            return flat[k]
    return None


def config_row(config: dict[str, Any]) -> dict[str, Any]:
    """The report's configuration columns from one run's nested configuration."""
    flat = flatten(config)
    row: dict[str, Any] = {
        "engine": _pick(flat, "engine")
        if not isinstance(config.get("engine"), dict)
        else _pick(flat, "name", "engine"),
        "workload": _pick(flat, "workload"),
        "seed": _pick(flat, "seed"),
    }
    for col in _ENGINE_KEYS:  # shallowest first: the resolved kv_blocks beats the request
        row[col] = _pick(flat, col)
    for col, leaf in _SCHEDULE_KEYS.items():
        row[col] = _pick(flat, leaf, "schedule")
    if isinstance(row["engine"], dict | list):
        row["engine"] = None
    return row


def _point_row(path: Path, root: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path}: expected a JSON object (a run summary)")
    config = summary.get("config") or {}
    marker = path.parent / "point.json"  # the experiments store's record of the RunSpec
    if not config and marker.is_file():
        try:
            spec = json.loads(marker.read_text()).get("spec")
        except json.JSONDecodeError:
            spec = None
        if isinstance(spec, dict):
            config = spec
    row: dict[str, Any] = {"key": str(path.parent.relative_to(root)) or "."}
    row.update(config_row(config if isinstance(config, dict) else {}))
    for k, v in summary.items():
        if k == "config" or isinstance(v, dict | list):
            continue
        name = "num_requests_total" if k == "num_requests" else k
        row[name] = v
    row["config_json"] = json.dumps(config, sort_keys=True, default=str)
    return row


def load_points(results_dir: str | Path) -> pd.DataFrame:
    """One row per stored point: configuration columns, then every scalar summary metric."""
    root = Path(results_dir)
    rows = [_point_row(p, root) for p in find_summaries(root)]
    if not rows:
        return pd.DataFrame(columns=["key", *CONFIG_COLUMNS, *METRIC_COLUMNS, "config_json"])
    df = pd.DataFrame(rows)
    for col in (*CONFIG_COLUMNS, *METRIC_COLUMNS):
        if col not in df:
            df[col] = np.nan
    df["schedule"] = df["schedule"].fillna("").astype(str)
    df["model"] = df["model"].fillna("").astype(str)
    df["workload"] = df["workload"].fillna("").astype(str)
    for col in ("kv_blocks", "num_requests", "rate", "duration"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    head = ["key", *CONFIG_COLUMNS, *METRIC_COLUMNS]
    rest = sorted(c for c in df.columns if c not in head and c != "config_json")
    df = df[[*head, *rest, "config_json"]]
    return df.sort_values(
        ["model", "kv_blocks", "workload", "schedule", "num_requests", "rate", "key"],
        na_position="last",
    ).reset_index(drop=True)


def offline_points(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["schedule"] == "offline"]


def online_points(points: pd.DataFrame) -> pd.DataFrame:
    """Rate-driven points (any arrival process with a rate)."""
    return points[(points["schedule"] != "offline") & points["rate"].notna()]


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
