"""Figures, tables and the HTML report, rendered from a results folder only.

Its names are imported on first use: a process that only draws figures (a report's
worker) does not import the whole report.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workload_eval.report.html import Report, build_report
    from workload_eval.report.results import capacity_table
    from workload_eval.results import load_points

_WHERE = {
    "Report": "workload_eval.report.html",
    "build_report": "workload_eval.report.html",
    "capacity_table": "workload_eval.report.results",
    "load_points": "workload_eval.results",
}

__all__ = ["Report", "build_report", "capacity_table", "load_points"]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
