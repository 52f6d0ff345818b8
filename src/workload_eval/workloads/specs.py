"""Workloads described by their shape: YAML/JSON workload files and inline shorthands.

A workload file is one mapping with a ``kind``: ``synthetic``, ``shared_prefix`` (the
measured corpus's ``scenario.workload`` block is itself such a file), ``sessions`` or
``trace`` (a lengths file with arrival times). The inline form is ``KIND:key=value,...``,
e.g. ``synthetic:prompt_tokens=512,output_tokens=256``. Every mistake is one line naming
the file (or the shorthand), the field and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from workload_eval import limits
from workload_eval.errors import UserError
from workload_eval.inputs import loads_json, loads_yaml, read_json, read_text
from workload_eval.limits import Seed
from workload_eval.strict import NoBoolNumbers
from workload_eval.workloads.distributions import (
    DIST_ARGS,
    Empirical,
    Fixed,
    Length,
    LengthDist,
    parse_number,
)
from workload_eval.workloads.shared_prefix import SharedPrefixWorkload

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _within_request_limit(n: int) -> int:
    """A generated pool is the run's requests: bounded like any run (``limits``)."""
    try:
        limits.check_request_count(n, what=f"{n:,} generated")
    except UserError as e:
        raise ValueError(str(e)) from None
    return n


_Count = Annotated[int, Field(ge=1, le=limits.MAX_INT), AfterValidator(_within_request_limit)]


class _Spec(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _at_least_one(field: str, dist: LengthDist) -> None:
    """Lengths of prompts, outputs and turns are >= 1 (empirical files are checked on read)."""
    if not isinstance(dist, Empirical) and dist.lowest < 1:
        what = "value" if isinstance(dist, Fixed) else "min"
        raise ValueError(f"{field}: expected lengths of at least 1 (set {what} >= 1)")


class SyntheticWorkload(_Spec):
    """Independent requests whose prompt and output lengths follow two distributions."""

    kind: Literal["synthetic"] = "synthetic"
    prompt_tokens: Length
    output_tokens: Length
    num_requests: _Count = 1000  # requests generated when the schedule does not say
    seed: Seed | None = None  # overrides the run's seed

    @model_validator(mode="after")
    def _positive(self) -> SyntheticWorkload:
        _at_least_one("prompt_tokens", self.prompt_tokens)
        _at_least_one("output_tokens", self.output_tokens)
        return self


class SessionsWorkload(_Spec):
    """Synthetic multi-turn conversations: prompt = whole history + the new turn.

    Like ``sharegpt_chat`` but shaped by distributions: ``turns`` per session, each turn's
    new ``prompt_tokens`` and its ``output_tokens``; an optional system prompt shared by
    every session; ``think_time`` seconds between a reply and the next turn (fixed, or
    exponential with that mean), used by the ``sessions`` schedule.
    """

    kind: Literal["sessions"] = "sessions"
    num_sessions: _Count = 100
    turns: Length
    prompt_tokens: Length
    output_tokens: Length
    system_prompt_tokens: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    think_time: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] = 0.0
    think_time_dist: Literal["fixed", "exponential"] = "fixed"
    seed: Seed | None = None

    @model_validator(mode="after")
    def _positive(self) -> SessionsWorkload:
        _at_least_one("turns", self.turns)
        _at_least_one("prompt_tokens", self.prompt_tokens)
        _at_least_one("output_tokens", self.output_tokens)
        return self


class TraceWorkload(_Spec):
    """A lengths file replayed as a trace; also the corpus's ``scenario.workload`` of kind trace.

    ``file`` is relative to the workload file's folder. ``ignore_eos``, ``api``,
    ``streaming``, ``num_requests`` and ``sampling`` describe the measured run and are kept.
    """

    kind: Literal["trace"] = "trace"
    file: str | None
    ignore_eos: bool = True
    api: Literal["completion", "chat", "in_process"] = "completion"
    streaming: bool | None = None
    num_requests: int | None = None
    sampling: str | None = None

    @model_validator(mode="after")
    def _has_file(self) -> TraceWorkload:
        if self.file is None:
            raise ValueError("file: the trace file is missing (status trace_missing?)")
        return self


GeneratedSpec = SyntheticWorkload | SharedPrefixWorkload | SessionsWorkload | TraceWorkload
KINDS = ("synthetic", "shared_prefix", "sessions", "trace")
_ADAPTER: TypeAdapter[Any] = TypeAdapter(
    Annotated[GeneratedSpec, Field(discriminator="kind")]  # type: ignore[arg-type]
)
_MODELS = {
    "synthetic": SyntheticWorkload,
    "shared_prefix": SharedPrefixWorkload,
    "sessions": SessionsWorkload,
    "trace": TraceWorkload,
}
_DIST_TAGS = {"fixed", "uniform", "normal", "lognormal", "empirical"}


def _fields_of(kind: str) -> list[str]:
    model = _MODELS[kind]
    names = []
    for name, f in model.model_fields.items():
        names.append(name)
        alias = f.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names += [str(c) for c in alias.choices if c != name]
    return names


def _message(data: dict[str, Any], e: ValidationError) -> str:
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if loc and loc[0] in KINDS:
        loc = loc[1:]
    loc = [p for p in loc if p not in _DIST_TAGS and not p.startswith("function-")]
    msg = err["msg"].removeprefix("Value error, ")
    kind = str(data.get("kind"))
    if err["type"].startswith("union_tag") or (loc == ["kind"]):
        return f"kind: expected one of {', '.join(KINDS)} (got {data.get('kind')!r})"
    if err["type"] == "extra_forbidden":
        parent = data.get(loc[0]) if len(loc) > 1 else None
        if isinstance(parent, dict) and parent.get("type") in DIST_ARGS:
            names = ["type", *DIST_ARGS[parent["type"]]]
        else:
            names = _fields_of(kind)
        return f"{'.'.join(loc)}: unknown field (expected one of {', '.join(names)})"
    if err["type"] == "missing":
        return f"{'.'.join(loc)}: field required"
    field = ".".join(loc)
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or msg.endswith(")") else f" (got {got!r})"
    return f"{field}: {msg}{shown}" if field else f"{msg}{shown}"


def parse_spec(data: Any, *, where: str) -> GeneratedSpec:
    """A workload spec from plain data; mistakes are one-line UserErrors naming ``where``."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping with a 'kind' (got {type(data).__name__})")
    if "kind" not in data:
        raise UserError(f"{where}: kind: field required (expected one of {', '.join(KINDS)})")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise UserError(f"{where}: {_message(data, e)}") from None


def _scalar(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    value = parse_number(text)
    return value.strip() if isinstance(value, str) else value


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses: ``a=1,b=normal(5,2)`` -> two items."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def is_inline(text: str) -> bool:
    head = text.split(":", 1)[0].strip().lower()
    return ":" in text and head in KINDS


def parse_inline(text: str) -> GeneratedSpec:
    """``synthetic:prompt_tokens=512,output_tokens=normal(256,64)`` -> a spec."""
    kind, _, body = text.partition(":")
    where = f"workload {text!r}"
    data: dict[str, Any] = {"kind": kind.strip().lower()}
    for item in _split_top(body):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]+", key.strip()):
            raise UserError(f"{where}: {item.strip()!r}: expected KEY=VALUE")
        if key.strip() in data:  # the last one would win silently
            raise UserError(f"{where}: {key.strip()!r} given twice (keep one)")
        data[key.strip()] = _scalar(value)
    return parse_spec(data, where=where)


def looks_like_spec_file(path: Path) -> bool:
    """A .yaml/.yml file, or a .json holding one mapping with a known ``kind`` or corpus format."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    if suffix != ".json" or not path.is_file() or path.stat().st_size > 16 << 20:
        return False
    try:
        data = read_json(path)
    except UserError:  # not a strict JSON spec: read (and judged) as a data file
        return False
    return isinstance(data, dict) and ("kind" in data or "scenario" in data)


def read_spec_file(path: Path) -> GeneratedSpec:
    """A workload file (YAML or JSON); a measured-corpus experiment file gives its workload."""
    where = str(path)
    text = read_text(path)  # bounded, UTF-8; then strict YAML / JSON (inputs)
    data = loads_yaml(text, path) if path.suffix.lower() != ".json" else loads_json(text, path)
    if isinstance(data, dict) and "kind" not in data and isinstance(data.get("scenario"), dict):
        data = data["scenario"].get("workload")  # a workload-eval-measured/1 experiment
        where = f"{where}: scenario.workload"
    return parse_spec(data, where=where)
