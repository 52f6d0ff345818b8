"""``workload-eval reproduce``: the paper's whole study on the simulator, then its report."""

from __future__ import annotations

import os
from pathlib import Path

import click

from workload_eval.commands.options import calibration_dir_option
from workload_eval.limits import MAX_JOBS


@click.command(
    help="Reproduce the paper's study on the simulator (OPT-13B, Llama-2-13B, "
    "OPT-6.7B, Llama-2-7B; 150-643 KV blocks; alpaca, dolly, cnn_dailymail, "
    "sharegpt; offline throughput and SLO capacity by the paper's rule on its rate grids), "
    "with the output lengths the paper's engine produced; write every figure, report.html, "
    "the paper-vs-ours tables and the verdict on each of the paper's claims. Re-running "
    "resumes."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("results/reproduce"),
    show_default=True,
    help="Results folder (points, index, capacity, report/).",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Fewer KV sizes and N, 60 s instead of 600 s of arrivals, a looser "
    "capacity tolerance: a smoke run of the same pipeline.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=MAX_JOBS),
    default=None,
    help="Points run in parallel, and processes that draw the report's figures "
    "[default: the CPU count].",
)
@calibration_dir_option
@click.option(
    "--output-len-model",
    metavar="MODEL",
    help="eos:paper (default): outputs stop where the paper's engine stopped them (each "
    "workload's tokens per request as the paper measured, per model and N, with its share of "
    "early stops); reference: the datasets' reference outputs (ignore_eos); or "
    "eos:TOKENS / recorded:RUN_DIR for every workload.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(
    out_dir: Path,
    quick: bool,
    jobs: int | None,
    calibration_dir: Path | None,
    output_len_model: str | None,
    progress: bool,
) -> None:
    from workload_eval.experiments.study import reproduce

    jobs = jobs or os.cpu_count() or 1
    r = reproduce(
        out_dir,
        quick=quick,
        jobs=jobs,
        calibration_dir=calibration_dir,
        progress=progress,
        log=lambda m: click.echo(m, err=True),
        output_len_model=output_len_model,
    )
    s = r.sweep
    click.echo(
        f"sweep: {s.total_points} fixed points + {len(s.capacity)} capacity searches; "
        f"ran {s.ran}, reused {s.reused}, failed {len(s.failed)} ({r.sweep_s:.1f} s)"
    )
    for key, err in list(s.failed.items())[:5]:
        click.echo(f"  failed {key}: {err}", err=True)
    if s.interrupted or r.report is None:
        click.echo(
            "interrupted: completed points are kept; run the same command to resume", err=True
        )
        raise click.exceptions.Exit(130)
    section = r.report.section
    if section is not None:
        click.echo("")
        for line in [*section.claim_lines(), "", *section.agreement_lines()]:
            click.echo(line)
        click.echo("")
        click.echo(f"capacities by {section.capacity_rule}")
    else:
        click.echo("no configuration of the paper's tables in these results: no claims to check")
    click.echo(f"output lengths: {r.record.label}")
    click.echo(f"report: {r.report.html} ({len(r.report.figures)} figures, {r.report_s:.1f} s)")
