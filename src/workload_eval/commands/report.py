"""``workload-eval report DIR``: figures, tables and report.html from stored results."""

from __future__ import annotations

import os
from pathlib import Path

import click

from workload_eval.analysis.slices import check_width
from workload_eval.cli import one_line
from workload_eval.commands.options import calibration_dir_option, slice_seconds_option
from workload_eval.errors import UserError
from workload_eval.limits import MAX_JOBS
from workload_eval.paper import SLO_METRIC, SLO_TEXT
from workload_eval.slo import SLO

REPORT_METRIC = SLO_METRIC  # the report's capacity figures are drawn for the paper's metric


def report_slo(text: str) -> SLO:
    """``METRIC<=VALUE`` on the report's metric (the one SLO grammar), or a bare number."""
    try:
        value = float(text)
    except ValueError:
        slo = SLO.parse(text)
    else:
        return SLO.checked("--slo", metric=REPORT_METRIC, value=value)
    if slo.metric != REPORT_METRIC or slo.op not in ("<=", "<"):
        raise UserError(
            f"--slo {text!r}: the report's capacity figures bound {REPORT_METRIC} from above "
            f"(e.g. {SLO_TEXT})"
        )
    return slo


@click.command(
    help="Render figures (PNG+PDF), summary.csv and report.html from a results "
    "folder (a sweep's OUT, a run folder, or `reproduce` output)."
)
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the report [default: DIR/report].",
)
@calibration_dir_option
@click.option(
    "--slo",
    default=SLO_TEXT,
    show_default=True,
    metavar="METRIC<=VALUE",
    help=f"The bound behind the capacity figures, on {REPORT_METRIC} (a bare number: "
    "its value). Same grammar as run and capacity.",
)
@slice_seconds_option("Window of the time-slice figure.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=MAX_JOBS),
    default=None,
    help="Processes that draw the figures [default: the CPU count].",
)
def command(
    results_dir: Path,
    out_dir: Path | None,
    calibration_dir: Path | None,
    slo: str,
    slice_seconds: float,
    jobs: int | None,
) -> None:
    from workload_eval.report import build_report

    check_width(slice_seconds)
    report = build_report(
        results_dir,
        out_dir,
        calibration_dir=calibration_dir,
        slo=report_slo(slo).value,
        slice_seconds=slice_seconds,
        jobs=jobs or os.cpu_count() or 1,
    )
    for problem in report.problems:  # damaged files: skipped or named, the rest rendered
        click.echo(f"warning: {one_line(problem)}", err=True)
    click.echo(f"{len(report.points)} points, {len(report.figures)} figures")
    if report.section is not None:
        for line in [*report.section.claim_lines(), *report.section.agreement_lines()]:
            click.echo(line)
    if report.comparison is not None and len(report.comparison):
        click.echo(f"paper vs ours: {len(report.comparison)} pairs (paper_comparison.csv)")
    click.echo(f"report: {report.html}")
