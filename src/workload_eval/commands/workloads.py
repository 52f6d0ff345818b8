"""``workload-eval workloads``: list the catalog, describe a workload, plot Figure 1."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from workload_eval.commands.options import max_requests_option
from workload_eval.errors import UserError


def _parse_fields(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        role, sep, column = item.partition("=")
        if not sep or not role or not column:
            raise UserError(f"--field {item!r}: expected ROLE=COLUMN, e.g. output=response")
        out[role.strip()] = column.strip()
    return out


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Warnings become one 'warning: ...' line on stderr, never a source excerpt."""

    def show(message: Any, *_: Any, **__: Any) -> None:
        click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def _data_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--data-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Folder laid out like ../shared/datasets [env WORKLOAD_EVAL_DATA_DIR].",
            ),
            click.option(
                "--tokenizer-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Folder laid out like ../shared/tokenizers [env WORKLOAD_EVAL_TOKENIZER_DIR].",
            ),
            click.option(
                "--source",
                type=click.Choice(["auto", "hub", "local", "profile"]),
                default="auto",
                show_default=True,
                help="auto: local files, else the hub, else shipped length profiles.",
            ),
            click.option(
                "--data-file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Your own dataset file (JSON, JSONL, CSV, Parquet, .gz) for the "
                "workload's builder.",
            ),
            click.option(
                "--field",
                "fields",
                multiple=True,
                metavar="ROLE=COLUMN",
                help="Map a role of the workload to a column of your file (e.g. output=response).",
            ),
        ]
    ):
        f = opt(f)
    return f


@click.group(name="workloads", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """List, describe, plot and export the workloads."""


def _register_export() -> None:
    from workload_eval.commands.workloads_export import command as export_cmd

    command.add_command(export_cmd)


@command.command("list")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder laid out like ../shared/datasets [env WORKLOAD_EVAL_DATA_DIR].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
def list_cmd(data_dir: Path | None, as_json: bool) -> None:
    """Name, use case, source and record count of every workload."""
    from workload_eval.workloads import list_workloads

    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir}: no such folder")

    with _warnings_as_lines():
        df = list_workloads(data_dir=data_dir)
    if as_json:
        rows = df.astype(object).where(df.notna(), None).to_dict("records")
        click.echo(json.dumps(rows))
        return
    from rich.table import Table

    table = Table(title="Workloads")
    for col in ("name", "use case", "source", "records", "requests built as"):
        table.add_column(col, justify="right" if col == "records" else "left")
    for r in df.itertuples():
        records = "?" if r.records is None or str(r.records) == "<NA>" else f"{int(r.records):,}"
        table.add_row(r.name, r.use_case, r.source, records, r.builds)
    _console().print(table)


def _console() -> Any:
    """Rich console; wide when piped so tables stay one line per row."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 150)


def _load(name: str, model: str, **kw: Any) -> Any:
    from workload_eval.workloads import load_workload

    return load_workload(name, model, **kw)


@command.command("describe")
@click.argument("name")
@click.option("--model", "-m", required=True, help="Model name or hub id (e.g. opt-13b).")
@click.option(
    "--num-requests",
    "-n",
    type=click.IntRange(min=1),
    help="Select N requests as the seed did (default: every request that fits).",
)
@click.option("--max-model-len", type=click.IntRange(min=2), default=2048, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--sampling",
    type=click.Choice(["first", "random"]),
    default="first",
    show_default=True,
    help="first: first N then shuffle (seed); random: uniform.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--output-len-model", metavar="MODEL", help="reference | eos:TOKENS | recorded:RUN_DIR."
)
@_data_options
@max_requests_option
def describe_cmd(
    name: str,
    model: str,
    num_requests: int | None,
    max_model_len: int,
    seed: int,
    sampling: str,
    as_json: bool,
    output_len_model: str | None,
    data_dir: Path | None,
    tokenizer_dir: Path | None,
    source: str,
    data_file: Path | None,
    fields: tuple[str, ...],
    max_requests: int | None,
) -> None:
    """Input/output token statistics of a workload for a model.

    NAME is a catalog name, a use-case family, a workload file (.yaml/.json), an inline
    spec (synthetic:prompt_tokens=512,output_tokens=256) or a lengths/trace file.
    """
    from workload_eval.limits import set_max_requests
    from workload_eval.workloads import length_stats

    set_max_requests(max_requests)

    with _warnings_as_lines():
        df = _load(
            name,
            model,
            num_requests=num_requests,
            max_model_len=max_model_len,
            seed=seed,
            sampling=sampling,
            data_dir=data_dir,
            tokenizer_dir=tokenizer_dir,
            source=source,
            data_file=data_file,
            fields=_parse_fields(fields),
            output_len_model=output_len_model,
        )
    stats = length_stats(df)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "workload": df.attrs["workload"],
                    "model": df.attrs["model"],
                    "num_requests": len(df),
                    **stats,
                }
            )
        )
        return
    from rich.table import Table

    a = df.attrs
    table = Table(
        title=f"{a['workload']} · {a['model']} · {len(df):,} requests",
        caption=f"source: {a['source']} ({Path(a['where']).name}); "
        f"tokenizer: {a['tokenizer']}; max_model_len {max_model_len}",
    )
    table.add_column("tokens")
    for key in ("mean", "p50", "p90", "p99", "max", "count"):
        table.add_column(key, justify="right")
    for label, key in (("input", "input_len"), ("output", "output_len")):
        s = stats[key]
        table.add_row(
            label,
            f"{s['mean']:.1f}",
            f"{s['p50']:.0f}",
            f"{s['p90']:.0f}",
            f"{s['p99']:.0f}",
            f"{s['max']}",
            f"{s['count']}",
        )
    _console().print(table)


@command.command("plot")
@click.argument("names", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="Model name or hub id (e.g. opt-13b).")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .png or .pdf.",
)
@click.option(
    "--num-requests",
    "-n",
    type=click.IntRange(min=1),
    help="Requests per workload (default: all that fit, as the seed's Figure 1).",
)
@click.option(
    "--max-model-len",
    type=click.IntRange(min=2),
    default=4096,
    show_default=True,
    help="The seed's Figure 1 kept pairs with input + output < 4096.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tokenizer-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Choice(["auto", "hub", "local", "profile"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--output-len-model", metavar="MODEL", help="reference | eos:TOKENS | recorded:RUN_DIR."
)
@max_requests_option
def plot_cmd(
    names: tuple[str, ...],
    model: str,
    out: Path,
    num_requests: int | None,
    max_model_len: int,
    seed: int,
    data_dir: Path | None,
    tokenizer_dir: Path | None,
    source: str,
    output_len_model: str | None,
    max_requests: int | None,
) -> None:
    """The seed's Figure 1: CDFs of input and output lengths (log x, mean marked).

    NAMES are any workloads `describe` accepts.
    """
    from workload_eval.limits import set_max_requests
    from workload_eval.workloads import plot_length_cdfs

    set_max_requests(max_requests)

    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UserError(f"--out {out}: expected a .png or .pdf file name")
    with _warnings_as_lines():
        frames = {
            n: _load(
                n,
                model,
                num_requests=num_requests,
                max_model_len=max_model_len,
                seed=seed,
                data_dir=data_dir,
                tokenizer_dir=tokenizer_dir,
                source=source,
                output_len_model=output_len_model,
            )
            for n in names
        }
    frames = {df.attrs["workload"]: df for df in frames.values()}
    plot_length_cdfs(frames, out)
    click.echo(f"wrote {out}")


_register_export()
