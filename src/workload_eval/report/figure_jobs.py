"""The report's figures as jobs that a worker process can render from plain data.

Drawing is most of a report's time, one figure at a time: a job lets another process
draw a figure. It travels as JSON (which figure, where, its options) naming the
tables it draws, written once as Arrow IPC files in a scratch folder; a worker reads them,
draws, and writes its own PNG and PDF. No Python object crosses a process (no pickle).
In this process a job draws straight from the tables in memory, so both ways run the
same figure function on the same data.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, JsonValue

if TYPE_CHECKING:
    from workload_eval.analysis.compare import Comparison

Tables = dict[str, pd.DataFrame]
Draw = Callable[[Tables, dict[str, Any], Path], list[Path]]


class ShippedJob(BaseModel):
    """A job as it travels to a worker: the figure's kind, its folder, its options, and
    the Arrow file of each table it draws."""

    kind: str
    out_dir: str
    options: dict[str, JsonValue]
    tables: dict[str, str]


@dataclass
class FigureJob:
    """One figure to draw: ``kind`` names its figure function (``DRAW``)."""

    kind: str
    out_dir: Path
    tables: Tables = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # plain JSON, or it stays here

    def render_here(self) -> list[Path]:
        return DRAW[self.kind](self.tables, dict(self.options), self.out_dir)


# --- the figure functions, each from its tables and options ------------------------------


def _one_table(name: str, slot: str) -> Draw:
    """A figure function of one table, the folder and keyword options."""

    def draw(tables: Tables, options: dict[str, Any], out_dir: Path) -> list[Path]:
        fn = getattr(_figure_modules()[name], name)
        return list(fn(tables[slot], out_dir, **options))

    return draw


def _figure_modules() -> dict[str, Any]:
    from workload_eval.report import figures, load_views, measurement_figures

    return {
        **{n: figures for n in figures.__all__},
        "figure_closed_loop": load_views,
        "figure_compare": measurement_figures,
        "figure_slices": measurement_figures,
    }


def _lengths(tables: Tables, options: dict[str, Any], out_dir: Path) -> list[Path]:
    from workload_eval.report.figures import figure1_lengths

    frames = {}
    for workload, model in options["models"]:  # in the order they were found
        frame = tables[f"lengths/{workload}"]
        frame.attrs["model"] = model
        frames[workload] = frame
    return figure1_lengths(frames, out_dir)


def _timelines(tables: Tables, options: dict[str, Any], out_dir: Path) -> list[Path]:
    from workload_eval.report.figures import figure_timelines

    runs = {w: (tables[f"steps/{w}"], caption) for w, caption in options["runs"]}
    return figure_timelines(runs, out_dir)


def _slices(tables: Tables, options: dict[str, Any], out_dir: Path) -> list[Path]:
    from workload_eval.report.measurement_figures import figure_slices

    runs = {
        w: (tables[f"slices/{w}"], caption, tuple(window) if window is not None else None)
        for w, caption, window in options["runs"]
    }
    return figure_slices(runs, out_dir)


COMPARISON_TABLES = ("values", "pairs", "reversals")


def _compare(tables: Tables, options: dict[str, Any], out_dir: Path) -> list[Path]:
    from workload_eval.analysis.compare import Comparison
    from workload_eval.report.measurement_figures import figure_compare

    fields_ = {**options["comparison"], **{t: tables[t] for t in COMPARISON_TABLES}}
    return figure_compare(Comparison(**fields_), out_dir, name=options["name"])


DRAW: dict[str, Draw] = {
    "figure1_lengths": _lengths,
    "figure2a_capacity": _one_table("figure2a_capacity", "capacity"),
    "figure2b_throughput": _one_table("figure2b_throughput", "points"),
    "figure3a_capacity_vs_kv": _one_table("figure3a_capacity_vs_kv", "capacity"),
    "figure3b_throughput_vs_kv": _one_table("figure3b_throughput_vs_kv", "points"),
    "figure_metric_vs_rate": _one_table("figure_metric_vs_rate", "points"),
    "figure_closed_loop": _one_table("figure_closed_loop", "points"),
    "figure_paper_vs_ours": _one_table("figure_paper_vs_ours", "comparison"),
    "figure_timelines": _timelines,
    "figure_slices": _slices,
    "figure_compare": _compare,
}

# CPU seconds of each figure of `reproduce`'s report (2 cores, both drawing): the biggest
# start first, so the last to finish is a small one.
COST = {
    "figure_slices": 1.4,
    "figure_compare": 1.2,
    "figure_timelines": 1.2,
    "figure_paper_vs_ours": 1.0,
    "figure_metric_vs_rate": 0.7,
    "figure3a_capacity_vs_kv": 0.55,
    "figure1_lengths": 0.5,
    "figure3b_throughput_vs_kv": 0.45,
    "figure2b_throughput": 0.3,
    "figure_closed_loop": 0.3,
    "figure2a_capacity": 0.2,
}


# --- the jobs of the report --------------------------------------------------------------


def lengths_job(frames: Tables, out_dir: Path) -> FigureJob:
    models = [[w, str(f.attrs.get("model", ""))] for w, f in frames.items()]
    tables = {f"lengths/{w}": f for w, f in frames.items()}
    return FigureJob("figure1_lengths", out_dir, tables, {"models": models})


def timelines_job(runs: dict[str, tuple[pd.DataFrame, str]], out_dir: Path) -> FigureJob:
    tables = {f"steps/{w}": steps for w, (steps, _) in runs.items()}
    options = [[w, caption] for w, (_, caption) in runs.items()]
    return FigureJob("figure_timelines", out_dir, tables, {"runs": options})


def slices_job(
    runs: dict[str, tuple[pd.DataFrame, str, tuple[float, float] | None]], out_dir: Path
) -> FigureJob:
    tables = {f"slices/{w}": sl for w, (sl, _, _) in runs.items()}
    options = [
        [w, caption, list(window) if window else None] for w, (_, caption, window) in runs.items()
    ]
    return FigureJob("figure_slices", out_dir, tables, {"runs": options})


def compare_job(comp: Comparison, out_dir: Path, name: str) -> FigureJob:
    """The comparison's tables travel as tables, the rest as JSON (a field JSON cannot
    hold keeps the job in this process)."""
    tables = {t: getattr(comp, t) for t in COMPARISON_TABLES}
    rest = {f.name: getattr(comp, f.name) for f in fields(comp) if f.name not in tables}
    return FigureJob("figure_compare", out_dir, tables, {"comparison": rest, "name": name})


# --- in a worker process -----------------------------------------------------------------

_READ: dict[str, pd.DataFrame] = {}  # a worker reads each table once (the points: 8 jobs)


def _read(path: str) -> pd.DataFrame:
    if path not in _READ:
        _READ[path] = pd.read_feather(path)
    return _READ[path]


def warm_up() -> None:
    """Import what drawing needs while the driver still reads the results."""
    _figure_modules()


def render_shipped(job_json: str) -> dict[str, Any]:
    """Draw one shipped job (JSON text); its paths, or why it failed, never raise.

    A failed figure is drawn again by the driver, which then fails as it always did
    (a warning raised here is handed back to be shown there).
    """
    try:
        job = ShippedJob.model_validate_json(job_json)
        tables = {slot: _read(path) for slot, path in job.tables.items()}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            paths = DRAW[job.kind](tables, dict(job.options), Path(job.out_dir))
        return {
            "paths": [str(p) for p in paths],
            "warnings": [str(w.message) for w in caught],
        }
    except Exception as e:  # the driver draws it again and fails there
        return {"error": f"{type(e).__name__}: {e}"}


def ship(job: FigureJob, store: Callable[[pd.DataFrame], str | None]) -> str | None:
    """The job as JSON, its tables stored by ``store``; None when a table or an option
    cannot travel exactly (then the driver draws it)."""
    paths = {}
    for slot, table in job.tables.items():
        path = store(table)
        if path is None:
            return None
        paths[slot] = path
    try:
        options = json.loads(json.dumps(job.options, allow_nan=True))
    except (TypeError, ValueError):
        return None
    if options != job.options:  # a tuple, a numpy number: not the same after JSON
        return None
    return ShippedJob(
        kind=job.kind, out_dir=str(job.out_dir), options=options, tables=paths
    ).model_dump_json()
