"""The field types of an experiment spec: each axis's values checked against its catalog
(engines, models, GPUs, workloads, metrics), one value or a list."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from workload_eval.errors import UserError
from workload_eval.limits import MAX_INT, Seed
from workload_eval.slo import SLO, check_slo

# Every model of a spec refuses NaN and infinity: no setting means "infinitely".
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def as_list(v: Any) -> Any:
    """One value stands for a list of one (``models: opt-13b``)."""
    return v if isinstance(v, list | tuple) or v is None else [v]


def check_engine(name: str) -> str:
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


ModelNames = Annotated[list[Annotated[str, AfterValidator(_check_model)]], BeforeValidator(as_list)]
GpuNames = Annotated[list[Annotated[str, AfterValidator(_check_gpu)]], BeforeValidator(as_list)]
WorkloadNames = Annotated[
    list[Annotated[str, AfterValidator(_check_workload)]], BeforeValidator(as_list)
]
KvBlockCounts = Annotated[
    list[Annotated[int, Field(gt=0, le=MAX_INT)]] | None, BeforeValidator(as_list)
]
MemoryFractions = Annotated[
    list[Annotated[float, Field(gt=0, le=1)]] | None, BeforeValidator(as_list)
]
Seeds = Annotated[list[Seed], BeforeValidator(as_list)]


def engine_entries(v: Any) -> Any:
    """An engine given by name alone is ``{engine: NAME}``."""
    v = as_list(v)
    return [{"engine": e} if isinstance(e, str) else e for e in v] if isinstance(v, list) else v


def scalar_rate(v: Any) -> Any:
    """One number is a list of one rate."""
    return [v] if isinstance(v, int | float) and not isinstance(v, bool) else v


def confidence_level(v: Any) -> Any:
    from workload_eval.experiments.verdicts import parse_confidence

    try:
        return parse_confidence(v, where="")
    except UserError as e:
        raise ValueError(str(e).strip()) from None


def _slos(v: Any) -> Any:
    if isinstance(v, dict):
        return [{"metric": k, "op": "<=", "value": x} for k, x in v.items()]
    v = as_list(v)
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


# SLOs as text (``ttft_p95<=2``), as {metric: bound} or as SLO mappings
SLOs = Annotated[list[Annotated[SLO, AfterValidator(_known_metric)]], BeforeValidator(_slos)]
