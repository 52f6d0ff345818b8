"""``workload-eval compare RESULTS_DIR --by COLUMN``: does the conclusion depend on the workload?"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from workload_eval.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from workload_eval.analysis.compare import Comparison

CAPACITY_METRICS = ("capacity_rate", "capacity_low", "capacity_high")


def parse_where(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise UserError(f"--where {item!r}: expected COLUMN=VALUE, e.g. schedule=offline")
        out[column.strip()] = value.strip()
    return out


def load_table(results_dir: Path, metric: str | None) -> tuple[pd.DataFrame, str]:
    """The points table (results.load_points), or a sweep's capacity table for a capacity
    metric; and the metric (default: capacity when searches were stored, else throughput)."""
    import pandas as pd

    from workload_eval.results import load_points

    capacity = results_dir / "capacity.parquet"
    if metric is None:
        metric = "capacity_rate" if capacity.is_file() else "request_throughput"
    if metric in CAPACITY_METRICS:
        if not capacity.is_file():
            raise UserError(
                f"{capacity}: not found ({metric} comes from a sweep's capacity searches; "
                "compare a metric of the points instead, e.g. --metric request_throughput)"
            )
        table = pd.read_parquet(capacity)
        if "error" in table:
            table = table[table["error"].fillna("") == ""]
        return table, metric
    table = load_points(results_dir)
    if table.empty:
        raise UserError(f"{results_dir}: no results (no summary.json under it)")
    return table, metric


def write_outputs(comp: Comparison, out: Path) -> list[Path]:
    """values.csv, pairs.csv, reversals.csv, compare.json and the figure (PNG + PDF)."""
    from workload_eval.report.measurement_figures import figure_compare
    from workload_eval.storage import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, frame in (
        ("values", comp.values),
        ("pairs", comp.pairs),
        ("reversals", comp.reversals),
    ):
        atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False, lineterminator="\n"))
        files.append(out / f"{name}.csv")
    doc = {
        "by": comp.by,
        "metric": comp.metric,
        "higher_is_better": comp.higher_is_better,
        "baseline": comp.baseline,
        "confidence_level": comp.level,
        "systems": comp.systems,
        "workloads": comp.workloads,
        "system_columns": comp.system_columns,
        "scenario_columns": comp.scenario_columns,
        "scenarios": comp.scenarios,
        "where": comp.where,
        "values": _records(comp.values),
        "reversals": _records(comp.reversals),
    }
    atomic_write_text(out / "compare.json", json.dumps(doc, indent=1, sort_keys=False) + "\n")
    files.append(out / "compare.json")
    files += figure_compare(comp, out)
    return files


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    rows = frame.to_dict("records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def _interval(value: float, low: float, high: float) -> str:
    """``+-half`` for a symmetric interval, `` (low-high)`` otherwise, nothing without one."""
    from workload_eval.console import fmt

    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    half = (high - low) / 2
    if abs((value - low) - half) <= 1e-6 * max(abs(value), 1e-12):
        return f"±{fmt(half)}"
    return f" ({fmt(low)}-{fmt(high)})"


def print_comparison(comp: Comparison) -> None:
    from rich.markup import escape
    from rich.table import Table

    from workload_eval.analysis.compare import SCENARIO
    from workload_eval.console import fmt, stdout_console

    console = stdout_console()
    better = "higher" if comp.higher_is_better else "lower"
    console.print(
        f"{comp.metric} by {comp.by} ({better} is better; ±: the {comp.level:.0%} interval "
        "across seeds, else the run's own; #n: rank)",
        soft_wrap=True,
        markup=False,
    )
    if comp.where:
        kept = ", ".join(f"{k}={v}" for k, v in comp.where.items())
        console.print(f"points: {kept}", soft_wrap=True, markup=False)
    if comp.system_columns:
        console.print(
            f"part of each system (one value per {comp.by}): {', '.join(comp.system_columns)}",
            soft_wrap=True,
            markup=False,
        )
    values = comp.values
    for scenario in dict.fromkeys(values[SCENARIO]):
        part = values[values[SCENARIO] == scenario]
        table = Table(title=escape(scenario), header_style="bold", title_justify="left")
        table.add_column("workload")
        for system in comp.systems:
            table.add_column(f"{comp.by}={system}", justify="right")
        for system in comp.systems:
            if system != comp.baseline:
                table.add_column(f"/{comp.baseline}", justify="right")
        for workload, g in part.groupby("workload", sort=False):
            cells = {r.system: r for r in g.itertuples()}
            row = [escape(str(workload))]
            for system in comp.systems:
                r = cells.get(system)
                if r is None:
                    row.append("-")
                    continue
                row.append(f"{fmt(r.value)}{_interval(r.value, r.ci_low, r.ci_high)} #{r.rank}")
            for system in comp.systems:
                if system != comp.baseline:
                    r = cells.get(system)
                    row.append(fmt(r.ratio_to_baseline) if r is not None else "-")
            table.add_row(*row)
        console.print(table)
    rev = comp.reversals
    if rev.empty:
        console.print("no rank reversal: every workload orders the systems the same way")
        return
    beyond = int((rev["noise"] == "beyond noise").sum())
    console.print(f"rank reversals: {len(rev)} ({beyond} beyond noise)")
    for r in rev.itertuples():
        console.print(
            f"  [{r.scenario}] {r.system_a} beats {r.system_b} on {r.a_wins_on} "
            f"({fmt(r.a_value_1)} vs {fmt(r.b_value_1)}) but loses on {r.b_wins_on} "
            f"({fmt(r.a_value_2)} vs {fmt(r.b_value_2)}): {r.noise}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option(
    "--by",
    required=True,
    help="The configuration column that names the systems: engine, model, gpu, kv_blocks, "
    "policy, or any other of the points table.",
)
@click.option(
    "--metric",
    help="What to compare [default: capacity_rate when the results hold capacity searches, "
    "else request_throughput].",
)
@click.option(
    "--where",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Keep only these points (repeatable), e.g. --where schedule=offline.",
)
@click.option("--baseline", help="The system ratios are taken to [default: the first].")
@click.option(
    "--higher-is-better/--lower-is-better",
    default=None,
    help="Direction of the metric [default: lower for latencies, higher otherwise].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the tables and figure [default: RESULTS_DIR/compare/BY-METRIC].",
)
def command(
    results_dir: Path,
    by: str,
    metric: str | None,
    where: tuple[str, ...],
    baseline: str | None,
    higher_is_better: bool | None,
    out: Path | None,
) -> None:
    """Compare systems workload by workload: each one's metric and rank per workload, the
    ratios between them, and every rank reversal between workloads (A beats B on one
    workload but loses on another), flagged when it is within noise.

    \b
      workload-eval sweep examples/workload_sensitivity.yaml --out results/sensitivity
      workload-eval compare results/sensitivity --by model --where schedule=offline
      workload-eval compare results/sensitivity --by model --metric ttft_p95
    """
    from workload_eval.analysis.compare import compare
    from workload_eval.storage import ensure_writable_dir

    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results folder")
    table, metric = load_table(results_dir, metric)
    comp = compare(
        table,
        by,
        metric,
        higher_is_better=higher_is_better,
        baseline=baseline,
        where=parse_where(where),
    )
    print_comparison(comp)
    target = ensure_writable_dir(out or results_dir / "compare" / f"{by}-{metric}")
    files = write_outputs(comp, Path(target))
    click.echo(f"wrote {len(files)} files to {target} (values.csv, reversals.csv, compare.png)")
