"""``workload-eval run``: one workload and schedule on one engine; writes a run folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from workload_eval.analysis.slices import check_width
from workload_eval.commands.options import (
    engine_config,
    engine_flag_options,
    engine_shape_options,
    max_requests_option,
    parse_engine_options,
    parse_slo_flags,
    slice_seconds_option,
    slo_option,
    target_options,
    workload_fields,
    workload_options,
)
from workload_eval.errors import EXIT_INCOMPLETE, UserError
from workload_eval.limits import set_max_requests
from workload_eval.schedules import RATE_KINDS, SCHEDULE_KINDS

if TYPE_CHECKING:
    from workload_eval.runner import RunSpec

# pydantic field -> the CLI option that set it, so errors name what the user typed
_OPTION_OF = {
    "rate": "--request-rate",
    "think_time": "--think-time",
    "think_time_dist": "--think-time-dist",
    "arrival": "--session-arrival",
    "kind": "--schedule",
}


def _option(field: str) -> str:
    return _OPTION_OF.get(field, "--" + field.replace("_", "-"))


def _validation_error(e: ValidationError) -> UserError:
    err = e.errors()[0]
    # the schedule's own name and kind tag are not options: a whole-schedule error has no
    # field (a field may share a kind's name: concurrency.concurrency is --concurrency)
    loc = [str(p) for p in err["loc"]]
    if loc[:1] == ["schedule"]:
        loc = loc[1:]
    if loc[:1] and loc[0] in SCHEDULE_KINDS:
        loc = loc[1:]
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:
        return UserError(msg)
    return UserError(f"{_option(loc[-1])}: {msg} (got {err.get('input')!r})")


def schedule_of_options(o: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule spec of a command's parsed schedule flags (``--schedule`` ...)."""
    return schedule_from_options(
        o["schedule_kind"],
        num_requests=o["num_requests"],
        request_rate=o["request_rate"],
        duration=o["duration"],
        burstiness=o["burstiness"],
        time_scale=o["time_scale"],
        think_time=o["think_time"],
        think_time_dist=o["think_time_dist"],
        session_arrival=o["session_arrival"],
        concurrency=o.get("concurrency"),  # a closed loop: not every command has it
    )


def schedule_from_options(
    kind: str | None,
    *,
    num_requests: int | None,
    request_rate: float | None,
    duration: float | None,
    burstiness: float | None,
    time_scale: float | None,
    think_time: float | None,
    think_time_dist: str,
    session_arrival: str,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """The schedule spec the options describe; inconsistent combinations are UserErrors."""
    if kind is None:
        if concurrency is not None:
            kind = "concurrency"
        elif request_rate is not None:
            kind = "gamma" if burstiness is not None else "poisson"
        elif time_scale is not None:
            kind = "trace"
        else:
            kind = "offline"
    given = {
        "--request-rate": request_rate,
        "--duration": duration,
        "--burstiness": burstiness,
        "--time-scale": time_scale,
        "--think-time": think_time,
        "--concurrency": concurrency,
    }
    allowed = {
        "offline": set(),
        "concurrency": {"--concurrency", "--think-time"},
        "trace": {"--time-scale", "--duration"},
        "sessions": {"--request-rate", "--duration", "--burstiness", "--think-time"},
        "gamma": {"--request-rate", "--duration", "--burstiness"},
    }.get(kind, {"--request-rate", "--duration"})
    for opt, value in given.items():
        if value is not None and opt not in allowed:
            raise UserError(f"{opt} does not apply to --schedule {kind}")
    if kind == "concurrency" and concurrency is None:
        raise UserError("--schedule concurrency needs --concurrency N (users)")
    if kind in (*RATE_KINDS, "sessions") and request_rate is None:
        raise UserError(f"--schedule {kind} needs --request-rate")
    if kind in RATE_KINDS and duration is None and num_requests is None:
        raise UserError("--request-rate needs --duration SECONDS (or --num-requests N)")
    spec: dict[str, Any] = {"kind": kind, "num_requests": num_requests}
    if kind in RATE_KINDS or kind == "sessions":
        spec.update(rate=request_rate, duration=duration)
    if kind == "trace":
        spec.update(duration=duration, time_scale=1.0 if time_scale is None else time_scale)
    if burstiness is not None:
        spec["burstiness"] = burstiness
    if kind == "sessions":
        spec.update(
            think_time=think_time or 0.0, think_time_dist=think_time_dist, arrival=session_arrival
        )
    if kind == "concurrency":
        spec.update(
            concurrency=concurrency, think_time=think_time or 0.0, think_time_dist=think_time_dist
        )
    return spec


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@target_options
@click.option(
    "--schedule",
    "schedule_kind",
    type=click.Choice(SCHEDULE_KINDS),
    help="Arrival schedule [default: offline, or poisson with --request-rate].",
)
@click.option("--num-requests", type=int, help="Requests (offline) or a cap on arrivals.")
@click.option(
    "--request-rate",
    type=float,
    help="Requests per second (sessions per second with --schedule sessions).",
)
@click.option("--duration", type=float, help="Seconds of arrivals (online).")
@click.option("--burstiness", type=float, help="Gamma shape: <1 burstier, 1 = Poisson.")
@click.option("--time-scale", type=float, help="Trace replay speed-up (2 = twice as fast).")
@click.option(
    "--concurrency",
    type=int,
    help="Closed loop: N users, each sends its next request when its previous one finished "
    "(--schedule concurrency; not --max-concurrency, which caps an open loop).",
)
@click.option(
    "--think-time",
    type=float,
    help="Sessions: seconds between reply and next turn; concurrency: a user's pause "
    "between a finish and its next request.",
)
@click.option(
    "--think-time-dist",
    type=click.Choice(["fixed", "exponential"]),
    default="fixed",
    show_default=True,
    help="Sessions, concurrency: think time fixed, or exponential with that mean.",
)
@click.option(
    "--session-arrival",
    type=click.Choice(RATE_KINDS),
    default="poisson-exp",
    show_default=True,
    help="Sessions: process of first-turn arrivals.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@engine_shape_options
@engine_flag_options
@workload_options
@slo_option(help_text="Service-level objective: goodput and slo_attainment, slo_met.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar [default: when stderr is a terminal].",
)
@slice_seconds_option("Window of the time slices (slices.parquet).")
@max_requests_option
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder: summary.json, requests.parquet, steps.parquet, slices.parquet.",
)
def command(**o: Any) -> None:
    """Run one workload and schedule on an engine; write DIR and print a table.

    \b
    Offline, the seed's N requests at t=0:
      workload-eval run --model opt-13b --gpu a100-40gb --kv-blocks 643 \\
        --workload alpaca --num-requests 1000 --out runs/alpaca-offline
    Online, the seed's Poisson process (10 ms quanta):
      workload-eval run --model opt-13b --kv-blocks 643 --workload alpaca \\
        --request-rate 28 --duration 600 --out runs/alpaca-28
    Closed loop, 64 users each sending its next request when the last one finished:
      workload-eval run --model opt-13b --kv-blocks 643 --workload alpaca \\
        --concurrency 64 --num-requests 2000 --out runs/alpaca-c64
    """
    from workload_eval import interrupts
    from workload_eval.console import (
        print_summary,
        progress_default,
        stderr_console,
        stdout_console,
    )
    from workload_eval.runner import execute, save_run
    from workload_eval.storage import ensure_writable_dir
    from workload_eval.verdict import judge, print_verdict

    set_max_requests(o["max_requests"])
    check_width(o["slice_seconds"])
    spec = build_spec(o)
    ensure_writable_dir(o["out"])
    progress = progress_default() if o["progress"] is None else o["progress"]
    result = execute(spec, progress=progress, slice_seconds=o["slice_seconds"])
    with interrupts.deferred() as held:  # a signal now stops after the files are written
        save_run(result, o["out"])
    title = f"{spec.engine} · {spec.workload} · {spec.schedule.kind} · {spec.engine_config.model}"
    print_summary(result.summary, title=title)
    verdict = judge(result.records)
    print_verdict(verdict, stdout_console())
    click.echo(
        f"wrote {Path(o['out']) / 'summary.json'}, requests.parquet, steps.parquet, slices.parquet"
    )
    if result.interrupted or result.stop_requested or held.signalled:
        what = "gathered so far" if result.interrupted else "of the finished run"
        stderr_console().print(f"interrupted: the results {what} were saved")
        raise click.exceptions.Exit(interrupts.exit_code())  # 130 Ctrl-C, 143 SIGTERM
    if verdict.nothing_succeeded:
        stderr_console().print(f"no request succeeded: exit {EXIT_INCOMPLETE}", highlight=False)
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def build_spec(o: dict[str, Any]) -> RunSpec:
    """A RunSpec from the parsed options (one clear UserError for bad combinations)."""
    from workload_eval.preflight import check_run_spec
    from workload_eval.runner import RunSpec

    schedule = schedule_of_options(o)
    config = engine_config(o, seed=o["seed"])
    try:
        spec = RunSpec(
            engine=o["engine"],
            engine_config=config,
            workload=o["workload"],
            schedule=schedule,
            seed=o["seed"],
            slo=parse_slo_flags(o["slo"]) or None,
            **workload_fields(o),
        )
    except ValidationError as e:
        raise _validation_error(e) from None
    check_run_spec(spec)  # what the engine or the loader would refuse, before any work
    return spec


__all__ = [
    "build_spec",
    "command",
    "parse_engine_options",
    "schedule_from_options",
    "schedule_of_options",
]
