"""Named workloads of the study: load them as DataFrames, describe and plot their lengths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from workload_eval.workloads.catalog import WORKLOADS, WorkloadSpec, get_workload, known_workloads
from workload_eval.workloads.families import FAMILIES
from workload_eval.workloads.listing import list_workloads
from workload_eval.workloads.loader import load_workload, prepare
from workload_eval.workloads.requests import to_requests
from workload_eval.workloads.resolve import WorkloadRef, check_workload, resolve_workload
from workload_eval.workloads.shared_prefix import (
    SharedPrefixStream,
    SharedPrefixWorkload,
    shared_prefix_requests,
    shared_prefix_table,
)
from workload_eval.workloads.stats import length_stats


def plot_length_cdfs(frames: dict[str, pd.DataFrame], out: str | Path, **kwargs: Any) -> None:
    """The seed's Figure 1; imported lazily because matplotlib is slow to import."""
    from workload_eval.workloads.plot import plot_length_cdfs as _plot

    return _plot(frames, out, **kwargs)


__all__ = [
    "FAMILIES",
    "WORKLOADS",
    "SharedPrefixStream",
    "SharedPrefixWorkload",
    "WorkloadRef",
    "WorkloadSpec",
    "check_workload",
    "get_workload",
    "known_workloads",
    "length_stats",
    "list_workloads",
    "load_workload",
    "plot_length_cdfs",
    "prepare",
    "resolve_workload",
    "shared_prefix_requests",
    "shared_prefix_table",
    "to_requests",
]
