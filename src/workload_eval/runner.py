"""One run of the pipeline: workload -> schedule -> engine -> records -> summary, and its files.

The stored configuration is typed, the same shape for every engine: ``{spec: RunSpec,
resolved: <the engine's report>}`` (:class:`RunConfig`); ``spec`` alone reproduces the run.

Interruption (Ctrl-C) contract with engines: an engine that catches ``KeyboardInterrupt``
returns the records gathered so far instead of raising: requests it did not finish get
``status="failed"`` and ``error="interrupted"``, and ``records.report.interrupted`` is True.
:func:`execute` then marks the summary ``"interrupted": true``, callers save it with
:func:`save_run` (the ``run`` command does, then exits 130), and sweeps stop there.
An engine that lets the interrupt escape loses only its own unfinished run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pyarrow import ArrowException
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from workload_eval import __version__, interrupts
from workload_eval.analysis.slices import (
    SLICE_SECONDS,
    SLICES_FILE,
    check_width,
    slice_summary,
    time_slices,
)
from workload_eval.contracts import (
    REQUEST_COLUMNS,
    STEP_COLUMNS,
    EngineReport,
    RunRecords,
    WorkloadReport,
)
from workload_eval.engines.base import (
    ENGINES,
    EngineConfig,
    get_engine,
    parse_options,
    report_model,
)
from workload_eval.errors import UserError
from workload_eval.gc_pause import collector_off
from workload_eval.inputs import read_text
from workload_eval.limits import Seed
from workload_eval.metrics import Summary, summarize
from workload_eval.schedules import OfflineSchedule, ScheduleSpec, build_schedule, request_count
from workload_eval.slo import GRAMMAR, SLO, parse_slos
from workload_eval.storage import atomic_write_bytes, parquet_bytes, strict_json
from workload_eval.strict import NoBoolNumbers

SUMMARY_FILE, REQUESTS_FILE, STEPS_FILE = "summary.json", "requests.parquet", "steps.parquet"


class RunSpec(NoBoolNumbers):
    """One point of a study: with its seed it fully determines a run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    engine: str = "sim"
    engine_config: EngineConfig
    workload: str
    schedule: ScheduleSpec = Field(default_factory=OfflineSchedule)
    seed: Seed = 0  # arrivals, workload shuffle and engine sampling
    sampling: Literal["first", "random"] = "first"
    source: Literal["auto", "hub", "local", "profile"] = "auto"
    data_dir: str | None = None
    tokenizer_dir: str | None = None
    # Model whose tokenizer prepares the workload when the engine's model name is not one
    # (a server's served-model-name); default: engine_config.model.
    tokenizer: str | None = None
    slo: list[SLO] | None = None  # bounds (slo.py): goodput, slo_attainment, slo_met
    # reference (None) | eos:TOKENS | recorded:RUN_DIR (workloads.output_models)
    output_len_model: str | None = None

    @field_validator("output_len_model")
    @classmethod
    def _known_output_model(cls, v: str | None) -> str | None:
        from workload_eval.workloads.output_models import parse_output_len_model

        if v is None or v.strip() == "reference":
            return None
        try:
            return str(parse_output_len_model(v, where="output_len_model"))
        except UserError as e:
            raise ValueError(str(e).removeprefix("output_len_model").lstrip(": ")) from None

    @field_validator("slo", mode="before")
    @classmethod
    def _parse_slo(cls, v: object) -> list[SLO] | None:
        if v is None:
            return None
        if not isinstance(v, Mapping | list | tuple):
            raise ValueError(f"expected a list of {GRAMMAR}")
        try:
            return parse_slos(v, where="slo") or None
        except UserError as e:
            raise ValueError(str(e).removeprefix("slo: ")) from None

    @field_serializer("slo")
    def _slo_as_text(self, v: list[SLO] | None) -> list[str] | None:
        return None if v is None else [str(s) for s in v]  # the grammar users write

    @model_validator(mode="after")
    def _engine_options_and_seed(self) -> RunSpec:
        if self.engine in ENGINES:  # an unknown engine fails in execute(), before any loading
            try:
                parse_options(self.engine, self.engine_config.options)
            except UserError as e:
                raise ValueError(str(e)) from None
        if self.engine_config.seed != self.seed:  # one seed: the stored spec must not disagree
            self.engine_config = self.engine_config.model_copy(update={"seed": self.seed})
        return self


class RunConfig(BaseModel):
    """The configuration stored with every result (``summary.json``'s ``config``): what was
    asked, ``spec``, and what the engine resolved, ``resolved`` (its registered report
    model, e.g. SimReport). Executing ``spec`` again reproduces the run."""

    model_config = ConfigDict(extra="forbid")

    spec: RunSpec
    resolved: SerializeAsAny[EngineReport]

    @field_validator("resolved", mode="before")
    @classmethod
    def _engine_report(cls, v: object) -> object:
        """Stored JSON -> the report model its engine registered."""
        if isinstance(v, Mapping) and v.get("engine") in ENGINES:
            return report_model(str(v["engine"])).model_validate(v)
        return v


@dataclass
class RunResult:
    """The records of a run and its summary (what summary.json holds)."""

    records: RunRecords
    summary: Summary
    # Ctrl-C / SIGTERM came after the engine finished (the run is complete): stop after it
    stop_requested: bool = False
    slices: pd.DataFrame | None = None  # analysis.slices: the run window by window

    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("interrupted"))

    @property
    def config(self) -> RunConfig:
        return RunConfig.model_validate(self.summary["config"])


def execute(
    spec: RunSpec, *, progress: bool = False, slice_seconds: float = SLICE_SECONDS
) -> RunResult:
    """Load the workload, build the schedule, run the engine, summarize (with the run's
    time slices of ``slice_seconds``: not part of the spec, any width gives the same run)."""
    from workload_eval.workloads import load_workload  # heavy: tokenizers

    check_width(slice_seconds)  # a bad width fails before the run, not after it
    engine = get_engine(spec.engine)  # unknown engine fails before any loading
    df = load_workload(
        spec.workload,
        spec.tokenizer or spec.engine_config.model,
        num_requests=request_count(spec.schedule, spec.seed),
        max_model_len=spec.engine_config.max_model_len,
        seed=spec.seed,
        sampling=spec.sampling,
        data_dir=spec.data_dir,
        tokenizer_dir=spec.tokenizer_dir,
        source=spec.source,
        output_len_model=spec.output_len_model,
    )
    if "prompt_token_ids" in df.columns and not engine.uses_token_ids(spec.engine_config):
        df = df.drop(columns=["prompt_token_ids"])
    with collector_off():  # two objects per request, none cyclic: see gc_pause
        schedule = build_schedule(spec.schedule, df, seed=spec.seed)
    records = engine.run(schedule, spec.engine_config, progress=progress)
    with interrupts.deferred() as held:  # what the engine returned is kept whatever comes
        report = records.report
        report.workload = WorkloadReport(
            source=df.attrs.get("source"),
            tokenizer=df.attrs.get("tokenizer"),
            requests=len(df),
            spec=df.attrs.get("workload_spec"),
        )
        summary = summarize(records, slo=spec.slo)
        slices = time_slices(records, slice_seconds)
        summary.update(slice_summary(slices, slice_seconds))
        if report.interrupted:
            summary["interrupted"] = True
        summary["config"] = RunConfig(spec=spec, resolved=report).model_dump(mode="json")
        summary["package_version"] = __version__
    return RunResult(records=records, summary=summary, stop_requested=held.signalled, slices=slices)


def _table(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The contract's columns first (missing ones added empty), engine extras after."""
    out = df.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = pd.Series([None] * len(out), dtype=object)
    return out[[*columns, *(c for c in out.columns if c not in columns)]]


def run_files(result: RunResult) -> dict[str, bytes]:
    """A run's files (name -> bytes, scrubbed), rendered once: :func:`save_run` writes them,
    sweep workers return them to the store. summary.json comes last (it marks a complete
    folder, so it is written last)."""
    files = {
        REQUESTS_FILE: parquet_bytes(_table(result.records.requests, REQUEST_COLUMNS)),
        STEPS_FILE: parquet_bytes(_table(result.records.steps, STEP_COLUMNS)),
    }
    if result.slices is not None:
        files[SLICES_FILE] = parquet_bytes(result.slices)
    files[SUMMARY_FILE] = strict_json(result.summary).encode("utf-8")
    return files


def save_run(result: RunResult, out_dir: str | Path) -> None:
    """Write the files atomically, in :func:`run_files`' order: summary.json last."""
    out = Path(out_dir)
    for name, data in run_files(result).items():
        atomic_write_bytes(out / name, data)


def read_summary(path: Path) -> Summary:
    """A run's summary.json (bounded, strict UTF-8; the NaN of older files is read as
    NaN); a file that is not one is a one-line UserError."""
    text = read_text(path)
    try:
        summary = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path}: expected a JSON object (a run summary)")
    return summary


def run_config(summary: Summary, path: Path) -> RunConfig:
    """The typed configuration of a stored run; an old or foreign summary is a UserError."""
    try:
        return RunConfig.model_validate(summary.get("config"))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise UserError(
            f"{path}: config.{where}: {err['msg']} (expected the {{spec, resolved}} run record "
            f"of workload-eval {__version__}; re-run it with this version)"
        ) from None


def load_run(out_dir: str | Path) -> RunResult:
    """Read a run folder written by :func:`save_run`."""
    out = Path(out_dir)
    path = out / SUMMARY_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (expected a run folder written by `workload-eval run`)")
    summary = read_summary(path)
    config = run_config(summary, path)
    frames = []
    for name in (REQUESTS_FILE, STEPS_FILE):
        if not (out / name).is_file():  # missing, or not a regular file (a pipe would block)
            raise UserError(f"{out / name}: not found (the run folder is incomplete)")
        frames.append(_read_table(out / name))
    records = RunRecords(requests=frames[0], steps=frames[1], report=config.resolved)
    slices = _read_table(out / SLICES_FILE) if (out / SLICES_FILE).is_file() else None
    return RunResult(records=records, summary=summary, slices=slices)


def _read_table(path: Path) -> pd.DataFrame:
    """A stored Parquet table; a damaged one (truncated, not Parquet) is a UserError."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, ArrowException) as e:
        raise UserError(f"{path}: not a readable Parquet table ({type(e).__name__})") from None


__all__ = [
    "RunConfig",
    "RunResult",
    "RunSpec",
    "execute",
    "load_run",
    "read_summary",
    "run_config",
    "run_files",
    "save_run",
]
