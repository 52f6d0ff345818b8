"""The seed paper's measured numbers beside ours, read from ../shared/calibration at run time.

The measured numbers are never copied into the repository: the folder is given with
``--calibration-dir``, the env var ``WORKLOAD_EVAL_CALIBRATION_DIR``, or found at
``../shared/calibration`` beside the working directory or the source checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.paper import SLO_S_PER_TOKEN, max_rate_under_slo
from workload_eval.results import offline_points

ENV_VAR = "WORKLOAD_EVAL_CALIBRATION_DIR"

COMPARISON_COLUMNS = (
    "quantity",
    "unit",
    "model",
    "workload",
    "kv_blocks",
    "num_requests",
    "paper",
    "ours",
    "error_pct",
)


def find_calibration_dir(explicit: str | Path | None = None) -> Path | None:
    """The calibration folder: explicit > env var > ../shared/calibration; None if absent."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_dir():
            raise UserError(f"--calibration-dir {p}: no such folder")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env)
        if not p.is_dir():
            raise UserError(f"{ENV_VAR}={env}: no such folder")
        return p
    checkout = Path(__file__).resolve().parents[3]
    for p in (
        Path.cwd().parent / "shared" / "calibration",
        checkout.parent / "shared" / "calibration",
    ):
        if p.is_dir():
            return p
    return None


def _read(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
        raise UserError(f"{path}: expected an object with 'model', 'experiment' and 'data'")
    return obj


def load_paper(calibration_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(offline, online) long tables of the measured results in ``*-offline/online.json``.

    offline: model, workload, kv_blocks, num_requests, request_throughput, token_throughput.
    online: model, workload, kv_blocks, rate, normalized_latency_mean, normalized_latency_p95.
    """
    off_rows, on_rows = [], []
    for path in sorted(Path(calibration_dir).glob("*.json")):
        obj = _read(path)
        model = str(obj.get("model", path.stem.rsplit("-", 1)[0]))
        for workload, scenarios in obj["data"].items():
            for sc in scenarios:
                kv = int(sc["kv_blocks"])
                for n, v in sc.get("by_num_requests", {}).items():
                    off_rows.append(
                        {
                            "model": model,
                            "workload": workload,
                            "kv_blocks": kv,
                            "num_requests": int(n),
                            "request_throughput": float(v["request"]),
                            "token_throughput": float(v["token"]),
                        }
                    )
                for r, v in sc.get("by_request_rate", {}).items():
                    on_rows.append(
                        {
                            "model": model,
                            "workload": workload,
                            "kv_blocks": kv,
                            "rate": float(r),
                            "normalized_latency_mean": float(v["avg"]),
                            "normalized_latency_p95": float(v["p95"]),
                        }
                    )
    return pd.DataFrame(off_rows), pd.DataFrame(on_rows)


def paper_capacity(online: pd.DataFrame, slo: float = SLO_S_PER_TOKEN) -> pd.DataFrame:
    """The paper's max request rate under the SLO (its rule on its measured grid; 0 when
    the lowest two rates already violate)."""
    if online.empty:
        return pd.DataFrame(columns=["model", "workload", "kv_blocks", "max_rate"])
    rows = [
        {
            "model": m,
            "workload": w,
            "kv_blocks": kv,
            "max_rate": max_rate_under_slo(
                g["rate"].to_numpy(), g["normalized_latency_p95"].to_numpy() <= slo
            ).rate
            or 0.0,
        }
        for (m, w, kv), g in online.groupby(["model", "workload", "kv_blocks"])
    ]
    return pd.DataFrame(rows)


def _err(paper: float, ours: float) -> float:
    return float((ours - paper) / paper * 100.0) if paper else float("nan")


def compare(
    points: pd.DataFrame, capacity: pd.DataFrame, calibration_dir: str | Path
) -> pd.DataFrame:
    """Our numbers beside the paper's wherever both exist; error = (ours - paper) / paper."""
    paper_off, paper_on = load_paper(calibration_dir)
    rows: list[dict] = []
    ours_off = offline_points(points)
    if not paper_off.empty and not ours_off.empty:
        ours = (
            ours_off.groupby(["model", "workload", "kv_blocks", "num_requests"])[
                ["request_throughput", "token_throughput"]
            ]
            .mean()
            .reset_index()
        )
        merged = paper_off.merge(
            ours,
            on=["model", "workload", "kv_blocks", "num_requests"],
            suffixes=("_paper", "_ours"),
        )
        for _, r in merged.iterrows():
            for metric, label, unit in (
                ("request_throughput", "offline throughput", "req/s"),
                ("token_throughput", "offline throughput", "tok/s"),
            ):
                rows.append(
                    {
                        "quantity": label,
                        "unit": unit,
                        "model": r["model"],
                        "workload": r["workload"],
                        "kv_blocks": int(r["kv_blocks"]),
                        "num_requests": int(r["num_requests"]),
                        "paper": r[f"{metric}_paper"],
                        "ours": r[f"{metric}_ours"],
                        "error_pct": _err(r[f"{metric}_paper"], r[f"{metric}_ours"]),
                    }
                )
    pcap = paper_capacity(paper_on)
    if not pcap.empty and not capacity.empty:
        ours_cap = capacity.groupby(["model", "workload", "kv_blocks"])["max_rate"].max()
        merged = pcap.merge(
            ours_cap.reset_index(),
            on=["model", "workload", "kv_blocks"],
            suffixes=("_paper", "_ours"),
        )
        for _, r in merged.iterrows():
            rows.append(
                {
                    "quantity": "max rate under SLO",
                    "unit": "req/s",
                    "model": r["model"],
                    "workload": r["workload"],
                    "kv_blocks": int(r["kv_blocks"]),
                    "num_requests": np.nan,
                    "paper": r["max_rate_paper"],
                    "ours": r["max_rate_ours"],
                    "error_pct": _err(r["max_rate_paper"], r["max_rate_ours"]),
                }
            )
    df = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    return df.sort_values(
        ["quantity", "unit", "model", "workload", "kv_blocks", "num_requests"]
    ).reset_index(drop=True)


def error_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per quantity: number of pairs, mean and max absolute error (percent)."""
    if comparison.empty:
        return pd.DataFrame(
            columns=["quantity", "unit", "pairs", "mean_abs_error_pct", "max_abs_error_pct"]
        )
    g = comparison.assign(abs_err=comparison["error_pct"].abs()).groupby(["quantity", "unit"])
    return g.agg(
        pairs=("abs_err", "size"),
        mean_abs_error_pct=("abs_err", "mean"),
        max_abs_error_pct=("abs_err", "max"),
    ).reset_index()
