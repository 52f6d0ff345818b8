"""Length statistics of a prepared workload (what `workloads describe` prints)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def series_stats(values: Any) -> dict[str, float | int]:
    """mean, p50, p90, p99, max and count (numpy's linear percentiles)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {
            "mean": float("nan"),
            "p50": float("nan"),
            "p90": float("nan"),
            "p99": float("nan"),
            "max": 0,
            "count": 0,
        }
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {
        "mean": round(float(v.mean()), 3),
        "p50": float(p50),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "max": int(v.max()),
        "count": int(v.size),
    }


def length_stats(df: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """{"input_len": {...}, "output_len": {...}} over the rows of ``df``."""
    return {
        "input_len": series_stats(df["prompt_len"]),
        "output_len": series_stats(df["output_len"]),
    }
