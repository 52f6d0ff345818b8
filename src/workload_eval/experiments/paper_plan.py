"""The paper's study as an experiment spec: its axes, its output lengths and its rate grids.

``reproduce`` runs the study with the output lengths the paper's engine produced (the ``eos``
models of :mod:`workload_eval.paper_eos`, one per model, workload and N) and finds each
capacity by the paper's own rule on the paper's own rate grid (``seed-grid``, extended on
its lattice where our knee lies outside it). ``--output-len-model reference`` runs the
datasets' reference outputs instead. Everything chosen here is written into the spec (so
``OUT/spec.yaml`` re-runs it exactly) and into ``OUT/paper_study.json`` (what the report
labels and explains).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from workload_eval import paper
from workload_eval.paper_data import PaperTables
from workload_eval.paper_eos import ONLINE, StopModel, nearest_measured
from workload_eval.results import offline_points
from workload_eval.storage import atomic_write_text

RECORD = "paper_study.json"
PAPER_EOS = "paper-eos"  # the default: outputs stop where the paper's did
REFERENCE = "reference"
DESCRIPTION = (
    "The Importance of Workload Choice in Evaluating LLM Inference Systems (EuroMLSys '24), "
    "on the simulator with the seed's settings: vLLM 0.2 policy, A100-40GB, block size 16, "
    "max_num_batched_tokens 2560, max_num_seqs 2048, max_model_len 2048, seed 0."
)


@dataclass(frozen=True)
class StudyPlan:
    """The knobs that differ between the full study and ``--quick``."""

    big_kv: tuple[int, ...]  # OPT-13B and Llama-2-13B
    small_kv: tuple[int, ...]  # OPT-6.7B and Llama-2-7B
    num_requests: tuple[int, ...]
    duration_s: float

    def kv_blocks(self, model: str) -> tuple[int, ...]:
        return self.big_kv if model in paper.MODELS_13B else self.small_kv


# The paper: 13B models at 643 blocks (Figure 2) and every model at 150..600 (Figure 3).
FULL = StudyPlan(paper.KV_BLOCKS_13B, paper.KV_BLOCKS_7B, paper.NUM_REQUESTS, 600.0)
QUICK = StudyPlan((150, 600, paper.KV_BLOCKS_MAX), (150, 600), (100, 1000), 60.0)


class Grid(BaseModel):
    """One configuration's rate grid and where it comes from."""

    model_config = ConfigDict(frozen=True)

    rates: list[float]
    source: str  # "<model>'s table" or "<model>'s table at <kv> blocks" (borrowed)


class StopRow(BaseModel):
    """One (model, workload) stop model as the report shows it."""

    model: str
    workload: str
    specs: dict[str, str]  # "100"/"500"/"1000"/"online" -> the --output-len-model text
    early: float
    early_len: float
    basis: str
    light_points: int = 0
    paper_avg: float | None = None
    paper_p95: float | None = None
    model_avg: float | None = None
    model_p95: float | None = None


class StudyRecord(BaseModel):
    """What ``reproduce`` chose, for the report and a reader of the results folder."""

    lengths: str  # PAPER_EOS, REFERENCE, or the --output-len-model given for every workload
    label: str  # how every caption and CSV names the output lengths
    capacity_rule: str
    tables: list[str]  # "<model> <experiment>: <origin>"
    stop_models: list[StopRow]
    grids: dict[str, str]  # "<model>/<workload>/<kv>" -> the grid's source

    def save(self, out: Path) -> None:
        atomic_write_text(out / RECORD, self.model_dump_json(indent=1))


def read_record(results_dir: Path) -> StudyRecord | None:
    p = Path(results_dir) / RECORD
    if not p.is_file():
        return None
    try:
        return StudyRecord.model_validate_json(p.read_text())
    except ValueError:
        return None  # a record of another version: the report goes without its labels


def lengths_label(lengths: str) -> str:
    if lengths == PAPER_EOS:
        return "EOS-matched output lengths (the paper's measured tokens per request)"
    if lengths == REFERENCE:
        return "reference output lengths (ignore_eos)"
    return f"output lengths {lengths}"


def stop_row(sm: StopModel) -> StopRow:
    light = sm.light
    return StopRow(
        model=sm.model,
        workload=sm.workload,
        specs={str(k): sm.spec(k) for k in sm.tokens},
        early=sm.early,
        early_len=sm.early_len,
        basis=sm.basis,
        light_points=light.points if light else 0,
        paper_avg=light.paper_avg if light else None,
        paper_p95=light.paper_p95 if light else None,
        model_avg=light.model_avg if light else None,
        model_p95=light.model_p95 if light else None,
    )


def _grid_of(tables: PaperTables, model: str, workload: str, kv: int) -> list[float] | None:
    on = tables.online()
    rows = on[(on["model"] == model) & (on["workload"] == workload)]
    if rows.empty:
        return None
    kvs = sorted(set(rows["kv_blocks"]), key=lambda k: (abs(k - kv), k))
    return sorted(float(r) for r in rows[rows["kv_blocks"] == kvs[0]]["rate"])


# Where a borrowed lattice starts: this share of the knee predicted for it (a start just
# below the knee walks up in a few steps). The prediction is our own offline throughput of
# the configuration when the study has it (the paper's capacities are 80-98% of its offline
# throughputs for alpaca, dolly and sharegpt at 643 blocks), else the measured model's
# capacity scaled by the two models' step times.
ANCHOR_SHARE = 0.85


def _step_time(model: str) -> float:
    """One decode step of a busy batch (64 sequences, 400 tokens of context each)."""
    from workload_eval.engines.sim.hardware import resolve_gpu
    from workload_eval.engines.sim.perf_model import build_perf_model
    from workload_eval.models import resolve_model

    perf = build_perf_model(resolve_model(model), resolve_gpu(paper.GPU))
    return perf.decode_time(64, 64 * 400)


def _anchor(tables: PaperTables, source: str, model: str, workload: str, kv: int) -> float:
    """A starting rate for ``model``: the source's capacity (the paper's rule on its own
    table) scaled by how much faster ``model`` steps, times ANCHOR_SHARE."""
    on = tables.online()
    rows = on[(on["model"] == source) & (on["workload"] == workload)]
    kvs = sorted(set(rows["kv_blocks"]), key=lambda k: (abs(k - kv), k))
    at = rows[rows["kv_blocks"] == kvs[0]].sort_values("rate")
    ok = at["normalized_latency_p95"] <= paper.SLO_S_PER_TOKEN
    knee = paper.max_rate_under_slo(at["rate"].tolist(), ok.tolist()).rate or float(
        at["rate"].min()
    )
    return knee * _step_time(source) / _step_time(model) * ANCHOR_SHARE


def offline_knees(index: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    """Our offline request throughput per (model, workload, KV size) at the largest N: where
    a configuration's capacity is to be looked for (a sweep's index: the points table)."""
    if index.empty or "request_throughput" not in index:
        return {}
    off = offline_points(index)
    n = "num_requests"
    off = off[off[n] == off.groupby(["model", "workload", "kv_blocks"])[n].transform("max")]
    thr = off.groupby(["model", "workload", "kv_blocks"])["request_throughput"].mean()
    return {(str(m), str(w), int(kv)): float(v) for (m, w, kv), v in thr.items() if v > 0}


def capacity_grids(
    tables: PaperTables,
    plan: StudyPlan,
    models: list[str],
    workloads: list[str],
    knees: dict[tuple[str, str, int], float] | None = None,
) -> dict[tuple[str, str, int], Grid]:
    """The paper's rate grid per (model, workload, KV size).

    A model with its own table gets its grid as the paper probed it (every rate walked
    upward from the lowest, as the paper did). A model without one has no grid of its own:
    it gets the nearest measured model's lattice step (same KV size or the nearest),
    anchored just below the knee the measured model's capacity predicts for it
    (``_anchor``), from which the search doubles its way to the knee and walks, instead of
    walking another model's grid rate by rate. ``knees`` (``offline_knees``) are our own
    predictions of where each knee is. The anchor only decides where the search starts;
    the paper's rule on the lattice decides the answer.
    """
    on = tables.online()
    out: dict[tuple[str, str, int], Grid] = {}
    for w in workloads:
        measured = sorted(set(on[on["workload"] == w]["model"]))
        for m in models:
            source = m if m in measured else nearest_measured(m, measured)
            if source is None:
                continue
            for kv in plan.kv_blocks(m):
                rates = _grid_of(tables, source, w, kv)
                if rates is None or len(rates) < 2:
                    continue
                mine = on[(on["model"] == source) & (on["workload"] == w)]
                at = "" if (mine["kv_blocks"] == kv).any() else " (nearest KV size)"
                if source == m:
                    out[(m, w, kv)] = Grid(rates=rates, source=f"its table{at}")
                else:
                    step = min(b - a for a, b in itertools.pairwise(rates))
                    own = (knees or {}).get((m, w, kv))
                    guess = own * ANCHOR_SHARE if own else _anchor(tables, source, m, w, kv)
                    start = max(step, round(guess / step) * step)
                    anchor = [round(start, 6), round(start + step, 6)]
                    near = "our offline throughput" if own else f"{source}'s capacity"
                    out[(m, w, kv)] = Grid(
                        rates=anchor,
                        source=f"{source}'s lattice (step {step:g}){at}, from below {near}",
                    )
    return out


def _group(
    name: str, model: str, plan: StudyPlan, workloads: list[str], schedules: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "models": [model],
        "kv_blocks": list(plan.kv_blocks(model)),
        "workloads": workloads,
        "schedules": schedules,
    }


def study_data(
    plan: StudyPlan,
    lengths: str,
    stop: dict[tuple[str, str], StopModel],
    grids: dict[tuple[str, str, int], Grid],
    models: tuple[str, ...] = paper.MODELS,
) -> dict[str, Any]:
    """The experiment spec (YAML-ready data): per model an offline group per N (each N
    has its own tokens per request) and an online group with its capacity grids."""
    workloads = list(paper.WORKLOADS)
    online = {"kind": "poisson", "rate": "capacity", "duration": plan.duration_s}
    groups: list[dict[str, Any]] = []
    for m in models:
        ns = list(plan.num_requests)
        per_n = lengths == PAPER_EOS
        for n_group in [[n] for n in ns] if per_n else [ns]:
            g = _group(
                f"{m}/offline" + (f"-{n_group[0]}" if per_n else ""),
                m,
                plan,
                workloads,
                [{"kind": "offline", "num_requests": n_group}],
            )
            if per_n:
                g["output_len_model"] = {
                    w: stop[(m, w)].spec(n_group[0]) for w in workloads if (m, w) in stop
                }
            groups.append(g)
        gridded = [w for w in workloads if all((m, w, kv) in grids for kv in plan.kv_blocks(m))]
        rest = [w for w in workloads if w not in gridded]  # no grid anywhere: bisection
        for part, ws in (("online", gridded), ("online-bisect", rest)):
            if not ws:
                continue
            g = _group(f"{m}/{part}", m, plan, ws, [online])
            if per_n:
                g["output_len_model"] = {w: stop[(m, w)].spec(ONLINE) for w in ws if (m, w) in stop}
            if part == "online":
                rates = {  # KV sizes as text: YAML keys are text
                    w: {str(kv): grids[(m, w, kv)].rates for kv in plan.kv_blocks(m)} for w in ws
                }
                g["capacity"] = {
                    "rule": "seed-grid",
                    "extend": True,
                    "rates": rates,
                    "confidence": None,  # the paper judged each rate by its point estimate
                }
            groups.append(g)
    data: dict[str, Any] = {
        "name": "paper-reproduction" + ("-quick" if plan is QUICK else ""),
        "description": f"{DESCRIPTION} Output lengths: {lengths_label(lengths)}.",
        "engines": [{"engine": "sim"}],
        "gpus": [paper.GPU],
        "seeds": [paper.SEED],
        "slos": [paper.SLO_TEXT],
        # the paper judged each rate by its point estimate: no confidence intervals
        "capacity": {"rule": "bisect", "tolerance": 0.02, "confidence": None},
        "groups": groups,
    }
    if lengths not in (PAPER_EOS, REFERENCE):
        data["output_len_model"] = lengths
    return data
