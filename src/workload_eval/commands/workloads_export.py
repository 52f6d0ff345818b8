"""``workload-eval workloads export``: a prepared workload and schedule as a trace file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workload_eval.commands.run import schedule_of_options
from workload_eval.schedules import RATE_KINDS, SCHEDULE_KINDS


@click.command("export")
@click.argument("name")
@click.option("--model", "-m", required=True, help="Model whose tokenizer prepares the workload.")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trace file: .csv or .jsonl (optionally .gz).",
)
@click.option("--schedule", "schedule_kind", type=click.Choice(SCHEDULE_KINDS))
@click.option("--num-requests", "-n", type=click.IntRange(min=1), help="Requests to export.")
@click.option("--request-rate", type=float, help="Requests (sessions) per second.")
@click.option("--duration", type=float, help="Seconds of arrivals.")
@click.option("--burstiness", type=float, help="Gamma shape: <1 burstier, 1 = Poisson.")
@click.option("--time-scale", type=float, help="Trace replay speed-up.")
@click.option("--think-time", type=float, help="Sessions: seconds between reply and next turn.")
@click.option("--think-time-dist", type=click.Choice(["fixed", "exponential"]), default="fixed")
@click.option("--session-arrival", type=click.Choice(RATE_KINDS), default="poisson-exp")
@click.option("--max-model-len", type=click.IntRange(min=2), default=2048, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sampling", type=click.Choice(["first", "random"]), default="first")
@click.option("--output-len-model", metavar="MODEL", help="reference | eos:TOKENS | recorded:DIR.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tokenizer-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--source", type=click.Choice(["auto", "hub", "local", "profile"]), default="auto")
def command(name: str, model: str, out: Path, **o: Any) -> None:
    """Write arrival_s,prompt_len,output_len[,session_id,turn,prefix_group,...] rows.

    \b
    The file is itself a workload (a trace): replay it with
      workload-eval run --workload trace.csv --schedule trace ...
    """
    from workload_eval.commands.workloads import _warnings_as_lines
    from workload_eval.schedules import build_schedule, parse_schedule, request_count
    from workload_eval.workloads import load_workload
    from workload_eval.workloads.export import write_trace

    spec = parse_schedule(schedule_of_options(o), where="schedule")
    with _warnings_as_lines():
        df = load_workload(
            name,
            model,
            num_requests=request_count(spec, o["seed"]),
            max_model_len=o["max_model_len"],
            seed=o["seed"],
            sampling=o["sampling"],
            data_dir=o["data_dir"],
            tokenizer_dir=o["tokenizer_dir"],
            source=o["source"],
            output_len_model=o["output_len_model"],
        )
        schedule = build_schedule(spec, df, seed=o["seed"])
    write_trace(schedule, out)
    click.echo(f"wrote {out} ({len(schedule):,} requests, schedule {spec.kind})")
