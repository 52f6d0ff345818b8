"""Figures, tables and the HTML report, rendered from a results folder only."""

from workload_eval.report.html import Report, build_report
from workload_eval.report.results import capacity_table
from workload_eval.results import load_points

__all__ = ["Report", "build_report", "capacity_table", "load_points"]
