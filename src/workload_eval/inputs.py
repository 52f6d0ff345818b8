"""Reading files a user (or a stranger) hands us: bounded, strict, one-line errors.

Every spec, profile, model config and data file goes through here, so one set of rules
holds at every boundary: reads are bounded (``limits``), gzip bombs are caught while
inflating, text must be UTF-8, JSON is RFC 8259 (no ``NaN``/``Infinity``, no duplicate
keys, no lone surrogates), YAML is safe and small after expanding its aliases, and
nothing nests deeper than the parsers can recurse.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import stat
import zlib
from pathlib import Path
from typing import Any

import yaml

from workload_eval import limits
from workload_eval.errors import UserError

_CHUNK = 1 << 20


# --------------------------------------------------------------------------- bytes and text


def _too_big(path: Path, limit: limits.Limit, size: str) -> UserError:
    return UserError(
        f"{path}: {size}, more than the {limit.value():,} {limit.unit} allowed for "
        f"{limit.name} (raise it with ${limit.env})"
    )


def read_bytes(path: str | Path, *, limit: limits.Limit = limits.MAX_SPEC_BYTES) -> bytes:
    """A file's bytes, gzip inflated when the name ends in ``.gz``; bounded by ``limit``."""
    p = Path(path)
    bound = limit.value()
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode):  # /dev/zero, a FIFO: endless, or blocking forever
            raise UserError(f"{p}: not a regular file (a device, a pipe or a socket)")
        if p.suffix.lower() != ".gz":
            if st.st_size > bound:
                raise _too_big(p, limit, f"{st.st_size:,} bytes")
            with open(p, "rb") as f:
                data = f.read(bound + 1)  # bounded even if the file grows meanwhile
            if len(data) > bound:
                raise _too_big(p, limit, f"over {bound:,} bytes")
            return data
        return _inflate(p, bound, limit)
    except FileNotFoundError:
        raise UserError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a folder (expected a file)") from None
    except PermissionError:
        raise UserError(f"{p}: permission denied") from None
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{p}: cannot read ({type(e).__name__}: {_first_line(e)})") from None


def _inflate(p: Path, bound: int, limit: limits.Limit) -> bytes:
    """Inflate chunk by chunk, refusing as soon as the size or the ratio of what came out to
    what went in so far gives a bomb away (so a bomb stops after a few MiB, not at 1 GiB)."""
    out = bytearray()
    with open(p, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
        while chunk := f.read(_CHUNK):
            out += chunk
            if len(out) > bound:
                raise _too_big(p, limit, f"unpacks to more than {len(out):,} bytes")
            if len(out) > limits.INFLATE_RATIO_AFTER_BYTES and len(
                out
            ) > limits.MAX_INFLATE_RATIO * max(raw.tell(), 1):
                raise UserError(
                    f"{p}: inflates more than {limits.MAX_INFLATE_RATIO}x ({raw.tell():,} "
                    f"bytes to over {len(out):,}): not a data file (a decompression bomb?)"
                )
    return bytes(out)


def decode_utf8(data: bytes, path: str | Path) -> str:
    """UTF-8 text (a leading BOM dropped); a bad byte is named with its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
            f"{e.start}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_text(path: str | Path, *, limit: limits.Limit = limits.MAX_SPEC_BYTES) -> str:
    return decode_utf8(read_bytes(path, limit=limit), path)


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    if "integer string conversion" in s:
        return "a number of more than 4300 digits"
    return s.splitlines()[0] if s else type(e).__name__


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, offset)) + 1


# --------------------------------------------------------------------------- JSON

_CONSTANT = re.compile(r"(?<![\w\"])(-?Infinity|NaN)(?![\w\"])")
# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a low one not after a high.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class _Reject(ValueError):
    """Raised from inside a json hook; carries the one-line reason."""


def _no_constant(name: str) -> Any:
    raise _Reject(f"{name} is not a JSON number (write a finite number, or null)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Reject(f"duplicate key {dup!r} (each key may appear once per object)")
    return d


def loads_json(text: str, path: str | Path, *, first_line: int = 1) -> Any:
    """Strict JSON: what Python's parser would let through silently is an error.

    ``first_line`` is the file line ``text`` starts on (one line of a JSONL file).
    """
    at = first_line - 1
    try:
        obj = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path}: line {e.lineno + at}: invalid JSON ({e.msg} at column {e.colno})"
        ) from None
    except _Reject as e:
        raise UserError(f"{path}: line {_locate(text, str(e)) + at}: {e}") from None
    except RecursionError:
        raise UserError(
            f"{path}: line {first_line}: nested too deeply (more than the parser can follow)"
        ) from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise UserError(f"{path}: line {first_line}: invalid JSON ({_first_line(e)})") from None
    if "\\u" in text and (m := _LONE_SURROGATE.search(text)) is not None and _has_surrogate(obj):
        raise UserError(
            f"{path}: line {line_of(text, m.start()) + at}: a lone UTF-16 surrogate {m.group(0)!s} "
            "in a string (not a character; the text was cut inside an emoji?)"
        )
    return obj


def _locate(text: str, reason: str) -> int:
    """Best-effort line of what a hook rejected (the hooks are not told where they are)."""
    if reason.startswith("duplicate key "):
        key = reason.split("'")[1] if "'" in reason else ""
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
        return line_of(text, hits[1] if len(hits) > 1 else 0)
    m = _CONSTANT.search(text)
    return line_of(text, m.start() if m else 0)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            try:
                o.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return False


def read_json(path: str | Path, *, limit: limits.Limit = limits.MAX_SPEC_BYTES) -> Any:
    return loads_json(read_text(path, limit=limit), path)


# --------------------------------------------------------------------------- YAML

_YAML_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


_KIND = {bool: "true/false", int: "a number", float: "a number", type(None): "null"}


class _StrictLoader(_YAML_BASE):  # type: ignore[misc, valid-type]
    """Safe YAML whose mappings have unique text keys and whose numbers are finite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _YamlReject(line, f"a {type(key).__name__} as a key (keys are text)")
                kind = _KIND.get(type(key), f"a {type(key).__name__}")
                raise _YamlReject(
                    line,
                    f"key {key_node.value} reads as {kind}, not text "
                    f"(quote it: '{key_node.value}':)",
                )
            if key in seen:
                raise _YamlReject(
                    line, f"duplicate key {key!r} (first at line {seen[key]}; keep one)"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        value = super().construct_yaml_str(node)
        if "\x00" in value or not _encodable(value):
            raise _YamlReject(
                node.start_mark.line + 1,
                "a NUL or a lone UTF-16 surrogate (\\ud800-\\udfff) in a string",
            )
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _YamlReject(node.start_mark.line + 1, f"{node.value!r} is not a finite number")
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)
_StrictLoader.add_constructor("tag:yaml.org,2002:str", _StrictLoader.construct_yaml_str)
# YAML 1.2 numbers such as 1e3 and 2.5E-3 (YAML 1.1 reads them as text, so `rate: 1e3`
# would fail with a puzzling type error).
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class _YamlReject(Exception):
    def __init__(self, line: int, msg: str) -> None:
        super().__init__(msg)
        self.line = line


def _check_shape(text: str, path: str | Path) -> None:
    """Walk the event stream (no recursion, no objects built): refuse documents that nest
    too deeply or whose aliases expand past ``MAX_YAML_NODES`` (a "billion laughs")."""
    depth = total = 0
    open_: list[tuple[str | None, int]] = []
    sizes: dict[str, int] = {}
    opened: set[str] = set()
    for ev in yaml.parse(text, Loader=_YAML_BASE):
        line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.MAX_NESTING:
                raise UserError(
                    f"{path}: line {line}: nested more than {limits.MAX_NESTING} levels"
                )
            if ev.anchor:
                sizes.pop(ev.anchor, None)
                opened.add(ev.anchor)
            open_.append((ev.anchor, total))
            total += 1
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = open_.pop()
            if anchor:
                sizes[anchor] = total - start
                opened.discard(anchor)
        elif isinstance(ev, yaml.ScalarEvent):
            total += 1
            if ev.anchor:
                sizes[ev.anchor] = 1
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor in opened:
                raise UserError(f"{path}: line {line}: alias *{ev.anchor} refers to itself")
            if ev.anchor not in sizes:
                raise UserError(
                    f"{path}: line {line}: alias *{ev.anchor} has no &{ev.anchor} before it"
                )
            total += sizes[ev.anchor]
        if total > limits.MAX_YAML_NODES:
            raise UserError(
                f"{path}: line {line}: more than {limits.MAX_YAML_NODES:,} values once its aliases "
                "are expanded (an alias bomb?)"
            )


def loads_yaml(text: str, path: str | Path) -> Any:
    """One YAML document: safe tags only, text keys, no duplicates, finite numbers, small."""
    try:
        _check_shape(text, path)
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except _YamlReject as e:
        raise UserError(f"{path}: line {e.line}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}: line {mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML ({e.problem or e.context or 'syntax'})") from None
    except yaml.YAMLError as e:  # reader errors (control characters) carry no mark
        raise UserError(f"{path}: invalid YAML ({_first_line(e)})") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:  # e.g. an integer of 5000 digits
        raise UserError(f"{path}: invalid YAML value ({_first_line(e)})") from None


def read_yaml(path: str | Path) -> Any:
    return loads_yaml(read_text(path), path)
