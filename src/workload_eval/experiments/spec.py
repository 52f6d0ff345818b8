"""The declarative experiment spec (YAML): axes of a study, validated with key-path errors.

Every field defaults to the seed paper's setting (OPT-13B on an A100-40GB, 643 KV blocks
of 16 tokens, 2560 batched tokens, 2048 sequences, max_model_len 2048, vLLM 0.2 policy,
seed 0, 600 s Poisson arrivals, SLO p95 normalized latency <= 0.1875 s/token).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from workload_eval import limits, paper
from workload_eval.analysis.intervals import CONFIDENCE_LEVEL
from workload_eval.engines.base import EngineConfig, option_flag, options_model
from workload_eval.errors import UserError
from workload_eval.inputs import loads_yaml, read_text
from workload_eval.limits import MAX_INT, Seed
from workload_eval.slo import SLO, check_slo, run_level
from workload_eval.strict import NoBoolNumbers

# Axes set per grid point, so an engine entry may not set them.
AXIS_FIELDS = {"model", "gpu", "kv_blocks", "gpu_memory_utilization", "seed"}


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list | tuple) or v is None else [v]


def _check_engine(name: str) -> str:
    from workload_eval.engines.base import known_engines

    if name not in known_engines():
        raise ValueError(f"unknown engine {name!r} (expected one of {', '.join(known_engines())})")
    return name


def _check_model(name: str) -> str:
    from workload_eval.models import resolve_model

    try:
        resolve_model(name)
    except UserError as e:
        raise ValueError(str(e)) from None
    return name


def _check_gpu(name: str) -> str:
    try:
        from workload_eval.engines.sim.hardware import known_gpus, resolve_gpu
    except ImportError:  # the simulator's catalog is optional for other engines
        return name
    try:
        resolve_gpu(name)
    except (UserError, KeyError, ValueError):
        raise ValueError(
            f"unknown gpu {name!r} (expected one of {', '.join(known_gpus())})"
        ) from None
    return name


def _check_workload(name: str) -> str:
    """A catalog name, family, workload file, inline spec or data file (no dataset is read)."""
    from workload_eval.workloads.resolve import check_workload

    try:
        return check_workload(name)
    except UserError as e:
        raise ValueError(str(e)) from None


_Models = Annotated[list[Annotated[str, AfterValidator(_check_model)]], BeforeValidator(_as_list)]
_Gpus = Annotated[list[Annotated[str, AfterValidator(_check_gpu)]], BeforeValidator(_as_list)]
_Workloads = Annotated[
    list[Annotated[str, AfterValidator(_check_workload)]], BeforeValidator(_as_list)
]
_Blocks = Annotated[list[Annotated[int, Field(gt=0, le=MAX_INT)]] | None, BeforeValidator(_as_list)]
_Utils = Annotated[list[Annotated[float, Field(gt=0, le=1)]] | None, BeforeValidator(_as_list)]
_Seeds = Annotated[list[Seed], BeforeValidator(_as_list)]
# Every model of a spec refuses NaN and infinity: no setting means "infinitely".
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class EngineEntry(NoBoolNumbers):
    """One engine and its fixed knobs: shared EngineConfig fields (except the swept axes) and
    the engine's own options, flat (``policy: vllm-v1``) or under ``options:``."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    engine: Annotated[str, AfterValidator(_check_engine)] = "sim"
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


def _engine_entries(v: Any) -> Any:
    v = _as_list(v)
    return [{"engine": e} if isinstance(e, str) else e for e in v] if isinstance(v, list) else v


class RateRange(NoBoolNumbers):
    """Rates start, start+step, ... up to and including stop."""

    model_config = _STRICT

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


def _scalar_rate(v: Any) -> Any:
    return [v] if isinstance(v, int | float) and not isinstance(v, bool) else v


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
    rate: Annotated[_Rate, BeforeValidator(_scalar_rate)] = None

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


def _confidence(v: Any) -> Any:
    from workload_eval.experiments.verdicts import parse_confidence

    try:
        return parse_confidence(v, where="")
    except UserError as e:
        raise ValueError(str(e).strip()) from None


_Grid = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] | RateRange


class CapacityOptions(NoBoolNumbers):
    """How ``rate: capacity`` schedules are searched (see experiments.capacity)."""

    model_config = _STRICT

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
    confidence: Annotated[float | None, BeforeValidator(_confidence)] = CONFIDENCE_LEVEL

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


def _slos(v: Any) -> Any:
    if isinstance(v, dict):
        return [{"metric": k, "op": "<=", "value": x} for k, x in v.items()]
    v = _as_list(v)
    out = []
    for s in v or []:
        if isinstance(s, str):
            try:
                out.append(SLO.parse(s, where="slos").model_dump())
            except UserError as e:
                raise ValueError(str(e).removeprefix("slos: ")) from None
        else:
            out.append(s)
    return out


def _known_metric(slo: SLO) -> SLO:
    try:
        return check_slo(slo, where="slo")
    except UserError as e:
        raise ValueError(str(e).removeprefix("slo: ")) from None


class GridSpec(NoBoolNumbers):
    """One group's axes: the cross product of these is the group's points."""

    model_config = _STRICT

    name: str = "main"
    engines: Annotated[list[EngineEntry], BeforeValidator(_engine_entries)] = Field(
        default_factory=lambda: [EngineEntry()]
    )
    models: _Models = Field(default_factory=lambda: [paper.MODELS[0]])
    gpus: _Gpus = Field(default_factory=lambda: [paper.GPU])
    kv_blocks: _Blocks = None
    gpu_memory_utilization: _Utils = None
    workloads: _Workloads = Field(default_factory=lambda: list(paper.WORKLOADS))
    schedules: Annotated[list[ScheduleEntry], BeforeValidator(_as_list)] = Field(
        default_factory=_default_schedules
    )
    seeds: _Seeds = Field(default_factory=lambda: [paper.SEED])
    slos: Annotated[list[Annotated[SLO, AfterValidator(_known_metric)]], BeforeValidator(_slos)] = (
        Field(default_factory=lambda: [SLO(metric=paper.SLO_METRIC, value=paper.SLO_S_PER_TOKEN)])
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

    model_config = _STRICT

    name: str = "experiment"
    description: str = ""
    groups: list[GridSpec]
    source: str | None = None  # the YAML file it came from


_GROUP_KEYS = set(GridSpec.model_fields)


def build_spec(data: Any, *, source: str | Path | None = None) -> ExperimentSpec:
    """Validate plain data (a parsed YAML mapping) into a spec; errors name the key path."""
    src = str(source) if source is not None else "spec"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{src}: expected a mapping of settings at the top level")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{src}: {key}: expected text (got a {type(data[key]).__name__})")
    top = {k: v for k, v in data.items() if k not in ("name", "description", "groups")}
    unknown = sorted(set(top) - _GROUP_KEYS, key=str)
    if unknown:
        raise UserError(
            f"{src}: {unknown[0]}: unknown setting (expected one of "
            f"{', '.join(sorted(_GROUP_KEYS | {'name', 'description', 'groups'}))})"
        )
    raw_groups = data.get("groups")
    groups: list[tuple[str, dict[str, Any], dict[str, Any]]] = []  # prefix, own keys, merged
    if raw_groups is None:
        groups.append(("", {}, top))
    elif not isinstance(raw_groups, list) or not raw_groups:
        raise UserError(f"{src}: groups: expected a non-empty list of mappings")
    else:
        for i, g in enumerate(raw_groups):
            if not isinstance(g, dict):
                raise UserError(f"{src}: groups[{i}]: expected a mapping")
            merged = {**top, **g, "name": g.get("name", f"group{i}")}
            groups.append((f"groups[{i}].", g, merged))
    base = Path(source).parent if source is not None else Path.cwd()
    built: list[GridSpec] = []
    for prefix, own, g in groups:
        try:
            grid = GridSpec.model_validate(g)
        except ValidationError as e:
            err = _best_error(e)
            loc = err["loc"]
            # a key inherited from the top level is reported at its top-level path
            path = (prefix if loc and loc[0] in own else "") + _loc_str(loc)
            raise UserError(f"{src}: {path}: {_msg(err)}") from None
        _check_schedules(grid, src, prefix if "schedules" in own else "")
        if any(e.is_capacity for e in grid.schedules) and not run_level(grid.slos):
            raise UserError(
                f"{src}: {prefix if 'slos' in own else ''}slos: a capacity search needs a "
                f"bound on a run metric, e.g. {paper.SLO_TEXT}"
            )
        for attr in ("data_dir", "tokenizer_dir"):
            v = getattr(grid, attr)
            if v is not None and not Path(v).is_absolute():
                setattr(grid, attr, str((base / v).resolve()))
        built.append(grid)
    total = sum(g.num_runs() for g in built)
    if total > limits.MAX_POINTS.value():
        raise UserError(
            f"{src}: expands to {total:,} runs, more than the {limits.MAX_POINTS.value():,} a "
            f"study may have (fewer values per axis, or raise ${limits.MAX_POINTS.env})"
        )
    names = [g.name for g in built]
    if len(set(names)) != len(names):
        raise UserError(f"{src}: groups: group names must be unique (got {names})")
    return ExperimentSpec(
        name=str(data.get("name", "experiment")),
        description=str(data.get("description", "")),
        groups=built,
        source=str(source) if source is not None else None,
    )


def _check_schedules(grid: GridSpec, src: str, prefix: str) -> None:
    """Every expanded schedule must be a valid ScheduleSpec (a capacity rate stands in)."""
    from workload_eval.schedules import ScheduleSpec

    adapter: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)
    for i, entry in enumerate(grid.schedules):
        for combo in entry.expand():
            closed = combo["kind"] == "concurrency"
            if entry.rate == "capacity" and combo["kind"] in ("offline", "trace", "concurrency"):
                users = " (a closed loop searches its users: concurrency: capacity)"
                raise UserError(
                    f"{src}: {prefix}schedules[{i}].rate: 'capacity' needs a rate-driven "
                    f"schedule (poisson, poisson-exp, gamma, constant, sessions), "
                    f"not {combo['kind']!r}{users if closed else ''}"
                )
            if entry.concurrency_capacity and not closed:
                raise UserError(
                    f"{src}: {prefix}schedules[{i}].concurrency: 'capacity' searches the users "
                    f"of kind 'concurrency', not {combo['kind']!r}"
                )
            probe = combo
            if entry.is_capacity:
                probe = {**combo, "concurrency": 1} if closed else {**combo, "rate": 1.0}
            try:
                adapter.validate_python(probe)
            except ValidationError as e:
                err = e.errors()[0]
                sub = [p for p in err["loc"][1:] if not isinstance(p, int)]
                path = f"{prefix}schedules[{i}]" + "".join(f".{p}" for p in sub)
                msg = _msg(err)
                if err.get("type") == "extra_forbidden":
                    msg = f"not a setting of schedule kind {combo['kind']!r}"
                raise UserError(f"{src}: {path}: {msg}") from None


def _best_error(e: ValidationError) -> Any:
    """The error that explains the input: for a union (a rate list or a range), the
    branch whose type matched and whose value was wrong, not "should be a list"."""
    errors = e.errors()
    for err in errors:
        kind = str(err.get("type", ""))
        if not (kind.endswith("_type") or kind.startswith(("literal", "union"))):
            return err
    return errors[0]


def _loc_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("list[...]",) or "[" in str(p) or str(p).startswith(("function-", "literal")):
            continue  # pydantic's union-branch tags carry no user meaning
        else:
            out += ("." if out else "") + str(p)
    return out


def _msg(err: Any) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err.get("type") == "extra_forbidden":
        msg = "unknown setting"
    loc = err.get("loc") or ()
    if err.get("type") == "missing" and loc and loc[0] == "engines":
        msg += f" ({option_flag(str(loc[-1]))} on the command line)"  # an engine's own option
    return msg


def _line_of(node: yaml.Node | None, path: list[str | int]) -> int | None:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for p in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == p), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(p, int) and p < len(node.value):
            nxt = node.value[p]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def _parse_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a YAML spec; errors read ``file:line: key.path: what was expected``."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file (expected an experiment spec in YAML)")
    text = read_text(p)
    try:
        data = loads_yaml(text, p)  # safe, bounded, strict: aliases, keys, numbers
    except UserError as e:  # as every spec error reads: file:line: what
        head = re.match(rf"{re.escape(str(p))}: line (\d+): ", str(e))
        if head is None:
            raise
        raise UserError(f"{p}:{head.group(1)}: {str(e)[head.end() :]}") from None
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    try:
        return build_spec(data, source=p)
    except UserError as e:
        msg = str(e)
        head = f"{p}: "
        if msg.startswith(head):
            rest = msg[len(head) :]
            key = rest.split(": ", 1)[0]
            line = _line_of(root, _parse_path(key))
            if line is not None:
                raise UserError(f"{p}:{line}: {rest}") from None
        raise


def spec_from_yaml_text(text: str, *, source: str = "spec.yaml") -> ExperimentSpec:
    """Validate YAML text (tests, notebooks) without a file."""
    return build_spec(loads_yaml(text, source), source=source)
