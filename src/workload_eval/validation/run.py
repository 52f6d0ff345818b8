"""Simulate every experiment of a corpus (in worker processes) and collect the cells.

An experiment that cannot be read, expressed or simulated becomes a result with its reason:
one bad file never stops the others, and nothing is skipped silently.
"""

from __future__ import annotations

import fnmatch
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from workload_eval.engines.sim import SimEngine
from workload_eval.engines.sim.report import SimReport
from workload_eval.errors import UserError
from workload_eval.models import resolve_model
from workload_eval.validation.corpus import (
    CorpusError,
    Experiment,
    SharedPrefixWorkload,
    load_experiment,
)
from workload_eval.validation.measurement import known_point
from workload_eval.validation.scenario import _is_moe, engine_setup, model_family
from workload_eval.validation.scoring import (
    Cell,
    experiment_cells,
    peer_cells,
    stage_statistics,
)
from workload_eval.validation.streams import (
    SWEEP_WARMUP_REQUESTS,
    Stream,
    shared_prefix_stream,
    trace_stream,
)


@dataclass
class StageGap:
    """Idle time between stage k-1's last send and stage k's first send."""

    stage: int
    observed_s: float
    simulated_s: float


@dataclass
class ExperimentResult:
    """Everything the console, the CSVs and the summary need about one file."""

    file: str
    id: str
    status: str = "invalid"
    simulated: bool = False
    reason: str = ""
    family: str = ""
    model: str = ""
    gpu: str = ""
    policy: str = ""
    measurement_point: str = ""
    cells: list[Cell] = field(default_factory=list)
    peers: dict[str, list[Cell]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    defaults_used: list[str] = field(default_factory=list)
    gaps: list[StageGap] = field(default_factory=list)
    stage_counts: list[tuple[int | None, int]] = field(default_factory=list)
    stage_rates: list[float | None] = field(default_factory=list)
    num_requests: int = 0
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0


def discover(corpus: Path, id_glob: str | None) -> list[Path]:
    """The corpus's ``*.json`` files (sorted), those whose stem matches ``id_glob``.

    A folder without experiment files of its own is searched one level down (a folder of
    corpora, e.g. ``real-gpu/`` holding ``calib/``).
    """
    if not corpus.is_dir():
        raise UserError(f"{corpus}: not a folder (expected a workload-eval-measured/1 corpus)")
    files = sorted(p for p in corpus.glob("*.json") if p.is_file())
    if not files:
        files = sorted(p for p in corpus.glob("*/*.json") if p.is_file())
    if id_glob:
        files = [p for p in files if fnmatch.fnmatchcase(p.stem, id_glob)]
    if not files:
        what = f" matching --id {id_glob!r}" if id_glob else ""
        raise UserError(f"{corpus}: no *.json experiment files{what}")
    return files


def _stream(exp: Experiment, path: Path, max_model_len: int, seed: int) -> Stream:
    if isinstance(exp.scenario.workload, SharedPrefixWorkload):
        return shared_prefix_stream(exp, path, max_model_len=max_model_len, seed=seed)
    return trace_stream(exp, path, max_model_len=max_model_len)


def _gaps(stream: Stream, requests_arrival: list[float]) -> list[StageGap]:
    """Observed (trace) vs simulated idle time between consecutive stages' sends."""
    gaps: list[StageGap] = []
    for k, (first, last_prev) in sorted(stream.stage_first_row.items()):
        firsts = [a for a, s in zip(requests_arrival, stream.target_stage, strict=True) if s == k]
        lasts = [
            a for a, s in zip(requests_arrival, stream.target_stage, strict=True) if s == k - 1
        ]
        if firsts and lasts:
            gaps.append(StageGap(k, first - last_prev, min(firsts) - max(lasts)))
    return gaps


def simulate_experiment(path: Path, seed: int = 0) -> ExperimentResult:
    """Read, rebuild, simulate and score one file; never raises for a bad or odd file."""
    start = time.perf_counter()
    res = ExperimentResult(file=str(path), id=path.stem)
    try:
        exp = load_experiment(path)
    except CorpusError as e:
        res.reason = str(e)
        return res
    res.id, res.status = exp.id, exp.status
    res.model, res.gpu = exp.scenario.model.name, exp.scenario.gpu
    res.measurement_point = exp.targets.measurement_point
    res.stage_rates = [st.rate for st in exp.targets.stages]
    res.family = model_family(exp.scenario.model.name, exp.scenario.model.config)
    res.peers = peer_cells(exp, res.family)
    try:
        _simulate(exp, path, seed, res)
    except (UserError, CorpusError, ValueError) as e:
        res.simulated, res.reason = False, f"not simulatable: {e}"
    except Exception as e:  # an engine bug must not hide the other experiments' results
        res.simulated, res.reason = False, f"simulator error: {type(e).__name__}: {e}"
    if not res.simulated:
        res.cells = experiment_cells(exp, None, res.family)
    res.wall_seconds = time.perf_counter() - start
    return res


def _simulate(exp: Experiment, path: Path, seed: int, res: ExperimentResult) -> None:
    with tempfile.TemporaryDirectory(prefix="workload-eval-validate-") as tmp:
        setup = engine_setup(exp, Path(tmp))
        res.policy, res.defaults_used = setup.policy, setup.defaults_used
        res.notes.extend(setup.notes)
        if setup.config is None:
            res.reason = f"not simulatable: {setup.reason}"
            return
        config = setup.config
        spec = resolve_model(config.model)
        if _is_moe(exp.scenario.model.config) and not _models_experts(spec):
            res.reason = "not simulatable: mixture-of-experts models are not modelled yet"
            return
        if not known_point(exp.targets.measurement_point):
            res.notes.append(
                f"unknown measurement point {exp.targets.measurement_point!r}: "
                "engine-side latencies are compared as they are"
            )
        stream = _stream(exp, path, config.max_model_len, seed)
        res.notes.extend(stream.notes)
        records = SimEngine().run(stream.schedule, config)
    stats = stage_statistics(
        records.requests, stream, exp.targets.measurement_point, len(exp.targets.stages)
    )
    res.cells = experiment_cells(exp, stats, res.family)
    res.simulated = True
    res.num_requests = len(stream.schedule)
    report = records.report
    assert isinstance(report, SimReport)
    res.sim_seconds = float(report.sim_end_time)
    res.stage_counts = [
        (st.count, int(s["count"])) for st, s in zip(exp.targets.stages, stats, strict=True)
    ]
    arrivals = records.requests["arrival_time"].tolist()
    res.gaps = _gaps(stream, arrivals)
    evicted = report.prefix_cache_evicted_blocks or 0
    if evicted and exp.scenario.engine.cpu_offload_gib:
        res.notes.append(
            f"the simulated GPU prefix cache evicted {evicted} cached blocks: the CPU KV "
            "offload (not simulated) could have served some of them again"
        )
    if exp.status != "ok":
        res.reason = f"not scored: status {exp.status}"


def _models_experts(spec: object) -> bool:
    """Whether the simulator's model spec carries the experts (MoE support has landed)."""
    for name in ("num_experts", "num_local_experts", "experts"):
        v = getattr(spec, name, None)
        if isinstance(v, int) and v > 1:
            return True
    return False


def _expected_requests(path: Path) -> float:
    """Requests a file's load stages send (a cost estimate; 0 if it cannot be read)."""
    try:
        load = json.loads(path.read_bytes())["scenario"]["load"]
        total = sum(float(s["rate"]) * float(s["duration_s"]) for s in load["stages"])
        return total + (SWEEP_WARMUP_REQUESTS if load.get("kind") == "sweep" else 0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0.0


def run_corpus(
    corpus: Path, *, id_glob: str | None = None, jobs: int = 1, seed: int = 0
) -> list[ExperimentResult]:
    """Every matching file's result, in file order; ``jobs`` worker processes."""
    files = discover(corpus, id_glob)
    if jobs <= 1 or len(files) == 1:
        return [simulate_experiment(p, seed) for p in files]
    # the longest simulations first, so that they do not end up last on one worker
    order = sorted(range(len(files)), key=lambda i: -_expected_requests(files[i]))
    results: list[ExperimentResult | None] = [None] * len(files)
    with ProcessPoolExecutor(max_workers=min(jobs, len(files))) as pool:
        futures = {i: pool.submit(simulate_experiment, files[i], seed) for i in order}
        for i, fut in futures.items():
            try:
                results[i] = fut.result()
            except Exception as e:  # a worker died (out of memory, killed): keep the others
                results[i] = ExperimentResult(
                    file=str(files[i]),
                    id=files[i].stem,
                    status="error",
                    reason=f"simulator error: the worker process failed ({type(e).__name__})",
                )
    return [r for r in results if r is not None]
