"""Typed reader of measured corpora in the ``workload-eval-measured/1`` format (SCHEMA.md).

One JSON object per experiment plus an optional replay trace. Files come from other people's
measurements: every value is validated, a bad file becomes one line naming the file and the
field, and a file of another format in the same folder is reported, not fatal. Keys this
schema does not list are ignored (a newer corpus may add some); ``evidence`` is never read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, ValidationError, field_validator

from workload_eval.errors import UserError
from workload_eval.inputs import loads_json
from workload_eval.strict import NoBoolNumbers

FORMAT = "workload-eval-measured/1"
MAX_FILE_BYTES = 64 * 1024**2  # a corpus JSON is ~50 kB; refuse anything absurd
MAX_TRACE_ROWS = 5_000_000

STATUSES = ("ok", "excluded_overload", "saturated_queueing", "cumulative_metrics", "trace_missing")
MEASUREMENT_POINTS = ("client_http", "server_prometheus", "engine_in_process")
METRICS: tuple[str, ...] = (
    "ttft_mean",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "e2e_mean",
    "e2e_p50",
    "e2e_p90",
    "e2e_p99",
    "decode_time_per_token_mean",
)

_Pos = Annotated[int, Field(ge=1)]
_NonNeg = Annotated[int, Field(ge=0)]
_Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Model(NoBoolNumbers):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ModelInfo(_Model):
    name: str
    config: dict[str, Any] | None = None
    config_source: str = ""


class EngineSettings(_Model):
    name: str = "vllm"
    version: str = ""
    build: str = ""
    engine_generation: Literal["V0", "V1"] | None = None
    tensor_parallel_size: _Pos = 1
    pipeline_parallel_size: _Pos = 1
    data_parallel_size: _Pos = 1
    enable_expert_parallel: bool = False
    max_model_len: _Pos | None = None
    max_num_batched_tokens: _Pos | None = None
    max_num_seqs: _Pos | None = None
    block_size: _Pos | None = None
    num_gpu_blocks: _Pos | None = None
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    cpu_offload_gib: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    speculative_decoding: str | None = None
    speculative_config: dict[str, Any] | None = None
    kv_cache_dtype: str | None = None
    dtype: str | None = None


class LengthStats(_Model):
    mean: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    min: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    max: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SharedPrefixWorkload(_Model):
    kind: Literal["shared_prefix"]
    num_groups: _Pos
    prompts_per_group: _Pos
    system_prompt_len: _NonNeg
    question_len: _NonNeg
    output_len: _Pos
    multi_turn: bool = False
    effective_unknown: bool = False
    ignore_eos: bool = True
    api: str = "completion"
    streaming: bool | None = True
    measured_prompt_len: LengthStats | None = None
    trace_file: str | None = None

    @field_validator("num_groups", "prompts_per_group")
    @classmethod
    def _bounded(cls, v: int) -> int:
        if v > 1_000_000:
            raise ValueError("more than 1,000,000")
        return v


class TraceWorkload(_Model):
    kind: Literal["trace"]
    file: str | None = None
    ignore_eos: bool = False
    api: str = "completion"
    streaming: bool | None = None
    num_requests: _NonNeg = 0
    sampling: str = ""


class LoadStage(_Model):
    rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    duration_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


class Load(_Model):
    kind: str = "constant"
    stages: list[LoadStage] = Field(default_factory=list)
    stage_gap_s: _Seconds | None = None
    arrival_process: str = ""


class Scenario(_Model):
    gpu: str
    gpu_memory_gb: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    num_gpus: _Pos = 1
    model: ModelInfo
    quantization: str | None = None
    engine: EngineSettings = Field(default_factory=EngineSettings)
    workload: Annotated[SharedPrefixWorkload | TraceWorkload, Field(discriminator="kind")]
    load: Load = Field(default_factory=Load)
    inferred_fields: list[str] = Field(default_factory=list)


_Latency = Annotated[float, Field(allow_inf_nan=False)] | None


class StageTargets(_Model):
    stage: int | None = None
    rate: Annotated[float, Field(allow_inf_nan=False)] | None = None
    count: _NonNeg | None = None
    num_failed: _NonNeg | None = None
    overloaded: bool = False
    ttft_mean: _Latency = None
    ttft_p50: _Latency = None
    ttft_p90: _Latency = None
    ttft_p99: _Latency = None
    e2e_mean: _Latency = None
    e2e_p50: _Latency = None
    e2e_p90: _Latency = None
    e2e_p99: _Latency = None
    decode_time_per_token_mean: _Latency = None

    def value(self, metric: str) -> float | None:
        return getattr(self, metric)


class Targets(_Model):
    measurement_point: str = "client_http"
    stages: list[StageTargets] = Field(default_factory=list)
    summary: StageTargets | None = None
    derived_metrics: list[str] = Field(default_factory=list)
    estimate: str | None = None
    metric_notes: str = ""


class PeerStage(_Model):
    """One stage of a peer's predictions: ``stage`` plus any metric keys it reported."""

    model_config = ConfigDict(extra="allow", frozen=True)
    stage: int

    def predictions(self) -> dict[str, float]:
        extra = self.model_extra or {}
        out: dict[str, float] = {}
        for metric in METRICS:
            v = extra.get(metric)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                out[metric] = float(v)
        return out


class Peer(_Model):
    stages: list[PeerStage] = Field(default_factory=list)
    summary: dict[str, Any] | None = None
    units: str = ""
    source: str = ""
    notes: str = ""


class Experiment(_Model):
    format: Literal["workload-eval-measured/1"]
    id: str = Field(min_length=1)
    set: str = ""
    source: str = ""
    licence: str = ""
    status: str
    scenario: Scenario
    targets: Targets
    peers: dict[str, Peer] | None = None
    notes: str = ""


class CorpusError(Exception):
    """A file that is not a valid experiment: one line naming the file and the field."""


def _message(path: Path, e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if err["type"] == "missing":
        return f"{path}: field {loc}: required field missing"
    return f"{path}: field {loc}: {msg} (got {shown})"


def load_experiment(path: Path) -> Experiment:
    """One experiment file, validated; a CorpusError (one line) when it is not one."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise CorpusError(f"{path}: {size} bytes is too large for an experiment file")
    try:
        raw = loads_json(path.read_bytes().decode("utf-8-sig"), path)  # strict, depth-safe
    except UserError as e:
        raise CorpusError(str(e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: cannot read ({e})") from None
    if not isinstance(raw, dict):
        raise CorpusError(f"{path}: expected a JSON object (a {FORMAT} experiment)")
    fmt = raw.get("format")
    if fmt != FORMAT:
        raise CorpusError(f"{path}: field format: expected {FORMAT!r} (got {fmt!r})")
    raw.pop("evidence", None)
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        raise CorpusError(_message(path, e)) from None
    return exp


class TraceRows(NoBoolNumbers):
    """A replay trace: arrival offsets (s) and per-request lengths (NaN = failed, unknown)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    arrival_s: np.ndarray
    prompt_len: np.ndarray  # float, NaN where unknown
    output_len: np.ndarray  # float, NaN where unknown

    def __len__(self) -> int:
        return len(self.arrival_s)


def trace_path(corpus_file: Path, relative: str) -> Path:
    """The trace named by a workload, resolved inside the corpus folder (no escaping it)."""
    base = corpus_file.parent.resolve()
    p = (base / relative).resolve()
    if base not in p.parents:
        raise CorpusError(f"{corpus_file}: trace file {relative!r} is outside the corpus folder")
    return p


def load_trace(path: Path, *, where: str) -> TraceRows:
    """Read ``arrival_s,prompt_len,output_len``; bad rows are one-line errors naming the row."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES * 4:
            raise CorpusError(f"{where}: trace {path} is too large")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_TRACE_ROWS + 1)
    except FileNotFoundError:
        raise CorpusError(f"{where}: trace file {path} not found") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise CorpusError(f"{where}: trace {path}: unreadable CSV ({e})") from None
    if list(frame.columns) != ["arrival_s", "prompt_len", "output_len"]:
        raise CorpusError(
            f"{path}: header: expected arrival_s,prompt_len,output_len "
            f"(got {','.join(map(str, frame.columns))})"
        )
    if len(frame) > MAX_TRACE_ROWS:
        raise CorpusError(f"{path}: more than {MAX_TRACE_ROWS} rows")
    cols = {}
    for name in frame.columns:
        values = pd.to_numeric(frame[name].str.strip().replace("", np.nan), errors="coerce")
        bad = values.isna() & (frame[name].str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise CorpusError(f"{path}: line {row}: column {name}: expected a number")
        cols[name] = values.to_numpy(dtype=float)
    arr, plen, olen = cols["arrival_s"], cols["prompt_len"], cols["output_len"]
    checks = (
        (np.isnan(arr) | ~np.isfinite(arr) | (arr < 0), "arrival_s", "a finite number >= 0"),
        (~np.isnan(plen) & ((plen < 1) | (plen != np.round(plen)) | (plen > 1e8)), "prompt_len",
         "an integer >= 1 or empty"),
        (~np.isnan(olen) & ((olen < 1) | (olen != np.round(olen)) | (olen > 1e8)), "output_len",
         "an integer >= 1 or empty"),
        (np.isnan(plen) != np.isnan(olen), "prompt_len",
         "empty together with output_len (a failed request) or both set"),
    )  # fmt: skip
    for mask, name, expected in checks:
        if mask.any():
            row = int(np.flatnonzero(mask)[0]) + 2
            raise CorpusError(f"{path}: line {row}: column {name}: expected {expected}")
    if len(arr) > 1 and (np.diff(arr) < 0).any():
        row = int(np.flatnonzero(np.diff(arr) < 0)[0]) + 3
        raise CorpusError(f"{path}: line {row}: arrival_s decreases (expected arrival order)")
    return TraceRows(arrival_s=arr, prompt_len=plen, output_len=olen)
