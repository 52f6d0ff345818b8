"""The seed paper's measured numbers beside ours.

The paper's tables come from :mod:`workload_eval.paper_data`: shipped in the package
(OPT-13B) plus any calibration folder, which adds or overrides tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workload_eval.paper import SLO_S_PER_TOKEN, max_rate_under_slo
from workload_eval.paper_data import PaperTables
from workload_eval.results import offline_points, online_points

LATENCY = "p95 normalized latency"

COMPARISON_COLUMNS = (
    "quantity",
    "unit",
    "model",
    "workload",
    "kv_blocks",
    "num_requests",
    "rate",
    "paper",
    "ours",
    "error_pct",
)


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


def compare(points: pd.DataFrame, capacity: pd.DataFrame, tables: PaperTables) -> pd.DataFrame:
    """Our numbers beside the paper's wherever both exist; error = (ours - paper) / paper."""
    paper_off, paper_on = tables.offline(), tables.online()
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
                        "rate": np.nan,
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
                    "rate": np.nan,
                    "paper": r["max_rate_paper"],
                    "ours": r["max_rate_ours"],
                    "error_pct": _err(r["max_rate_paper"], r["max_rate_ours"]),
                }
            )
    rows += _latency_rows(points, paper_on)
    df = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    return df.sort_values(
        ["quantity", "unit", "model", "workload", "kv_blocks", "num_requests", "rate"]
    ).reset_index(drop=True)


def _latency_rows(points: pd.DataFrame, paper_on: pd.DataFrame) -> list[dict]:
    """p95 normalized latency at every rate both the paper and we ran (the curves behind
    Figures 2a and 3a), so a capacity set by noise can be told from a curve that differs."""
    ours = online_points(points)
    if ours.empty or paper_on.empty or "normalized_latency_p95" not in ours:
        return []
    keys = ["model", "workload", "kv_blocks"]
    ours = (
        ours.assign(rate=ours["rate"].round(6))
        .groupby([*keys, "rate"])["normalized_latency_p95"]
        .mean()
        .reset_index()
    )
    theirs = paper_on.assign(rate=paper_on["rate"].round(6))
    merged = theirs.merge(ours, on=[*keys, "rate"], suffixes=("_paper", "_ours"))
    return [
        {
            "quantity": LATENCY,
            "unit": "s/token",
            "model": r.model,
            "workload": r.workload,
            "kv_blocks": int(r.kv_blocks),
            "num_requests": np.nan,
            "rate": float(r.rate),
            "paper": r.normalized_latency_p95_paper,
            "ours": r.normalized_latency_p95_ours,
            "error_pct": _err(r.normalized_latency_p95_paper, r.normalized_latency_p95_ours),
        }
        for r in merged.itertuples()
    ]


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
