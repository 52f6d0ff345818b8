"""``workload-eval validate CORPUS_DIR``: score the simulator against measured experiments."""

from __future__ import annotations

import os
from pathlib import Path

import click

from workload_eval.errors import EXIT_INCOMPLETE


@click.command(
    help="Simulate every experiment of a workload-eval-measured/1 corpus folder and compare "
    "with its measured latencies (and with the peer simulators' predictions it holds)."
)
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write cells.csv, experiments.csv, summary.json and the figure here.",
)
@click.option("--id", "id_glob", default=None, help="Only experiments whose id matches this glob.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=256),
    default=None,
    help="Worker processes [default: the CPU count].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Arrival/prompt RNG seed.")
def command(
    corpus_dir: Path, out_dir: Path | None, id_glob: str | None, jobs: int | None, seed: int
) -> None:
    from rich.console import Console

    from workload_eval.validation import run_corpus
    from workload_eval.validation.outputs import print_report, write_outputs

    workers = jobs or os.cpu_count() or 1
    results = run_corpus(corpus_dir, id_glob=id_glob, jobs=workers, seed=seed)
    console = Console(highlight=False, width=None if os.isatty(1) else 150)
    print_report(console, results)
    invalid = [r for r in results if r.status == "invalid"]
    for r in invalid:
        click.echo(f"error: {r.reason}", err=True)
    if out_dir is not None:  # the valid files' results are written whatever the rest did
        meta = {"corpus": str(corpus_dir), "id_glob": id_glob, "seed": seed}
        for path in write_outputs(out_dir, results, meta):
            console.print(f"wrote {path}")
    if invalid:  # a corpus file was unreadable or malformed: say so in the exit status
        click.echo(
            f"{len(invalid)} of {len(results)} corpus files invalid: exit {EXIT_INCOMPLETE}",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_INCOMPLETE)
