"""``workload-eval capacity``: the highest request rate that meets every SLO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workload_eval import paper
from workload_eval.commands.options import (
    check_kv_size,
    engine_shape_options,
    ignore_eos_option,
    max_requests_option,
    parse_engine_options,
    target_options,
    workload_source_options,
)
from workload_eval.errors import UserError

RATE_KINDS = ("poisson", "poisson-exp", "gamma", "constant", "sessions")


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
    type=click.Choice(RATE_KINDS),
    default="poisson",
    show_default=True,
    help="Arrival process whose rate is searched.",
)
@click.option(
    "--duration",
    type=float,
    default=paper.ONLINE_DURATION_S,
    show_default=True,
    help="Seconds of arrivals per probe.",
)
@click.option("--burstiness", type=float, help="Gamma shape (with --schedule gamma).")
@click.option(
    "--slo",
    "slos",
    multiple=True,
    required=True,
    metavar="METRIC<=VALUE",
    help=f"Objective on a run summary metric, e.g. {paper.SLO_TEXT} (the paper's) "
    "or ttft_p99<=2 (seconds). Repeatable: every SLO must hold.",
)
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
    "--repeat-band",
    type=float,
    default=0.1,
    show_default=True,
    help="Run the extra seeds only when a metric is within this fraction of its "
    "bound (negative: always run every seed).",
)
@engine_shape_options
@click.option(
    "--engine-option",
    "--option",
    "engine_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Engine option (e.g. perf_profile=p.json, base_url=...). Repeatable.",
)
@workload_source_options
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
        --slo "normalized_latency_p95<=0.1875" --rule seed-grid --rates 27:31:0.5
    """
    import time

    from workload_eval import interrupts
    from workload_eval.console import stderr_console, stdout_console
    from workload_eval.experiments.capacity import find_capacity
    from workload_eval.experiments.store import ResultStore
    from workload_eval.experiments.sweep import task_evaluator
    from workload_eval.limits import set_max_requests
    from workload_eval.storage import ensure_writable_dir

    set_max_requests(o["max_requests"])
    task = build_task(o)
    search = task.make_search()
    store = ResultStore(ensure_writable_dir(o["out"])) if o["out"] else None
    if store is not None:
        store.cleanup()
    console = stdout_console()
    metrics = list(dict.fromkeys(s.metric for s in task.slos))

    def on_probe(rate: float, seed: int, m: dict[str, Any], passed: bool) -> None:
        shown = "  ".join(f"{k}={_num(m.get(k))}" for k in metrics)
        console.print(
            f"rate {rate:>9.4g} req/s  seed {seed}  {shown}  {'meets' if passed else 'violates'}"
        )

    t0 = time.perf_counter()
    try:
        result = find_capacity(task_evaluator(task, store), search, on_probe=on_probe)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the probes that finished are stored
        kept = f"; the finished probes are stored in {o['out']}" if store is not None else ""
        stderr_console().print(f"interrupted{kept}: run the same command again to resume")
        raise SystemExit(interrupts.exit_code()) from None
    wall = time.perf_counter() - t0
    _print_rates(result, metrics)
    limit = " (the search's limit: widen --rates / max rate)" if result.censored else ""
    bracket = f"; next rate up fails: {result.upper:g}" if result.upper is not None else ""
    console.print(
        f"capacity: {result.rate:g} req/s{limit} under {', '.join(map(str, task.slos))} "
        f"(rule {result.rule}, {result.num_runs} run(s), {wall:.1f} s{bracket})"
    )
    if store is not None:
        _write(store, task, result)
        console.print(f"wrote {Path(o['out']) / 'capacity.csv'} and the probes' points")


def build_task(o: dict[str, Any]) -> Any:
    """A capacity task (base RunSpec without a rate) from the options."""
    from pydantic import ValidationError

    from workload_eval.engines.base import EngineConfig
    from workload_eval.experiments.capacity import check_metrics, parse_slos
    from workload_eval.experiments.grid import CapacityTask
    from workload_eval.experiments.spec import CapacityOptions
    from workload_eval.preflight import check_run_spec

    check_kv_size(o)
    if o["burstiness"] is not None and o["kind"] != "gamma":
        raise UserError("--burstiness needs --schedule gamma")
    seeds = parse_numbers(o["seeds"], "--seeds", int) or [0]
    rates = parse_numbers(o["rates"], "--rates")
    slos = parse_slos(o["slos"])
    check_metrics(slos)
    schedule: dict[str, Any] = {"kind": o["kind"], "duration": o["duration"]}
    if o["burstiness"] is not None:
        schedule["burstiness"] = o["burstiness"]
    try:
        config = EngineConfig(
            model=o["model"],
            gpu=o["gpu"],
            kv_blocks=o["kv_blocks"],
            gpu_memory_utilization=o["gpu_memory_utilization"],
            block_size=o["block_size"],
            max_num_batched_tokens=o["max_num_batched_tokens"],
            max_num_seqs=o["max_num_seqs"],
            max_model_len=o["max_model_len"],
            policy=o["policy"],
            options={**ignore_eos_option(o), **parse_engine_options(o["engine_options"])},
        )
        options = CapacityOptions(
            rule=o["rule"],
            tolerance=o["tolerance"],
            start=o["start"],
            rates=rates,
            aggregate=o["aggregate"],
            repeat_band=None if o["repeat_band"] < 0 else o["repeat_band"],
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        raise UserError(f"--{field.replace('_', '-')}: {err['msg']}") from None
    base = {
        "engine": o["engine"],
        "engine_config": config.model_dump(mode="json"),
        "workload": o["workload"],
        "schedule": schedule,
        "seed": 0,
        "source": o["workload_source"],
    }
    if o.get("output_len_model") is not None:
        base["output_len_model"] = o["output_len_model"]
    for k in ("data_dir", "tokenizer_dir"):
        if o[k] is not None:
            base[k] = o[k]
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


def _print_rates(result: Any, metrics: list[str]) -> None:
    from rich.table import Table

    from workload_eval.console import stdout_console

    table = Table(title="Probed rates", header_style="bold")
    for c in ("rate (req/s)", "seeds", *metrics, "verdict"):
        table.add_column(c, justify="left" if c == "verdict" else "right")
    for row in result.rates.to_dict("records"):
        table.add_row(
            f"{row['rate']:g}",
            str(row["seeds"]),
            *(_num(row[m]) for m in metrics),
            "meets" if row["passed"] else "violates",
        )
    stdout_console().print(table)


def _write(store: Any, task: Any, result: Any) -> None:
    import pandas as pd

    from workload_eval.experiments.grid import point_key
    from workload_eval.experiments.store import flatten_spec, write_table

    cfg = flatten_spec({k: v for k, v in task.base.items() if k != "seed"})
    cfg.pop("engine_seed", None)
    row = {"task": task.key, **cfg, **result.as_row(), "seeds": ",".join(map(str, task.seeds))}
    write_table(pd.DataFrame([row]), store.root / "capacity")
    probes = result.probes[["rate", "seed", "passed"]].copy()
    probes.insert(0, "task", task.key)
    probes["key"] = [
        point_key(task.run_spec(r, s)) for r, s in zip(probes["rate"], probes["seed"], strict=True)
    ]
    write_table(probes, store.root / "capacity_probes")
    store.rebuild_index()
