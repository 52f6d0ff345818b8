"""What a workload argument names: a catalog entry, a use-case family, a workload file, an
inline shorthand, a lengths/trace file, or a text dataset file.

One resolver for every command and the Python API, so ``run``, ``capacity``, sweep specs
and ``workloads describe/plot/export`` accept the same forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from workload_eval.errors import UserError
from workload_eval.workloads.catalog import WORKLOADS, WorkloadSpec
from workload_eval.workloads.families import FAMILIES, get_family
from workload_eval.workloads.lengths_files import peek_format
from workload_eval.workloads.specs import (
    KINDS,
    GeneratedSpec,
    TraceWorkload,
    is_inline,
    looks_like_spec_file,
    parse_inline,
    read_spec_file,
)

RefKind = Literal["catalog", "dataset", "generated", "lengths"]
FORMS_HELP = (
    "a catalog name, a use-case family, a workload file (.yaml/.json with a kind), "
    f"an inline spec ({'|'.join(KINDS)}:key=value,...), a lengths/trace file, or a dataset file"
)


@dataclass(frozen=True)
class WorkloadRef:
    """A resolved workload argument; exactly one of catalog / generated / path applies."""

    name: str
    kind: RefKind
    catalog: WorkloadSpec | None = None
    generated: GeneratedSpec | None = None
    path: Path | None = None  # lengths file, dataset file or the spec file
    base: Path | None = None  # folder that relative paths inside a spec are resolved against
    origin: str = ""  # where it was defined, for messages and describe

    @property
    def where(self) -> str:
        return (
            f"workload {self.name!r} ({self.origin})" if self.origin else f"workload {self.name!r}"
        )


def _from_spec(name: str, spec: GeneratedSpec, origin: str, base: Path | None) -> WorkloadRef:
    if isinstance(spec, TraceWorkload):
        assert spec.file is not None
        path = (
            Path(spec.file) if base is None or Path(spec.file).is_absolute() else base / spec.file
        )
        if not path.is_file():
            raise UserError(f"{origin}: file {spec.file!r}: no such file ({path})")
        return WorkloadRef(name=name, kind="lengths", path=path, origin=origin, generated=spec)
    return WorkloadRef(name=name, kind="generated", generated=spec, base=base, origin=origin)


def _from_file(path: Path) -> WorkloadRef:
    name = path.name.split(".")[0] or path.name
    if looks_like_spec_file(path):
        return _from_spec(name, read_spec_file(path), str(path), path.parent)
    if peek_format(path) is not None:
        return WorkloadRef(name=name, kind="lengths", path=path, origin=str(path))
    return WorkloadRef(name=name, kind="dataset", path=path, origin=str(path))


def resolve_workload(arg: str, data_file: str | Path | None = None) -> WorkloadRef:
    """The workload an argument names; an unknown one is a UserError listing the forms."""
    if not isinstance(arg, str) or not arg.strip():
        raise UserError(f"workload {arg!r}: expected {FORMS_HELP}")
    key = arg.strip().lower().replace("-", "_")
    if data_file is not None:
        path = Path(data_file)
        if key in WORKLOADS:
            return WorkloadRef(name=key, kind="catalog", catalog=WORKLOADS[key], path=path)
        ref = _from_file(path)
        return WorkloadRef(**{**ref.__dict__, "name": arg})
    if key in WORKLOADS:
        return WorkloadRef(name=key, kind="catalog", catalog=WORKLOADS[key])
    family = get_family(arg)
    if family is not None:
        return WorkloadRef(
            name=family.name, kind="generated", generated=family.spec, origin=family.source
        )
    if is_inline(arg):
        spec = parse_inline(arg)
        return _from_spec(spec.kind, spec, "inline", None)
    path = Path(arg).expanduser()
    if path.is_file():
        return _from_file(path)
    if path.suffix.lower() in (".yaml", ".yml", ".json", ".jsonl", ".csv", ".parquet", ".gz"):
        raise UserError(f"workload {arg!r}: no such file")
    raise UserError(
        f"unknown workload {arg!r} (expected one of {', '.join([*WORKLOADS, *FAMILIES])}; "
        f"or {FORMS_HELP.split(', ', 2)[2]})"
    )


def check_workload(arg: str) -> str:
    """Validate a workload argument without reading any dataset (specs are parsed)."""
    resolve_workload(arg)
    return arg
