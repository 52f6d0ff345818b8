"""The paper's figures and the curves behind them, one function each, from stored results.

Every function takes tables built by :mod:`workload_eval.results` (or stored
Parquet files), writes ``<name>.png`` and ``<name>.pdf`` under ``out_dir`` and returns
the paths; with nothing to plot it writes nothing and returns ``[]``. One module per
family: ``lengths`` (Figure 1), ``bars`` (Figures 2 and 3), ``curves`` (metric vs rate,
timelines), ``parity`` (paper vs ours).
"""

from workload_eval.report.figures.bars import (
    figure2a_capacity,
    figure2b_throughput,
    figure3a_capacity_vs_kv,
    figure3b_throughput_vs_kv,
)
from workload_eval.report.figures.curves import figure_metric_vs_rate, figure_timelines
from workload_eval.report.figures.lengths import figure1_lengths, length_frames
from workload_eval.report.figures.parity import figure_paper_vs_ours
from workload_eval.report.figures.tables import offline_table, pick_kv
from workload_eval.report.style import SLO_COLOR

__all__ = [
    "SLO_COLOR",
    "figure1_lengths",
    "figure2a_capacity",
    "figure2b_throughput",
    "figure3a_capacity_vs_kv",
    "figure3b_throughput_vs_kv",
    "figure_metric_vs_rate",
    "figure_paper_vs_ours",
    "figure_timelines",
    "length_frames",
    "offline_table",
    "pick_kv",
]
