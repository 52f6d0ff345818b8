"""Studies: a YAML spec expands into runs, executed locally or on Ray, stored resumably.

Public API (DataFrames out, usable from a notebook):
``load_spec``, ``expand``, ``run_sweep``, ``ResultStore``, ``SLO``, ``parse_slos``,
``BisectSearch``, ``SeedGridSearch`` (the paper's rule: ``workload_eval.paper``),
``find_capacity``, ``memory_table``, ``scaling_table``.
"""

from workload_eval.experiments.capacity import (
    BisectSearch,
    CapacityResult,
    CapacitySearch,
    SeedGridSearch,
    find_capacity,
    make_search,
)
from workload_eval.experiments.grid import CapacityTask, Point, expand, point_key
from workload_eval.experiments.memory import memory_table, scaling_table
from workload_eval.experiments.spec import ExperimentSpec, GridSpec
from workload_eval.experiments.spec_loading import build_spec, load_spec, spec_from_yaml_text
from workload_eval.experiments.store import ResultStore
from workload_eval.experiments.sweep import SweepResult, run_sweep
from workload_eval.slo import SLO, parse_slos

__all__ = [
    "SLO",
    "BisectSearch",
    "CapacityResult",
    "CapacitySearch",
    "CapacityTask",
    "ExperimentSpec",
    "GridSpec",
    "Point",
    "ResultStore",
    "SeedGridSearch",
    "SweepResult",
    "build_spec",
    "expand",
    "find_capacity",
    "load_spec",
    "make_search",
    "memory_table",
    "parse_slos",
    "point_key",
    "run_sweep",
    "scaling_table",
    "spec_from_yaml_text",
]
