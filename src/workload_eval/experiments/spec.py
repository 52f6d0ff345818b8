"""The declarative experiment spec (YAML): the models of a study's axes (loading and
key-path errors: ``spec_loading``).

Every field defaults to the seed paper's setting (OPT-13B on an A100-40GB, 643 KV blocks
of 16 tokens, 2560 batched tokens, 2048 sequences, max_model_len 2048, vLLM 0.2 policy,
seed 0, 600 s Poisson arrivals, SLO p95 normalized latency <= 0.1875 s/token).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from workload_eval import paper
from workload_eval.analysis.intervals import CONFIDENCE_LEVEL
from workload_eval.engines.base import EngineConfig, options_model
from workload_eval.errors import UserError
from workload_eval.experiments.spec_fields import (
    STRICT,
    GpuNames,
    KvBlockCounts,
    MemoryFractions,
    ModelNames,
    Seeds,
    SLOs,
    WorkloadNames,
    as_list,
    check_engine,
    confidence_level,
    engine_entries,
    scalar_rate,
)
from workload_eval.slo import SLO
from workload_eval.strict import NoBoolNumbers

# Axes set per grid point, so an engine entry may not set them.
AXIS_FIELDS = {"model", "gpu", "kv_blocks", "gpu_memory_utilization", "seed"}


class EngineEntry(NoBoolNumbers):
    """One engine and its fixed knobs: shared EngineConfig fields (except the swept axes) and
    the engine's own options, flat (``policy: vllm-v1``) or under ``options:``."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    engine: Annotated[str, AfterValidator(check_engine)] = "sim"
    label: str | None = None

    @model_validator(mode="after")
    def _knobs_are_engine_settings(self) -> EngineEntry:
        bad = sorted(set(self.model_extra or {}) & AXIS_FIELDS)
        if bad:
            raise ValueError(f"{bad[0]!r} is an axis of the study: set it at the top level")
        EngineConfig(model="opt-13b", **self.config_knobs)  # validates the shared values
        # the engine's Options model: errors land at engines[i].<option>
        options_model(self.engine).model_validate(self.options)
        return self

    @property
    def config_knobs(self) -> dict[str, Any]:
        shared = set(EngineConfig.model_fields) - {"options"}
        return {k: v for k, v in (self.model_extra or {}).items() if k in shared}

    @property
    def options(self) -> dict[str, Any]:
        """The engine's own options: flat knobs that are not shared fields, then ``options:``."""
        extra = dict(self.model_extra or {})
        nested = extra.pop("options", None) or {}
        if not isinstance(nested, dict):
            raise ValueError("options: expected a mapping of the engine's options")
        shared = set(EngineConfig.model_fields)
        return {**{k: v for k, v in extra.items() if k not in shared}, **nested}

    @property
    def name(self) -> str:
        return self.label or self.engine


class RateRange(NoBoolNumbers):
    """Rates start, start+step, ... up to and including stop."""

    model_config = STRICT

    start: float = Field(gt=0)
    stop: float = Field(gt=0)
    step: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RateRange:
        if self.stop < self.start:
            raise ValueError("stop must be >= start")
        if (self.stop - self.start) / self.step > 10_000:
            raise ValueError("more than 10000 rates: raise step")
        return self

    def values(self) -> list[float]:
        n = math.floor((self.stop - self.start) / self.step + 1e-9)
        return [round(self.start + i * self.step, 10) for i in range(n + 1)]


_Rate = (
    Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]
    | RateRange
    | Literal["capacity"]
    | None
)


class ScheduleEntry(NoBoolNumbers):
    """A schedule family: list-valued fields expand (num_requests: [100, 500])."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    kind: str
    rate: Annotated[_Rate, BeforeValidator(scalar_rate)] = None

    @model_validator(mode="after")
    def _no_empty_axis(self) -> ScheduleEntry:
        for k, v in (self.model_extra or {}).items():
            if isinstance(v, list) and not v:
                raise ValueError(f"{k}: an empty list runs nothing (list at least one value)")
        return self

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from workload_eval.schedules import SCHEDULE_KINDS

        if v not in SCHEDULE_KINDS:
            raise ValueError(
                f"unknown schedule kind {v!r} (expected one of {', '.join(SCHEDULE_KINDS)})"
            )
        return v

    @property
    def is_capacity(self) -> bool:
        """A capacity search: of the rate, or of a closed loop's users (``concurrency``)."""
        return self.rate == "capacity" or self.concurrency_capacity

    @property
    def concurrency_capacity(self) -> bool:
        return (self.model_extra or {}).get("concurrency") == "capacity"

    def rates(self) -> list[float | None]:
        if self.rate is None or self.rate == "capacity":
            return [None]
        return self.rate.values() if isinstance(self.rate, RateRange) else list(self.rate)

    def expand(self) -> list[dict[str, Any]]:
        """Plain schedule dicts, one per combination of list-valued fields (rate excluded
        when it is ``capacity``: the search chooses it)."""
        combos: list[dict[str, Any]] = [{"kind": self.kind}]
        axes: list[tuple[str, list[Any]]] = []
        if not self.is_capacity and self.rate is not None:
            axes.append(("rate", self.rates()))
        for k, v in (self.model_extra or {}).items():
            if k == "concurrency" and v == "capacity":
                continue  # the search chooses it
            axes.append((k, list(v) if isinstance(v, list) else [v]))
        for k, values in axes:
            combos = [{**c, k: v} for c in combos for v in values]
        return combos


_Grid = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] | RateRange


class CapacityOptions(NoBoolNumbers):
    """How ``rate: capacity`` schedules are searched (see experiments.capacity)."""

    model_config = STRICT

    rule: Literal["bisect", "seed-grid"] = "bisect"
    tolerance: float = Field(default=0.02, gt=0, lt=1)
    start: float = Field(default=1.0, gt=0)
    # seed-grid's grid: one for every configuration, or per workload (and per KV size)
    rates: _Grid | dict[str, _Grid | dict[int, _Grid]] | None = None
    extend: bool = False  # seed-grid: extend the grid by its step when the answer is outside
    aggregate: Literal["majority", "mean", "all"] = "majority"
    repeat_band: float | None = Field(default=0.1, ge=0)
    max_rate: float = Field(default=1e4, gt=0)
    # a rate meets the SLOs when they hold over this confidence interval of each metric;
    # null/none: the point estimates, as the paper judged them (experiments.verdicts)
    confidence: Annotated[float | None, BeforeValidator(confidence_level)] = CONFIDENCE_LEVEL

    def key_data(self) -> dict[str, Any]:
        """What identifies the search's options: without a confidence, exactly what the
        options were before confidence existed (so those searches keep their keys)."""
        data = self.model_dump(mode="json")
        if data["confidence"] is None:
            del data["confidence"]
        return data

    def grid(self, workload: str | None = None, kv_blocks: int | None = None) -> list[float] | None:
        """The rates of one configuration (None: the options name none for it)."""
        rates = self.rates
        if isinstance(rates, dict):
            rates = rates.get(workload) if workload is not None else None
            if isinstance(rates, dict):
                rates = rates.get(kv_blocks) if kv_blocks is not None else None
        if rates is None:
            return None
        return rates.values() if isinstance(rates, RateRange) else list(rates)


def _default_schedules() -> list[ScheduleEntry]:
    return [
        ScheduleEntry(kind="offline", num_requests=list(paper.NUM_REQUESTS)),
        # an int as before: a capacity task's key hashes the schedule as written
        ScheduleEntry(kind="poisson", rate="capacity", duration=int(paper.ONLINE_DURATION_S)),
    ]


class GridSpec(NoBoolNumbers):
    """One group's axes: the cross product of these is the group's points."""

    model_config = STRICT

    name: str = "main"
    engines: Annotated[list[EngineEntry], BeforeValidator(engine_entries)] = Field(
        default_factory=lambda: [EngineEntry()]
    )
    models: ModelNames = Field(default_factory=lambda: [paper.MODELS[0]])
    gpus: GpuNames = Field(default_factory=lambda: [paper.GPU])
    kv_blocks: KvBlockCounts = None
    gpu_memory_utilization: MemoryFractions = None
    workloads: WorkloadNames = Field(default_factory=lambda: list(paper.WORKLOADS))
    schedules: Annotated[list[ScheduleEntry], BeforeValidator(as_list)] = Field(
        default_factory=_default_schedules
    )
    seeds: Seeds = Field(default_factory=lambda: [paper.SEED])
    slos: SLOs = Field(
        default_factory=lambda: [SLO(metric=paper.SLO_METRIC, value=paper.SLO_S_PER_TOKEN)]
    )
    capacity: CapacityOptions = Field(default_factory=CapacityOptions)
    sampling: Literal["first", "random"] = "first"  # which workload requests (runner)
    source: Literal["auto", "hub", "local", "profile"] = "auto"  # where workloads load from
    # reference | eos:TOKENS | recorded:RUN_DIR, for every workload or per workload name
    output_len_model: str | dict[str, str] | None = None

    @field_validator("output_len_model")
    @classmethod
    def _output_models(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        from workload_eval.workloads.output_models import parse_output_len_model

        for text in [v] if isinstance(v, str) else list((v or {}).values()):
            try:
                parse_output_len_model(text, where="output_len_model")
            except UserError as e:
                raise ValueError(str(e).removeprefix("output_len_model: ")) from None
        return v

    data_dir: str | None = None
    tokenizer_dir: str | None = None

    @field_validator(
        "engines",
        "models",
        "gpus",
        "workloads",
        "schedules",
        "seeds",
        "kv_blocks",
        "gpu_memory_utilization",
    )
    @classmethod
    def _non_empty(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None and not v:
            raise ValueError("an empty list runs nothing (list at least one value)")
        return v

    @field_validator("gpus")
    @classmethod
    def _gpus_are_sim_settings(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for entry in info.data.get("engines") or []:
            if "gpu" not in options_model(entry.engine).model_fields:
                raise ValueError(
                    f"engine {entry.engine!r} runs on its own hardware and has no gpu setting "
                    "(list gpus in a group of sim engines)"
                )
        return v

    @model_validator(mode="after")
    def _default_kv(self) -> GridSpec:
        if self.kv_blocks is None and self.gpu_memory_utilization is None:
            self.kv_blocks = [paper.KV_BLOCKS_MAX]
        if not self.slos and any(s.is_capacity for s in self.schedules):
            raise ValueError("slos: a 'rate: capacity' schedule needs at least one SLO")
        return self

    def num_runs(self) -> int:
        """Points plus capacity searches this group expands to (counted, not built)."""
        per_config = 0
        for entry in self.schedules:
            combos = 1
            if not entry.is_capacity and entry.rate is not None:
                combos *= len(entry.rates())
            for v in (entry.model_extra or {}).values():
                combos *= len(v) if isinstance(v, list) else 1
            per_config += combos if entry.is_capacity else combos * len(self.seeds)
        configs = len(self.engines) * len(self.models) * len(self.gpus) * len(self.workloads)
        return configs * len(self.kv_sizes()) * per_config

    def kv_sizes(self) -> list[dict[str, Any]]:
        """KV axis: each entry sets kv_blocks or gpu_memory_utilization."""
        sizes: list[dict[str, Any]] = [{"kv_blocks": b} for b in self.kv_blocks or []]
        sizes += [{"gpu_memory_utilization": u} for u in self.gpu_memory_utilization or []]
        return sizes


class ExperimentSpec(NoBoolNumbers):
    """A whole study: top-level axes, optionally split into groups that override them."""

    model_config = STRICT

    name: str = "experiment"
    description: str = ""
    groups: list[GridSpec]
    source: str | None = None  # the YAML file it came from
