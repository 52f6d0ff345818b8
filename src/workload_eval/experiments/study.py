"""The seed paper's whole study as one experiment spec, run by the sweep, then reported.

The spec is plain data (also saved as ``OUT/spec.yaml``), so ``workload-eval sweep
OUT/spec.yaml --out OUT`` re-runs or extends exactly the same study, and re-running
``reproduce`` resumes: completed points are read back from the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workload_eval import paper
from workload_eval.storage import atomic_write_text


@dataclass(frozen=True)
class StudyPlan:
    """The knobs that differ between the full study and ``--quick``."""

    big_kv: tuple[int, ...]  # OPT-13B and Llama-2-13B
    small_kv: tuple[int, ...]  # OPT-6.7B and Llama-2-7B
    num_requests: tuple[int, ...]
    duration_s: float
    tolerance: float


# The paper: 13B models at 643 blocks (Figure 2) and every model at 150..600 (Figure 3).
FULL = StudyPlan(
    big_kv=paper.KV_BLOCKS_13B,
    small_kv=paper.KV_BLOCKS_7B,
    num_requests=paper.NUM_REQUESTS,
    duration_s=paper.ONLINE_DURATION_S,
    tolerance=0.02,
)
QUICK = StudyPlan(
    big_kv=(150, 600, paper.KV_BLOCKS_MAX),
    small_kv=(150, 600),
    num_requests=(100, 1000),
    duration_s=60.0,
    tolerance=0.1,
)


def paper_tokens_per_request(calibration_dir: str | Path | None = None) -> dict[str, float]:
    """Mean prompt + generated tokens per request the paper processed, per workload: its
    OPT-13B offline token / request throughput at N = 1000 and 643 blocks (the paper ran
    without ``ignore_eos``, so its outputs stopped at EOS)."""
    from workload_eval.errors import UserError
    from workload_eval.report.paper import find_calibration_dir, load_paper

    folder = find_calibration_dir(calibration_dir)
    if folder is None:
        raise UserError(
            "--output-len-model eos:paper needs the paper's measurements "
            "(--calibration-dir or ../shared/calibration)"
        )
    off, _ = load_paper(folder)
    sel = off[
        (off.model == paper.MODELS[0])
        & (off.num_requests == max(paper.NUM_REQUESTS))
        & (off.kv_blocks == paper.KV_BLOCKS_MAX)
    ]
    return {
        str(r.workload): float(r.token_throughput / r.request_throughput) for r in sel.itertuples()
    }


def output_models_for(model: str | None, calibration_dir: str | Path | None) -> Any:
    """``eos:paper`` -> one eos target per workload; anything else applies to every workload."""
    if model is None or model.strip() in ("", "reference"):
        return None
    if model.strip() != "eos:paper":
        return model
    targets = paper_tokens_per_request(calibration_dir)
    return {w: f"eos:{targets[w]:.1f}" for w in paper.WORKLOADS if w in targets}


def study_data(plan: StudyPlan = FULL, output_len_model: Any = None) -> dict[str, Any]:
    """The experiment spec (as YAML-ready data) of the paper's study on the simulator."""
    extra = {} if output_len_model is None else {"output_len_model": output_len_model}
    return {
        **extra,
        "name": "paper-reproduction" + ("-quick" if plan is QUICK else ""),
        "description": (
            "The Importance of Workload Choice in Evaluating LLM Inference Systems "
            "(EuroMLSys '24), on the simulator with the seed's settings: vLLM 0.2 policy, "
            "A100-40GB, block size 16, max_num_batched_tokens 2560, max_num_seqs 2048, "
            "max_model_len 2048, seed 0."
        ),
        "engines": [{"engine": "sim"}],
        "gpus": [paper.GPU],
        "workloads": list(paper.WORKLOADS),
        "seeds": [paper.SEED],
        "schedules": [
            {"kind": "offline", "num_requests": list(plan.num_requests)},
            {"kind": "poisson", "rate": "capacity", "duration": plan.duration_s},
        ],
        "slos": [paper.SLO_TEXT],
        # the paper judged each rate by its point estimate: no confidence intervals here
        "capacity": {"rule": "bisect", "tolerance": plan.tolerance, "confidence": None},
        "groups": [
            {"name": "13b", "models": list(paper.MODELS_13B), "kv_blocks": list(plan.big_kv)},
            {"name": "7b", "models": list(paper.MODELS_7B), "kv_blocks": list(plan.small_kv)},
        ],
    }


def _prepare_one(workload: str, model: str) -> str | None:
    from workload_eval.errors import UserError
    from workload_eval.workloads import load_workload

    try:
        load_workload(workload, model, num_requests=1)
    except UserError as e:  # the sweep reports it, point by point
        return str(e)
    return None


def prepare_workloads(data: dict[str, Any], jobs: int) -> None:
    """Tokenize each (workload, tokenizer) once, in parallel, into the workloads cache.

    Without this, parallel sweep workers would tokenize the same big dataset (ShareGPT)
    at the same time; with a warm cache it costs a cached read per pair.
    """
    from workload_eval.models import resolve_model

    models = [m for g in data["groups"] for m in g["models"]]
    by_family = {resolve_model(m).tokenizer: m for m in models}
    # biggest first, so the longest tokenization starts at once
    order = sorted(data["workloads"], key=lambda w: w != "sharegpt")
    pairs = [(w, m) for w in order for m in by_family.values()]
    if jobs <= 1:
        for w, m in pairs:
            _prepare_one(w, m)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(_prepare_one, *zip(*pairs, strict=True)))


@dataclass
class Reproduction:
    out: Path
    sweep: Any  # experiments.SweepResult
    report: Any  # report.Report
    sweep_s: float
    report_s: float


def reproduce(
    out: str | Path,
    *,
    quick: bool = False,
    jobs: int = 1,
    calibration_dir: str | Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    output_len_model: str | None = None,
) -> Reproduction:
    """Run (or resume) the paper's study into ``out`` and render its report there.

    ``output_len_model``: reference (default), ``eos:paper`` (each workload's outputs stop
    at EOS so its mean tokens per request is the paper's), or one model for every workload.
    """
    from workload_eval.experiments import build_spec, run_sweep
    from workload_eval.experiments.executors import make_executor
    from workload_eval.report.html import build_report
    from workload_eval.report.paper import find_calibration_dir
    from workload_eval.storage import ensure_writable_dir

    find_calibration_dir(calibration_dir)  # a bad folder fails now, not after the study
    out = ensure_writable_dir(out)
    models = output_models_for(output_len_model, calibration_dir)
    data = study_data(QUICK if quick else FULL, models)
    spec_path = out / "spec.yaml"
    atomic_write_text(spec_path, yaml.safe_dump(data, sort_keys=False))
    spec = build_spec(data, source=spec_path)
    t0 = time.perf_counter()
    prepare_workloads(data, jobs)
    result = run_sweep(
        spec, out, executor=make_executor("local", jobs=jobs), progress=progress, log=log
    )
    t1 = time.perf_counter()
    report = None
    if not result.interrupted:
        report = build_report(
            out,
            out / "report",
            calibration_dir=calibration_dir,
            title="The paper's study, reproduced on the simulator",
        )
    return Reproduction(out, result, report, t1 - t0, time.perf_counter() - t1)
