"""Which measurements back a simulated deployment, or where the simulator extrapolates.

Data-driven from the calibration record (``calibration_record.json``: one entry per measured
experiment the constants were fitted or checked on, with its deployment and its error), so the
statement follows the record when the corpus grows. A deployment is *validated* when
experiments of the same engine generation, GPU, model kind, number formats and parallelism
exist; otherwise every dimension without a measurement is named.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from workload_eval.engines.sim.calibration import load_calibration_record
from workload_eval.engines.sim.deployment import Deployment

GENERATION_LABELS = {
    "vllm-0.2": "vLLM 0.2 (the paper)",
    "vllm-v0": "vLLM V0 (0.3-0.10)",
    "vllm-v1-sync": "vLLM V1 without async scheduling (0.8-0.13)",
    "vllm-v1": "vLLM V1 with async scheduling (0.14+)",
}


class RecordedExperiment(BaseModel):
    """One measured experiment of the calibration record and the simulator's error on it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    engine_generation: str
    gpu: str
    gpu_architecture: str
    model: str
    model_type: str
    moe: bool
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    expert_parallel: bool = False
    weight_format: str = "fp16"
    kv_cache_bytes: int = 2
    cells: int = 0
    median_abs_error: float | None = None


@dataclass
class Backing:
    """The statement a run carries in its config and prints on the console."""

    level: str  # validated | partly validated | extrapolated
    statement: str
    experiments: int = 0
    median_abs_error: float | None = None
    extrapolated: list[str] = field(default_factory=list)


def recorded_experiments(record: dict | None = None) -> list[RecordedExperiment]:
    raw = (record if record is not None else load_calibration_record()).get("experiments", [])
    return [RecordedExperiment.model_validate(e) for e in raw]


def _weight_format(fmt: str) -> str:
    return "16-bit" if fmt in ("fp16", "bf16", "16-bit") else fmt


def _gaps(dep: Deployment, pool: Sequence[RecordedExperiment]) -> list[str]:
    """Dimensions of ``dep`` no experiment in ``pool`` shares, in words."""
    gaps: list[str] = []
    gpu = dep.gpu
    if not any(e.gpu == gpu.name for e in pool):
        same_arch = sorted({e.gpu for e in pool if e.gpu_architecture == gpu.architecture})
        near = f" (measured on {', '.join(same_arch)}, same architecture)" if same_arch else ""
        gaps.append(f"GPU {gpu.name}{near}")
    m = dep.model
    kind = "MoE" if m.is_moe else "dense"
    if not any(e.moe == m.is_moe for e in pool):
        gaps.append(f"{kind} models")
    elif not any(e.model_type == _model_type(dep) for e in pool):
        gaps.append(f"model family {_model_type(dep)}")
    fmt = _weight_format(dep.precision.weight_format)
    if not any(_weight_format(e.weight_format) == fmt for e in pool):
        gaps.append(f"{fmt} weights")
    if not any(e.kv_cache_bytes == dep.precision.kv_bytes for e in pool):
        gaps.append(f"{8 * dep.precision.kv_bytes}-bit KV cache")
    par = dep.parallelism
    tps = sorted({e.tensor_parallel_size for e in pool})
    if par.tensor not in tps:
        measured = ", ".join(f"TP{t}" for t in tps) or "none"
        gaps.append(f"TP{par.tensor} (measured: {measured})")
    if par.pipeline > 1 and not any(e.pipeline_parallel_size == par.pipeline for e in pool):
        gaps.append(f"PP{par.pipeline}")
    if par.expert and not any(e.expert_parallel for e in pool):
        gaps.append("expert parallelism")
    return gaps


def _model_type(dep: Deployment) -> str:
    return dep.model.model_type or ("moe" if dep.model.is_moe else "dense")


def backing_for(dep: Deployment, record: dict | None = None) -> Backing:
    """How much of ``dep`` the calibration record's measurements cover."""
    label = GENERATION_LABELS.get(dep.generation, dep.generation)
    experiments = recorded_experiments(record)
    same_engine = [e for e in experiments if e.engine_generation == dep.generation]
    if not same_engine:
        return Backing(
            "extrapolated",
            f"{label}: extrapolated, no measurement of this engine generation backs it "
            "(constants of the nearest generation)",
            extrapolated=[label],
        )
    gaps = _gaps(dep, same_engine)
    matched = [
        e
        for e in same_engine
        if e.gpu == dep.gpu.name
        and e.moe == dep.model.is_moe
        and e.tensor_parallel_size == dep.parallelism.tensor
        and _weight_format(e.weight_format) == _weight_format(dep.precision.weight_format)
        and e.kv_cache_bytes == dep.precision.kv_bytes
    ]
    pool = matched or same_engine
    errors = [e.median_abs_error for e in pool if e.median_abs_error is not None]
    median = statistics.median(errors) if errors else None
    err = f"median {100 * median:.0f}%" if median is not None else "error not recorded"
    where = f"{label} on {dep.gpu.name}" if matched else label
    if not gaps:
        return Backing(
            "validated",
            f"{where}, {dep.parallelism.label}: validated, {err} over {_experiments(len(pool))}",
            len(pool),
            median,
        )
    level = "partly validated" if matched or len(gaps) == 1 else "extrapolated"
    return Backing(
        level,
        f"{label}: {level} ({err} over {_experiments(len(pool))}); extrapolates to "
        + "; ".join(gaps),
        len(pool),
        median,
        gaps,
    )


def _experiments(n: int) -> str:
    return f"{n} measured experiment" + ("" if n == 1 else "s")


def profile_backing(path: str) -> Backing:
    """A run on a measured profile is backed by that profile, not by the calibration."""
    return Backing("measured profile", f"step times from the measured profile {path}")


def backing_line(config: dict) -> str | None:
    """The statement stored in a run's config (``config.resolved.backing``, the SimReport;
    runs stored before the typed record kept it at the top level or in engine_reported)."""
    for cfg in (config.get("resolved") or {}, config, config.get("engine_reported") or {}):
        b = cfg.get("backing") if isinstance(cfg, dict) else None
        if isinstance(b, dict) and isinstance(b.get("statement"), str):
            return f"simulator backing: {b['statement']}"
    return None
