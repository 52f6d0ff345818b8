"""``workload-eval capacity``: the highest request rate that meets every SLO."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from workload_eval import paper
from workload_eval.analysis.intervals import CONFIDENCE_LEVEL
from workload_eval.commands.options import (
    engine_config,
    engine_flag_options,
    engine_shape_options,
    max_requests_option,
    parse_slo_flags,
    slo_option,
    target_options,
    workload_fields,
    workload_options,
)
from workload_eval.errors import UserError
from workload_eval.schedules import RATE_DRIVEN_KINDS

if TYPE_CHECKING:
    from workload_eval.experiments.capacity import CapacityResult, Evaluator
    from workload_eval.experiments.grid import CapacityTask
    from workload_eval.experiments.store import ResultStore

SEARCHED_KINDS = (*RATE_DRIVEN_KINDS, "concurrency")


def parse_numbers(text: str | None, option: str, cast: type = float) -> list[Any] | None:
    """``a,b,c`` or ``start:stop:step`` (inclusive)."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            from workload_eval.experiments.spec import RateRange

            return [cast(v) for v in RateRange(start=start, stop=stop, step=step).values()]
        return [cast(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected numbers a,b,c or start:stop:step") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@target_options
@click.option(
    "--schedule",
    "kind",
    type=click.Choice(SEARCHED_KINDS),
    default="poisson",
    show_default=True,
    help="Arrival process whose rate is searched; concurrency: the most closed-loop users "
    "(with --num-requests per probe).",
)
@click.option(
    "--num-requests", type=int, help="concurrency: requests per probe (the users share them)."
)
@click.option(
    "--think-time", type=float, help="concurrency: a user's pause between a finish and its next."
)
@click.option(
    "--duration",
    type=float,
    default=paper.ONLINE_DURATION_S,
    show_default=True,
    help="Seconds of arrivals per probe.",
)
@click.option("--burstiness", type=float, help="Gamma shape (with --schedule gamma).")
@slo_option(required=True, help_text="Every bound on a run metric must hold.")
@click.option(
    "--rule",
    type=click.Choice(["bisect", "seed-grid"]),
    default="bisect",
    show_default=True,
    help=f"bisect: bracket then bisect; seed-grid: the paper's rule on --rates "
    f"({paper.CAPACITY_RULE}).",
)
@click.option(
    "--rates",
    help="seed-grid: the grid (a,b,c or start:stop:step); "
    "bisect: its lowest value is the first probe.",
)
@click.option(
    "--start", type=float, default=1.0, show_default=True, help="bisect: first rate probed (req/s)."
)
@click.option(
    "--tolerance",
    type=float,
    default=0.02,
    show_default=True,
    help="bisect: stop when the bracket is within this fraction.",
)
@click.option(
    "--seeds",
    default="0",
    show_default=True,
    help="Seeds; with several, a rate is judged by the majority (see --aggregate).",
)
@click.option(
    "--aggregate",
    type=click.Choice(["majority", "mean", "all"]),
    default="majority",
    show_default=True,
    help="How several seeds' runs make one verdict.",
)
@click.option(
    "--confidence",
    default=str(CONFIDENCE_LEVEL),
    show_default=True,
    metavar="LEVEL|none",
    help="A rate meets the SLOs only when each bound holds over this confidence interval "
    "of its metric (the answer is then an interval: met .. violated); 'none' judges the "
    "point estimates, as the paper did.",
)
@click.option(
    "--repeat-band",
    type=float,
    default=0.1,
    show_default=True,
    help="Run the extra seeds only when a metric is within this fraction of its "
    "bound (negative: always run every seed).",
)
@engine_shape_options
@engine_flag_options
@workload_options
@max_requests_option
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Store every probe here (points/, index.*, capacity.*); re-running resumes.",
)
def command(**o: Any) -> None:
    """Find the highest request rate at which every --slo holds; print every probe.

    \b
      workload-eval capacity --model opt-13b --kv-blocks 643 --workload alpaca \\
        --slo "normalized_latency_p95<=0.1875"
      workload-eval capacity --model opt-13b --kv-blocks 643 --workload alpaca \\
        --slo "normalized_latency_p95<=0.1875" --rule seed-grid --rates 20:26:0.5
    """
    import time

    from workload_eval import interrupts
    from workload_eval.console import stderr_console, stdout_console
    from workload_eval.experiments.capacity import find_capacity
    from workload_eval.experiments.grid import confidence_floor
    from workload_eval.experiments.store import ResultStore
    from workload_eval.limits import set_max_requests
    from workload_eval.slo import run_level
    from workload_eval.storage import ensure_writable_dir

    set_max_requests(o["max_requests"])
    task = build_task(o)
    search = task.make_search()
    store = ResultStore(ensure_writable_dir(o["out"])) if o["out"] else None
    if store is not None:
        store.cleanup()
    console = stdout_console()
    metrics = list(dict.fromkeys(s.metric for s in run_level(task.slos)))

    users = task.searched == "concurrency"

    def on_probe(rate: float, seed: int, m: dict[str, Any], passed: bool) -> None:
        verdict = search.judge(m)
        shown = "  ".join(
            f"{k}={_num(m.get(k))}{_interval(verdict.intervals.get(k), m.get(k))}" for k in metrics
        )
        what = f"users {rate:>6.0f}" if users else f"rate {rate:>9.4g} req/s"
        console.print(f"{what}  seed {seed}  {shown}  {verdict.label}", soft_wrap=True)

    t0 = time.perf_counter()
    try:
        with interrupts.unwrapped():
            result = find_capacity(task_evaluator(task, store), search, on_probe=on_probe)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the probes that finished are stored
        kept = f"; the finished probes are stored in {o['out']}" if store is not None else ""
        stderr_console().print(f"interrupted{kept}: run the same command again to resume")
        raise SystemExit(interrupts.exit_code()) from None
    wall = time.perf_counter() - t0
    _print_rates(result, metrics, users=users)
    floor = 0.0 if users else confidence_floor(task.slos, task.options.confidence, o["duration"])
    limit = _limit_note(result, floor, o["duration"], task.options.confidence)
    up = "one more user fails" if users else "next rate up fails"
    bracket = f"; {up}: {result.upper:g}" if result.upper is not None else ""
    unit = "users (closed loop)" if users else "req/s"
    console.print(
        f"capacity: {result.rate:g} {unit}{limit}{_answer_interval(result, unit)} under "
        f"{', '.join(map(str, task.slos))} "
        f"(rule {result.rule}, {result.num_runs} run(s), {wall:.1f} s{bracket})",
        soft_wrap=True,
    )
    if store is not None:
        _write(store, task, result)
        console.print(f"wrote {Path(o['out']) / 'capacity.csv'} and the probes' points")


def build_task(o: dict[str, Any]) -> CapacityTask:
    """A capacity task (base RunSpec without a rate) from the options."""
    from pydantic import ValidationError

    from workload_eval.experiments.capacity import check_objectives
    from workload_eval.experiments.grid import CapacityTask
    from workload_eval.experiments.spec import CapacityOptions
    from workload_eval.experiments.verdicts import parse_confidence
    from workload_eval.preflight import check_run_spec
    from workload_eval.slo import per_request

    if o["burstiness"] is not None and o["kind"] != "gamma":
        raise UserError("--burstiness needs --schedule gamma")
    seeds = parse_numbers(o["seeds"], "--seeds", int) or [0]
    rates = parse_numbers(o["rates"], "--rates")
    slos = parse_slo_flags(o["slo"])
    check_objectives(slos)
    schedule: dict[str, Any] = {"kind": o["kind"], "duration": o["duration"]}
    if o["kind"] == "concurrency":
        if o.get("num_requests") is None:
            raise UserError("--schedule concurrency needs --num-requests N (requests per probe)")
        schedule = {"kind": "concurrency", "num_requests": o["num_requests"]}
        if o.get("think_time") is not None:
            schedule["think_time"] = o["think_time"]
    elif o.get("num_requests") is not None or o.get("think_time") is not None:
        raise UserError("--num-requests and --think-time apply to --schedule concurrency only")
    if o["burstiness"] is not None:
        schedule["burstiness"] = o["burstiness"]
    config = engine_config(o)
    try:
        options = CapacityOptions(
            rule=o["rule"],
            tolerance=o["tolerance"],
            start=o["start"],
            rates=rates,
            aggregate=o["aggregate"],
            repeat_band=None if o["repeat_band"] < 0 else o["repeat_band"],
            confidence=parse_confidence(o.get("confidence", CONFIDENCE_LEVEL)),
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        raise UserError(f"--{field.replace('_', '-')}: {err['msg']}") from None
    base: dict[str, Any] = {
        "engine": o["engine"],
        "engine_config": config.model_dump(mode="json"),
        "workload": o["workload"],
        "schedule": schedule,
        "seed": 0,
        **workload_fields(o),
    }
    if per_request(slos):  # so every probe's summary has goodput and slo_attainment
        base["slo"] = [str(s) for s in per_request(slos)]
    task = CapacityTask("capacity", o["engine"], base, tuple(slos), options, tuple(seeds))
    try:
        probe = task.run_spec(options.start, seeds[0])  # fail on bad settings before any run
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    check_run_spec(probe)
    task.make_search()
    return task


def _num(v: Any) -> str:
    from workload_eval.console import fmt

    return fmt(v)


def _interval(bounds: tuple[float, float] | None, value: Any) -> str:
    """`` [low, high]`` when a verdict used an interval (not a bare value)."""
    import math

    if bounds is None or bounds[0] == bounds[1] == value:
        return ""
    if not all(math.isfinite(b) for b in bounds):
        return " [too few requests for an interval]"
    return f" [{_num(bounds[0])}, {_num(bounds[1])}]"


def _limit_note(
    result: CapacityResult, floor: float, duration: float, confidence: float | None
) -> str:
    """Why a censored answer stopped where it did. The confidence floor is named only when
    the search went down to it: a seed grid whose lowest rates already fail stopped at the
    grid's end, not at the floor, and blaming the probe length would mislead."""
    if not result.censored:
        return ""
    lowest = float(result.rates["rate"].min()) if len(result.rates) else math.inf
    if result.lower is None and confidence is not None and floor > 0 and lowest <= floor * 1.001:
        return (
            f" (below {floor:.4g} req/s a {duration:g} s probe holds too few requests "
            f"for a {confidence:.0%} interval: a longer --duration, or --confidence none)"
        )
    return " (the search's limit: widen --rates / max rate)"


def _answer_interval(result: CapacityResult, unit: str) -> str:
    """The answer's interval at its confidence: met up to the answer, violated from
    ``high``; nothing without a confidence (the paper's point answer)."""
    if result.confidence is None:
        return ""
    high = f"{result.high:g}" if result.high is not None else "(none found)"
    return (
        f", interval {result.rate:g}-{high} {unit.split()[0]} at {result.confidence:.0%} "
        "confidence (met up to the first, violated from the second)"
    )


def _print_rates(result: Any, metrics: list[str], *, users: bool = False) -> None:
    from rich.table import Table

    from workload_eval.console import stdout_console

    table = Table(title="Probed users" if users else "Probed rates", header_style="bold")
    for c in ("users" if users else "rate (req/s)", "seeds", *metrics, "verdict"):
        table.add_column(c, justify="left" if c == "verdict" else "right")
    level = "" if result.confidence is None else f" ({result.confidence:.0%})"
    for row in result.rates.to_dict("records"):
        table.add_row(
            f"{row['rate']:g}",
            str(row["seeds"]),
            *(
                _num(row[m])
                + _interval(
                    (row[f"{m}_ci_low"], row[f"{m}_ci_high"]) if f"{m}_ci_low" in row else None,
                    row[m],
                )
                for m in metrics
            ),
            row["verdict"] + level,
        )
    stdout_console().print(table)


def _write(store: ResultStore, task: CapacityTask, result: CapacityResult) -> None:
    import pandas as pd

    from workload_eval.experiments.grid import point_key
    from workload_eval.experiments.store import write_table
    from workload_eval.results import search_columns

    probes = result.probes[["rate", "seed", "passed"]].copy()
    probes.insert(0, "task", task.key)
    probes["key"] = [
        point_key(task.run_spec(r, s)) for r, s in zip(probes["rate"], probes["seed"], strict=True)
    ]
    kv = store.index_row(probes["key"].iloc[0])["kv_blocks"] if len(probes) else None
    cfg = search_columns(
        task.run_spec(task.options.start, task.seeds[0]),
        int(kv) if isinstance(kv, int | float) else None,
    )
    row = {
        "task": task.key,
        **cfg,
        **result.as_row(),
        "searched": task.searched,
        "seeds": ",".join(map(str, task.seeds)),
    }
    write_table(pd.DataFrame([row]), store.root / "capacity")
    write_table(probes, store.root / "capacity_probes")
    store.rebuild_index()


def task_evaluator(task: CapacityTask, store: ResultStore | None = None) -> Evaluator:
    """``evaluate(rate, seed) -> summary`` running ``task``'s points in this process;
    with a store, stored points are reused and new ones stored (resumable searches)."""
    import json

    from workload_eval.experiments.executors import run_point
    from workload_eval.experiments.grid import point_key

    def evaluate(rate: float, seed: int) -> dict[str, Any]:
        spec = task.run_spec(rate, seed)
        key = point_key(spec)
        if store is not None and store.has(key):
            return store.summary(key)
        payload = run_point(spec.model_dump_json())
        if payload.get("error") is not None:
            raise UserError(f"rate {rate:g}, seed {seed}: {payload['error']}")
        if store is not None:
            store.write_point(spec, payload["files"], wall_s=payload.get("wall_s"))
        return json.loads(payload["files"]["summary.json"])

    return evaluate
