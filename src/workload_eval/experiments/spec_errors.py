"""Spec errors that read as the user wrote the spec: pydantic's error locations as key
paths (``groups[1].schedules[0].rate``) and key paths as YAML lines."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from workload_eval.engines.base import option_flag


def best_error(e: ValidationError) -> Any:
    """The error that explains the input: for a union (a rate list or a range), the
    branch whose type matched and whose value was wrong, not "should be a list"."""
    errors = e.errors()
    for err in errors:
        kind = str(err.get("type", ""))
        if not (kind.endswith("_type") or kind.startswith(("literal", "union"))):
            return err
    return errors[0]


def key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("list[...]",) or "[" in str(p) or str(p).startswith(("function-", "literal")):
            continue  # pydantic's union-branch tags carry no user meaning
        else:
            out += ("." if out else "") + str(p)
    return out


def error_message(err: Any) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err.get("type") == "extra_forbidden":
        msg = "unknown setting"
    loc = err.get("loc") or ()
    if err.get("type") == "missing" and loc and loc[0] == "engines":
        msg += f" ({option_flag(str(loc[-1]))} on the command line)"  # an engine's own option
    return msg


def yaml_line(node: yaml.Node | None, path: list[str | int]) -> int | None:
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


def parse_key_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out
