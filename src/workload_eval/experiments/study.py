"""The seed paper's whole study as one experiment spec, run by the sweep, then reported.

The spec is plain data (also saved as ``OUT/spec.yaml``), so ``workload-eval sweep
OUT/spec.yaml --out OUT`` re-runs or extends exactly the same study, and re-running
``reproduce`` resumes: completed points are read back from the store. What the study chose
(output lengths, stop models, rate grids, the paper tables used) is in
``OUT/paper_study.json`` (:mod:`workload_eval.experiments.paper_plan`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from workload_eval import paper
from workload_eval.experiments.paper_plan import (
    FULL,
    PAPER_EOS,
    QUICK,
    REFERENCE,
    StudyRecord,
    capacity_grids,
    lengths_label,
    offline_knees,
    stop_row,
    study_data,
)
from workload_eval.paper_data import PaperTables, load_paper_tables
from workload_eval.paper_eos import StopModel, stop_models
from workload_eval.storage import atomic_write_text


def lengths_mode(output_len_model: str | None) -> str:
    """PAPER_EOS (the default, also ``eos:paper``), REFERENCE, or one model for every workload."""
    text = (output_len_model or "").strip()
    if text in ("", "eos:paper", PAPER_EOS):
        return PAPER_EOS
    if text == REFERENCE:
        return REFERENCE
    from workload_eval.workloads.output_models import parse_output_len_model

    return str(parse_output_len_model(text))


def paper_tokens_per_request(calibration_dir: str | Path | None = None) -> dict[str, float]:
    """Mean prompt + generated tokens per request the paper processed, per workload: its
    OPT-13B offline token / request throughput at N = 1000, averaged over KV sizes."""
    from workload_eval.paper_eos import paper_tokens

    tokens = paper_tokens(load_paper_tables(calibration_dir), paper.MODELS[0])
    return {w: t[max(paper.NUM_REQUESTS)] for w, t in tokens.items()}


def _prepare_one(workload: str, model: str) -> str | None:
    from workload_eval.errors import UserError
    from workload_eval.workloads import load_workload

    try:
        load_workload(workload, model, num_requests=1)
    except UserError as e:  # the sweep reports it, point by point
        return str(e)
    return None


def prepare_workloads(models: list[str], workloads: list[str], jobs: int) -> None:
    """Tokenize each (workload, tokenizer) once, in parallel, into the workloads cache.

    Without this, parallel sweep workers would tokenize the same big dataset (ShareGPT)
    at the same time; with a warm cache it costs a cached read per pair.
    """
    from workload_eval.models import resolve_model

    by_family = {resolve_model(m).tokenizer: m for m in models}
    # biggest first, so the longest tokenization starts at once
    order = sorted(workloads, key=lambda w: w != "sharegpt")
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
    record: StudyRecord
    sweep_s: float
    report_s: float


def plan_study(
    *,
    quick: bool,
    lengths: str,
    tables: PaperTables,
    stop: dict[tuple[str, str], StopModel] | None = None,
    knees: dict[tuple[str, str, int], float] | None = None,
) -> tuple[dict[str, Any], StudyRecord]:
    """The spec data and the record of what was chosen (stop models, grids, tables).

    ``stop``: the stop models when already derived; ``knees``: our offline throughputs, where
    borrowed lattices start (``capacity_grids``).
    """
    plan = QUICK if quick else FULL
    models, workloads = list(paper.MODELS), list(paper.WORKLOADS)
    if stop is None:
        stop = stop_models(tables, models, workloads) if lengths == PAPER_EOS else {}
    grids = capacity_grids(tables, plan, models, workloads, knees)
    data = study_data(plan, lengths, stop, grids)
    record = StudyRecord(
        lengths=lengths,
        label=lengths_label(lengths),
        capacity_rule=(
            f"the paper's rule (paper.max_rate_under_slo: {paper.CAPACITY_RULE}) on the "
            "paper's rate grid of each configuration, extended by its step where our knee "
            "lies outside it"
        ),
        tables=tables.sources(),
        stop_models=[stop_row(s) for s in stop.values()],
        grids={f"{m}/{w}/{kv}": g.source for (m, w, kv), g in grids.items()},
    )
    return data, record


def _offline_only(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "groups": [g for g in data["groups"] if "/offline" in g["name"]]}


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

    ``output_len_model``: None / ``eos:paper`` (default: outputs stop where the paper's
    did), ``reference`` (the datasets' outputs, ``ignore_eos``), or one model for every
    workload (``eos:TOKENS``, ``recorded:RUN_DIR``).
    """
    from workload_eval.experiments import build_spec, run_sweep
    from workload_eval.experiments.executors import make_executor
    from workload_eval.report.html import build_report
    from workload_eval.storage import ensure_writable_dir

    tables = load_paper_tables(calibration_dir)  # a bad table fails now, not after the study
    out = ensure_writable_dir(out)
    lengths = lengths_mode(output_len_model)
    t0 = time.perf_counter()
    prepare_workloads(list(paper.MODELS), list(paper.WORKLOADS), jobs)
    stop = (
        stop_models(tables, list(paper.MODELS), list(paper.WORKLOADS))
        if lengths == PAPER_EOS
        else {}
    )
    spec_path = out / "spec.yaml"
    # Offline first: our offline throughputs say where each borrowed capacity search starts.
    data, _ = plan_study(quick=quick, lengths=lengths, tables=tables, stop=stop)
    offline = run_sweep(
        build_spec(_offline_only(data), source=spec_path),
        out,
        executor=make_executor("local", jobs=jobs),
        progress=progress,
        log=log,
    )
    result = offline
    if not offline.interrupted:
        knees = offline_knees(offline.index)
        data, record = plan_study(
            quick=quick, lengths=lengths, tables=tables, stop=stop, knees=knees
        )
        atomic_write_text(spec_path, yaml.safe_dump(data, sort_keys=False))
        record.save(out)
        result = run_sweep(
            build_spec(data, source=spec_path),
            out,
            executor=make_executor("local", jobs=jobs),
            progress=progress,
            log=log,
        )  # the offline points are read back from the store
        result = replace(
            result,
            ran=offline.ran + result.ran,
            reused=result.reused - offline.ran,
            failed={**offline.failed, **result.failed},
        )
    else:
        _, record = plan_study(quick=quick, lengths=lengths, tables=tables, stop=stop)
    t1 = time.perf_counter()
    report = None
    if not result.interrupted:
        report = build_report(
            out,
            out / "report",
            calibration_dir=calibration_dir,
            title="The paper's study, reproduced on the simulator",
            jobs=jobs,
        )
    return Reproduction(out, result, report, record, t1 - t0, time.perf_counter() - t1)
