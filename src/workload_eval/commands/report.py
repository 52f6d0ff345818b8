"""``workload-eval report DIR``: figures, tables and report.html from stored results."""

from __future__ import annotations

from pathlib import Path

import click

from workload_eval.paper import SLO_S_PER_TOKEN


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
@click.option(
    "--calibration-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="More of the paper's measured tables (<model>-offline.json, <model>-online.json), "
    "added to or replacing the OPT-13B tables shipped in the package [default: "
    "$WORKLOAD_EVAL_CALIBRATION_DIR, else ../shared/calibration when present].",
)
@click.option(
    "--slo",
    type=float,
    default=SLO_S_PER_TOKEN,
    show_default=True,
    help="p95 normalized latency SLO (s/token) for the capacity figures.",
)
def command(
    results_dir: Path, out_dir: Path | None, calibration_dir: Path | None, slo: float
) -> None:
    from workload_eval.report import build_report

    report = build_report(results_dir, out_dir, calibration_dir=calibration_dir, slo=slo)
    click.echo(f"{len(report.points)} points, {len(report.figures)} figures")
    if report.section is not None:
        for line in [*report.section.claim_lines(), *report.section.agreement_lines()]:
            click.echo(line)
    if report.comparison is not None and len(report.comparison):
        click.echo(f"paper vs ours: {len(report.comparison)} pairs (paper_comparison.csv)")
    click.echo(f"report: {report.html}")
