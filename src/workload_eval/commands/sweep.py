"""``workload-eval sweep``: run every point of an experiment spec into a resumable store."""

from __future__ import annotations

from typing import Any

import click

from workload_eval.commands.options import max_requests_option
from workload_eval.limits import MAX_JOBS


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Results folder (points/, index.parquet, index.csv, capacity.*).",
)
@click.option(
    "--jobs",
    "-j",
    type=int,
    default=1,
    show_default=True,
    help="Points run at once (local worker processes, or local Ray CPUs).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where points run.",
)
@click.option(
    "--ray-address",
    help="Ray cluster address (e.g. ray://head:10001 or auto); "
    "default: start a local Ray instance.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar [default: when stderr is a terminal].",
)
@max_requests_option
def command(
    spec_path: str,
    out: str,
    jobs: int,
    executor: str,
    ray_address: str | None,
    progress: bool | None,
    max_requests: int | None,
) -> None:
    """Expand SPEC (YAML) into runs, run the ones not stored yet, keep an index.

    Re-running the same command resumes: completed points are skipped and points that
    were running when the sweep stopped run again. Ctrl-C stops cleanly.

    \b
      workload-eval sweep examples/quick.yaml --out results/quick --jobs 2
      workload-eval sweep examples/paper.yaml --out results/paper --executor ray
    """
    from workload_eval import interrupts
    from workload_eval.console import progress_default, stderr_console
    from workload_eval.errors import UserError
    from workload_eval.experiments.executors import make_executor
    from workload_eval.experiments.spec_loading import load_spec
    from workload_eval.experiments.sweep import run_sweep
    from workload_eval.limits import set_max_requests
    from workload_eval.storage import ensure_writable_dir

    if not 1 <= jobs <= MAX_JOBS:
        raise UserError(f"--jobs {jobs}: expected a number of workers from 1 to {MAX_JOBS}")
    if ray_address is not None and executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    set_max_requests(max_requests)
    spec = load_spec(spec_path)
    ensure_writable_dir(out)
    err = stderr_console()
    ex = make_executor(
        executor, jobs=jobs, ray_address=ray_address, ray_num_cpus=jobs if jobs > 1 else None
    )
    show = progress_default() if progress is None else progress
    result = run_sweep(spec, out, executor=ex, progress=show, log=err.print)
    _print_result(result)
    if result.interrupted:
        err.print(
            f"interrupted: {len(result.index)} completed point(s) kept in {out}; "
            "run the same command again to resume"
        )
        raise click.exceptions.Exit(interrupts.exit_code())  # 130 Ctrl-C, 143 SIGTERM
    if result.failed:
        key, msg = next(iter(result.failed.items()))
        if set(result.failed) <= result.input_errors:  # bad input, found when a point ran
            raise UserError(
                f"{len(result.failed)} point(s) failed on their input (the others are "
                f"stored in {out}); first: {key}: {msg}"
            )
        err.print(f"{len(result.failed)} point(s) failed; first: {key}: {msg}")
        raise click.exceptions.Exit(1)


def _interval(row: dict[str, Any]) -> str:
    """``low-high``: met up to low, violated from high; '-' for point answers."""
    from workload_eval.console import fmt

    level, high = row.get("confidence"), row.get("capacity_high")
    if level is None or level != level or high is None or high != high:
        return "-"
    return f"{fmt(row['capacity_low'])}-{fmt(high)}"


def _print_result(result: Any) -> None:
    from rich.table import Table

    from workload_eval.console import fmt, stdout_console

    console = stdout_console()
    console.print(
        f"{result.total_points} grid point(s) and {result.searches} capacity search(es): "
        f"ran {result.ran} run(s), reused {result.reused} stored, {len(result.failed)} failed, "
        f"in {result.wall_s:.1f} s"
    )
    cap = result.capacity
    if not cap.empty:
        levels = sorted({float(c) for c in cap.get("confidence", []) if c == c and c is not None})
        title = "Max request rate meeting every SLO" + (
            f" (interval: met up to .. violated from, at {', '.join(f'{v:.0%}' for v in levels)} "
            "confidence)"
            if levels
            else ""
        )
        table = Table(title=title, header_style="bold")
        # group and engine label only when they tell the rows apart
        cols = [
            c
            for c in ("group", "engine_label", "model", "kv_blocks", "workload")
            if c in cap.columns and (c not in ("group", "engine_label") or cap[c].nunique() > 1)
        ]
        for c in [*cols, "capacity_rate", "interval", "rule", "num_runs"]:
            right = c in ("capacity_rate", "interval", "num_runs")
            table.add_column(c, justify="right" if right else "left")
        for row in cap.sort_values(cols, kind="stable").to_dict("records"):
            cells = [str(row.get(c)) for c in cols]
            rate = fmt(row.get("capacity_rate")) + (" (limit)" if row.get("censored") else "")
            table.add_row(
                *cells, rate, _interval(row), str(row.get("rule")), str(row.get("num_runs"))
            )
        console.print(table)
    console.print(f"index: {result.out / 'index.csv'} ({len(result.index)} point(s))")
    if not result.seeds.empty:
        console.print(
            f"across seeds: {result.out / 'seeds.csv'} ({len(result.seeds)} configuration(s) "
            "with a mean and interval per metric)"
        )
