"""The paper's measured results: tables shipped in the package, plus any calibration folder.

Shipped (``data/paper/``): the seed artifact's own OPT-13B measurements (MIT licensed), so a
``pip install``ed copy with nothing beside it still compares with the paper; each file names
its source in its ``source`` field (written by ``scripts/build_paper_tables.py``).

A calibration folder adds or overrides tables in the same format (``<model>-offline.json``,
``<model>-online.json``, as in ``../shared/calibration``): a file for the same model and
experiment replaces the shipped one, a new model adds its own. The folder is
``--calibration-dir``, else ``$WORKLOAD_EVAL_CALIBRATION_DIR`` (a missing folder there only
warns: the shipped tables are used), else ``../shared/calibration`` beside the working
directory or the source checkout.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workload_eval.errors import UserError
from workload_eval.inputs import loads_json, read_text

ENV_VAR = "WORKLOAD_EVAL_CALIBRATION_DIR"
Experiment = Literal["offline", "online"]  # the paper's two kinds of table
EXPERIMENTS: tuple[Experiment, ...] = get_args(Experiment)
SHIPPED = "shipped"  # the origin of a table that comes with the package


class OfflineCell(BaseModel):
    """Throughput of the first N requests, all at t = 0."""

    model_config = ConfigDict(extra="forbid")

    request: float = Field(gt=0)  # requests per second
    token: float = Field(gt=0)  # prompt + generated tokens per second


class OnlineCell(BaseModel):
    """Per-request normalized latency, (finish - arrival) / generated tokens, in s/token."""

    model_config = ConfigDict(extra="forbid")

    avg: float = Field(ge=0)
    p95: float = Field(ge=0)


class Scenario(BaseModel):
    """One KV-cache size of one workload."""

    model_config = ConfigDict(extra="forbid")

    kv_blocks: int = Field(gt=0)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    by_num_requests: dict[int, OfflineCell] = Field(default_factory=dict)
    by_request_rate: dict[float, OnlineCell] = Field(default_factory=dict)

    @field_validator("by_num_requests")
    @classmethod
    def _positive_n(cls, v: dict[int, OfflineCell]) -> dict[int, OfflineCell]:
        if any(n <= 0 for n in v):
            raise ValueError("request counts must be positive")
        return v

    @field_validator("by_request_rate")
    @classmethod
    def _positive_rate(cls, v: dict[float, OnlineCell]) -> dict[float, OnlineCell]:
        if any(not r > 0 for r in v):
            raise ValueError("request rates must be positive")
        return v


class PaperTable(BaseModel):
    """One ``<model>-<experiment>.json``; descriptive fields (gpu, engine, notes) are kept."""

    model_config = ConfigDict(extra="allow")

    model: str
    experiment: Experiment
    data: dict[str, list[Scenario]]
    source: str | None = None


@dataclass(frozen=True)
class LoadedTable:
    table: PaperTable
    origin: str  # "shipped" or the file it was read from


@dataclass
class PaperTables:
    """Every table available, by (model, experiment); later sources replaced earlier ones."""

    tables: dict[tuple[str, str], LoadedTable] = field(default_factory=dict)
    calibration_dir: Path | None = None

    def models(self) -> list[str]:
        return sorted({m for m, _ in self.tables})

    def origin(self, model: str, experiment: str) -> str | None:
        t = self.tables.get((model, experiment))
        return t.origin if t is not None else None

    def sources(self) -> list[str]:
        """One line per table: which model, which experiment, from where."""
        return [f"{m} {e}: {t.origin}" for (m, e), t in sorted(self.tables.items())]

    def offline(self) -> pd.DataFrame:
        """model, workload, kv_blocks, num_requests, request_throughput, token_throughput."""
        return self._frame(
            "offline",
            "num_requests",
            ("request_throughput", "token_throughput"),
            lambda sc: ((n, (c.request, c.token)) for n, c in sc.by_num_requests.items()),
        )

    def online(self) -> pd.DataFrame:
        """model, workload, kv_blocks, rate, normalized_latency_mean, normalized_latency_p95."""
        return self._frame(
            "online",
            "rate",
            ("normalized_latency_mean", "normalized_latency_p95"),
            lambda sc: ((r, (c.avg, c.p95)) for r, c in sc.by_request_rate.items()),
        )

    def _frame(
        self,
        experiment: Experiment,
        axis: str,
        metrics: tuple[str, ...],
        cells: Callable[[Scenario], Iterable[tuple[float, tuple[float, ...]]]],
    ) -> pd.DataFrame:
        """One row per cell of every ``experiment`` table: where it was measured (model,
        workload, KV blocks, ``axis``), then its ``metrics``."""
        rows = [
            {"model": m, "workload": w, "kv_blocks": sc.kv_blocks, axis: x}
            | dict(zip(metrics, values, strict=True))
            for (m, e), t in sorted(self.tables.items())
            if e == experiment
            for w, scenarios in t.table.data.items()
            for sc in scenarios
            for x, values in cells(sc)
        ]
        return pd.DataFrame(rows, columns=["model", "workload", "kv_blocks", axis, *metrics])


def canonical_model(name: str) -> str:
    """The catalog's spelling of a model name (``OPT-13B`` -> ``opt-13b``) where it knows it."""
    from workload_eval.models import resolve_model

    try:
        return resolve_model(name).name
    except UserError:
        return name.strip().lower()


def read_table(
    text: str, where: str, *, experiment: str | None = None, model: str | None = None
) -> PaperTable:
    """Parse and validate one table; ``experiment`` (from the file name) must match its own,
    ``model`` (from the file name) is used when the table names none."""
    obj = loads_json(text, where)  # strict: no NaN, no duplicate keys
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object with 'model', 'experiment' and 'data'")
    if experiment is not None:
        obj.setdefault("experiment", experiment)
    if model is not None:
        obj.setdefault("model", model)
    try:
        table = PaperTable.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise UserError(
            f"{where}: {loc}: {err['msg']} (expected the calibration format: "
            "model, experiment, data.<workload>[].kv_blocks/by_num_requests/by_request_rate)"
        ) from None
    if experiment is not None and table.experiment != experiment:
        raise UserError(
            f"{where}: experiment {table.experiment!r} but the file name says {experiment!r}"
        )
    wanted = "by_num_requests" if table.experiment == "offline" else "by_request_rate"
    for workload, scenarios in table.data.items():
        for i, sc in enumerate(scenarios):
            if not getattr(sc, wanted):
                raise UserError(f"{where}: data.{workload}[{i}]: no {wanted} (expected some)")
    return table.model_copy(update={"model": canonical_model(table.model)})


def _read_file(path: Path) -> PaperTable:
    experiment = path.name.removesuffix(".json").rsplit("-", 1)[-1]
    text = read_text(path)  # bounded like every spec the project reads
    model = path.name.removesuffix(f"-{experiment}.json")
    return read_table(text, str(path), experiment=experiment, model=model)


def shipped_files() -> list[tuple[str, str]]:
    """(name, text) of every table shipped in the package."""
    folder = resources.files("workload_eval") / "data" / "paper"
    return sorted(
        (f.name, f.read_text(encoding="utf-8"))
        for f in folder.iterdir()
        if f.name.endswith(tuple(f"-{e}.json" for e in EXPERIMENTS))
    )


def find_calibration_dir(explicit: str | Path | None = None) -> Path | None:
    """The calibration folder: explicit > env var > ../shared/calibration; None if absent."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise UserError(f"--calibration-dir {p}: no such folder")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            warnings.warn(
                f"{ENV_VAR}={env}: no such folder; using the paper tables shipped in the package",
                stacklevel=2,
            )
            return None
        return p
    checkout = Path(__file__).resolve().parents[2]
    for p in (
        Path.cwd().parent / "shared" / "calibration",
        checkout.parent / "shared" / "calibration",
    ):
        if p.is_dir():
            return p
    return None


def load_paper_tables(calibration_dir: str | Path | None = None) -> PaperTables:
    """The shipped tables, then every ``*-offline.json`` / ``*-online.json`` of the folder."""
    out = PaperTables()
    for name, text in shipped_files():
        experiment = name.removesuffix(".json").rsplit("-", 1)[-1]
        table = read_table(text, f"{SHIPPED} {name}", experiment=experiment)
        out.tables[(table.model, table.experiment)] = LoadedTable(table, SHIPPED)
    folder = find_calibration_dir(calibration_dir)
    out.calibration_dir = folder
    if folder is not None:
        for experiment in EXPERIMENTS:
            for path in sorted(folder.glob(f"*-{experiment}.json")):
                table = _read_file(path)
                out.tables[(table.model, table.experiment)] = LoadedTable(table, str(path))
    return out
