"""Loading an experiment spec: YAML or plain data into a validated ExperimentSpec, every
error as ``file:line: key.path: what was expected``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from workload_eval import limits, paper
from workload_eval.errors import UserError
from workload_eval.experiments.spec import ExperimentSpec, GridSpec
from workload_eval.experiments.spec_errors import (
    best_error,
    error_message,
    key_path,
    parse_key_path,
    yaml_line,
)
from workload_eval.inputs import loads_yaml, read_text
from workload_eval.schedules import RATE_DRIVEN_KINDS, ScheduleSpec
from workload_eval.slo import run_level

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
            err = best_error(e)
            loc = err["loc"]
            # a key inherited from the top level is reported at its top-level path
            path = (prefix if loc and loc[0] in own else "") + key_path(loc)
            raise UserError(f"{src}: {path}: {error_message(err)}") from None
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
    adapter: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)
    for i, entry in enumerate(grid.schedules):
        for combo in entry.expand():
            closed = combo["kind"] == "concurrency"
            if entry.rate == "capacity" and combo["kind"] not in RATE_DRIVEN_KINDS:
                users = " (a closed loop searches its users: concurrency: capacity)"
                raise UserError(
                    f"{src}: {prefix}schedules[{i}].rate: 'capacity' needs a rate-driven "
                    f"schedule ({', '.join(RATE_DRIVEN_KINDS)}), "
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
                msg = error_message(err)
                if err.get("type") == "extra_forbidden":
                    msg = f"not a setting of schedule kind {combo['kind']!r}"
                raise UserError(f"{src}: {path}: {msg}") from None


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
            line = yaml_line(root, parse_key_path(key))
            if line is not None:
                raise UserError(f"{p}:{line}: {rest}") from None
        raise


def spec_from_yaml_text(text: str, *, source: str = "spec.yaml") -> ExperimentSpec:
    """Validate YAML text (tests, notebooks) without a file."""
    return build_spec(loads_yaml(text, source), source=source)
