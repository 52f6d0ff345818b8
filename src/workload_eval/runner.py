"""One run of the pipeline: workload -> schedule -> engine -> records -> summary, and its files.

Interruption (Ctrl-C) contract with engines: an engine that catches ``KeyboardInterrupt``
returns the records gathered so far instead of raising: requests it did not finish get
``status="failed"`` and ``error="interrupted"``, and ``records.config["interrupted"]`` is
True (one level down, as the openai engine's ``config["loadgen"]``, is read too).
:func:`execute` then marks the summary ``"interrupted": true``, callers save it with
:func:`save_run` (the ``run`` command does, then exits 130), and sweeps stop there.
An engine that lets the interrupt escape loses only its own unfinished run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from workload_eval import __version__, interrupts
from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, RunRecords
from workload_eval.engines.base import EngineConfig, get_engine
from workload_eval.errors import UserError
from workload_eval.limits import Seed
from workload_eval.metrics import check_slo, summarize
from workload_eval.schedules import OfflineSchedule, ScheduleSpec, build_schedule, request_count
from workload_eval.storage import atomic_write_json, atomic_write_parquet

SUMMARY_FILE, REQUESTS_FILE, STEPS_FILE = "summary.json", "requests.parquet", "steps.parquet"


class RunSpec(BaseModel):
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
    slo: dict[str, float] | None = None  # per-request bounds for goodput (metrics.SLO_KEYS)
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

    @field_validator("slo")
    @classmethod
    def _known_slo(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        try:
            return check_slo(v)
        except UserError as e:
            raise ValueError(str(e)) from None


@dataclass
class RunResult:
    """The records of a run and its summary (what summary.json holds)."""

    records: RunRecords
    summary: dict[str, Any]
    # Ctrl-C / SIGTERM came after the engine finished (the run is complete): stop after it
    stop_requested: bool = False

    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("interrupted"))


def run_config(spec: RunSpec, engine_reported: dict[str, Any], attrs: dict[str, Any]) -> dict:
    """The full configuration stored with a result: the spec plus what was resolved."""
    cfg = spec.model_dump(mode="json")
    ec = spec.engine_config
    cfg.update(
        model=ec.model,
        gpu=ec.gpu,
        kv_blocks=engine_reported.get("kv_blocks", ec.kv_blocks),
        workload_source=attrs.get("source"),
        workload_spec=attrs.get("workload_spec"),
        tokenizer=attrs.get("tokenizer"),
        package_version=__version__,
        engine_reported=engine_reported,
    )
    return cfg


def was_interrupted(engine_config: dict[str, Any]) -> bool:
    """The engine's flag: top-level ``interrupted``, or one level down (``loadgen``)."""
    if engine_config.get("interrupted"):
        return True
    return any(isinstance(v, dict) and v.get("interrupted") for v in engine_config.values())


def execute(spec: RunSpec, *, progress: bool = False) -> RunResult:
    """Load the workload, build the schedule, run the engine, summarize."""
    from workload_eval.workloads import load_workload  # heavy: tokenizers

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
    if not engine.uses_token_ids and "prompt_token_ids" in df.columns:
        df = df.drop(columns=["prompt_token_ids"])  # building them costs ~15% of a sim point
    schedule = build_schedule(spec.schedule, df, seed=spec.seed)
    config = spec.engine_config.model_copy(update={"seed": spec.seed})
    records = engine.run(schedule, config, progress=progress)
    with interrupts.deferred() as held:  # what the engine returned is kept whatever comes
        interrupted = was_interrupted(records.config)
        records.config = run_config(spec, dict(records.config), dict(df.attrs))
        summary = summarize(records, slo=spec.slo)
        if interrupted:
            summary["interrupted"] = True
    return RunResult(records=records, summary=summary, stop_requested=held.signalled)


def _table(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The contract's columns first (missing ones added empty), engine extras after."""
    out = df.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = pd.Series([None] * len(out), dtype=object)
    return out[[*columns, *(c for c in out.columns if c not in columns)]]


def save_run(result: RunResult, out_dir: str | Path) -> None:
    """Write the three files atomically; summary.json last, so it marks a complete folder."""
    out = Path(out_dir)
    atomic_write_parquet(out / REQUESTS_FILE, _table(result.records.requests, REQUEST_COLUMNS))
    atomic_write_parquet(out / STEPS_FILE, _table(result.records.steps, STEP_COLUMNS))
    atomic_write_json(out / SUMMARY_FILE, result.summary)


def load_run(out_dir: str | Path) -> RunResult:
    """Read a run folder written by :func:`save_run`."""
    out = Path(out_dir)
    path = out / SUMMARY_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (expected a run folder written by `workload-eval run`)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    frames = []
    for name in (REQUESTS_FILE, STEPS_FILE):
        if not (out / name).is_file():
            raise UserError(f"{out / name}: not found (the run folder is incomplete)")
        frames.append(pd.read_parquet(out / name))
    records = RunRecords(requests=frames[0], steps=frames[1], config=summary.get("config", {}))
    return RunResult(records=records, summary=summary)


__all__ = ["RunResult", "RunSpec", "execute", "load_run", "run_config", "save_run"]
