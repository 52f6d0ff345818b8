"""The Engine interface, the knobs every engine shares, and the registry of engines.

Each engine registers its class with the pydantic model of its own options (GuideLLM's
``Backend.register`` / AIPerf's factory) and of the report it returns. Entries are
"module:Class" references resolved on first use, so naming an engine or checking its
options never imports vLLM.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ConfigDict, Field, JsonValue, ValidationError, model_validator

from workload_eval.contracts import EngineReport, RunRecords, Schedule
from workload_eval.errors import UserError
from workload_eval.limits import MAX_BLOCK_SIZE, MAX_INT, MAX_SAMPLES, Seed
from workload_eval.strict import NoBoolNumbers

# Fields that used to be shared but only the simulator reads (moved to SimOptions); still
# accepted here so older specs, scripts and stored runs keep working.
_SIM_ONLY_FIELDS = ("gpu", "policy")


class EngineConfig(NoBoolNumbers):
    """Knobs shared by every engine; vLLM's names and the seed's defaults.

    Everything else belongs to one engine and goes in ``options``, validated by that
    engine's Options model (``options_model(engine)``).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    kv_blocks: int | None = Field(default=None, gt=0, le=MAX_INT)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    block_size: int = Field(default=16, gt=0, le=MAX_BLOCK_SIZE)
    max_num_batched_tokens: int = Field(default=2560, gt=0, le=MAX_INT)
    max_num_seqs: int = Field(default=2048, gt=0, le=MAX_INT)
    max_model_len: int = Field(default=2048, gt=0, le=MAX_INT)
    enable_chunked_prefill: bool | None = None  # None: the engine's (policy's) default
    enable_prefix_caching: bool = False
    n: int = Field(default=1, ge=1, le=MAX_SAMPLES)  # parallel samples per request
    seed: Seed = 0
    options: dict[str, JsonValue] = Field(default_factory=dict)  # the engine's own, as given

    @model_validator(mode="before")
    @classmethod
    def _sim_fields_are_options(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(k in data for k in _SIM_ONLY_FIELDS):
            data = dict(data)
            moved = {k: data.pop(k) for k in _SIM_ONLY_FIELDS if k in data}
            data["options"] = {**moved, **dict(data.get("options") or {})}
        return data


class EngineOptions(NoBoolNumbers):
    """Base of every engine's Options model: unknown or mistyped options are errors, and
    no option is infinite or NaN (a bound that would make a run spin or allocate forever)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Engine(ABC):
    """Runs a schedule and returns per-request and per-step records.

    Latencies are taken from each request's *intended* arrival time.
    """

    name: str = ""

    def uses_token_ids(self, config: EngineConfig) -> bool:
        """False when a run with ``config`` reads only lengths: the runner then hands over no
        token ids (building them is ~15% of a simulated point's CPU)."""
        return True

    @abstractmethod
    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        """Execute every request of ``schedule``; never raise for per-request failures.

        On KeyboardInterrupt return the records gathered so far: unfinished requests get
        status "failed" with an error mentioning "interrupted", and
        ``records.report.interrupted`` is True. ``records.report`` is the engine's
        registered report model.
        """


@dataclass(frozen=True)
class EngineEntry:
    """One registered engine: its class, its Options model and its report model, as
    "module:Class" references (or the classes themselves, for engines registered at runtime)."""

    engine: str | type[Engine]
    options: str | type[EngineOptions]
    report: str | type[EngineReport]


ENGINES: dict[str, EngineEntry] = {
    "sim": EngineEntry(
        "workload_eval.engines.sim:SimEngine",
        "workload_eval.engines.sim.options:SimOptions",
        "workload_eval.engines.sim.report:SimReport",
    ),
    "vllm": EngineEntry(
        "workload_eval.engines.vllm:VllmEngine",
        "workload_eval.engines.vllm.options:VllmOptions",
        "workload_eval.engines.vllm.report:VllmReport",
    ),
    "openai": EngineEntry(
        "workload_eval.engines.openai:OpenAIEngine",
        "workload_eval.engines.openai.options:OpenAIOptions",
        "workload_eval.engines.openai.report:OpenAIReport",
    ),
}

T = TypeVar("T")


def register_engine(
    name: str,
    engine: str | type[Engine],
    options: str | type[EngineOptions],
    report: str | type[EngineReport] = EngineReport,
) -> None:
    """Add (or replace) an engine: ``--engine NAME`` then runs it with its own options."""
    ENGINES[name] = EngineEntry(engine, options, report)


def known_engines() -> list[str]:
    return list(ENGINES)


def _entry(name: str) -> EngineEntry:
    entry = ENGINES.get(name)
    if entry is None:
        raise UserError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")
    return entry


def _resolve(ref: str | type[T], what: str) -> type[T]:
    if not isinstance(ref, str):
        return ref
    module, cls = ref.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"{what} is not available: {e}") from None
    return getattr(mod, cls)


def get_engine(name: str) -> Engine:
    return _resolve(_entry(name).engine, f"engine {name!r}")()


def options_model(name: str) -> type[EngineOptions]:
    return _resolve(_entry(name).options, f"engine {name!r}")


def report_model(name: str) -> type[EngineReport]:
    return _resolve(_entry(name).report, f"engine {name!r}")


def option_flag(option: str) -> str:
    """The CLI spelling of an option, for messages: base_url -> --base-url."""
    return "--" + option.replace("_", "-")


OptionsT = TypeVar("OptionsT", bound=EngineOptions)


def validate_options(model: type[OptionsT], engine: str, options: Mapping[str, object]) -> OptionsT:
    """``options`` as ``model``; a mistake is one line naming the engine and its options."""
    known = ", ".join(model.model_fields)
    unknown = sorted(set(options) - set(model.model_fields))
    if unknown:
        raise UserError(f"engine {engine}: unknown option {unknown[0]!r} (known: {known})")
    try:
        return model.model_validate(dict(options))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            raise UserError(
                f"engine {engine}: option {where!r} is required ({option_flag(where)})"
            ) from None
        if not where:
            raise UserError(f"engine {engine}: {msg}") from None
        got = err.get("input")
        raise UserError(f"engine {engine}: option {where!r}: {msg} (got {got!r})") from None


def parse_options(name: str, options: Mapping[str, object]) -> EngineOptions:
    """The registered engine's typed options (see :func:`validate_options`)."""
    return validate_options(options_model(name), name, options)


__all__ = [
    "ENGINES",
    "Engine",
    "EngineConfig",
    "EngineEntry",
    "EngineOptions",
    "get_engine",
    "known_engines",
    "options_model",
    "parse_options",
    "register_engine",
    "report_model",
    "validate_options",
]
