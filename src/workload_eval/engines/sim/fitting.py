"""Fit the engine overheads to the paper's offline throughputs by running ``SimEngine`` itself.

Stage 1 of the calibration (hardware efficiencies, overlap loss) is closed-form from
DistServe's published fit (``calibration.SOURCES``). Stage 2, here: with those held, the
per-step and per-sequence overheads of the paper's vLLM 0.2.1 fork are fitted to its
measured offline request throughput (OPT-13B, A100-40GB). The fit measures how the shipped
simulator (vLLM 0.2 policy, ~20 ms per 1,000-request run) responds to the overheads, so it
cannot drift from the engine it calibrates. ``scripts/fit_perf_model.py`` runs it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workload_eval.engines.sim.calibration import PERF, PerfConstants
from workload_eval.engines.sim.paper_runs import roofline, simulate
from workload_eval.schedules import OfflineSchedule

# The fitted overheads; "seq_overhead" sets both per-sequence overheads (the same work).
FITTED: tuple[str, ...] = ("prefill_step_overhead", "decode_step_overhead", "seq_overhead")


@dataclass(frozen=True)
class OfflineTarget:
    """One measured offline point: request throughput (req/s) of N requests at t = 0."""

    workload: str
    kv_blocks: int
    num_requests: int
    request_throughput: float


def with_overheads(base: PerfConstants, **values: float) -> PerfConstants:
    """``base`` with fitted parameters replaced (``seq_overhead`` sets both per-seq ones)."""
    fields = dict(values)
    if "seq_overhead" in fields:
        seq = fields.pop("seq_overhead")
        fields.update(prefill_seq_overhead=seq, decode_seq_overhead=seq)
    return dataclasses.replace(base, **fields)


def fitted_value(constants: PerfConstants, name: str) -> float:
    return constants.decode_seq_overhead if name == "seq_overhead" else getattr(constants, name)


def predict(
    constants: PerfConstants,
    targets: Sequence[OfflineTarget],
    frames: Mapping[tuple[str, int], pd.DataFrame],
) -> list[dict[str, Any]]:
    """The simulated run summary per target; ``frames`` by (workload, num_requests)."""
    perf = roofline(constants)
    return [
        simulate(
            frames[(t.workload, t.num_requests)],
            OfflineSchedule(num_requests=t.num_requests),
            t.kv_blocks,
            perf=perf,
        )
        for t in targets
    ]


def loss(throughput: Sequence[float] | np.ndarray, targets: Sequence[OfflineTarget]) -> float:
    """Mean squared log error: a 10% miss weighs the same at 1 req/s and at 30 req/s."""
    measured = np.array([t.request_throughput for t in targets])
    return float(np.mean(np.log(np.asarray(throughput, dtype=float) / measured) ** 2))


@dataclass(frozen=True)
class Response:
    """How the simulated runs respond to the overheads: duration = base + slopes @ overheads.

    Exact for offline runs: every request is admitted at t = 0, so the scheduler's
    decisions never depend on time and each step's overhead adds to the run as it is.
    """

    completed: np.ndarray  # requests finished, per target
    base: np.ndarray  # run seconds with every fitted overhead at zero
    slopes: np.ndarray  # (targets, FITTED): run seconds per second of each overhead

    def throughput(self, overheads: np.ndarray) -> np.ndarray:
        return self.completed / (self.base + self.slopes @ overheads)


def _durations(summaries: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    done = np.array([float(s["num_completed"]) for s in summaries])
    return done, np.array([float(s["duration_s"]) for s in summaries])


def measure_response(
    targets: Sequence[OfflineTarget],
    frames: Mapping[tuple[str, int], pd.DataFrame],
    constants: PerfConstants = PERF,
) -> Response:
    """Runs every target with the overheads at zero, then with each at 1 ms."""
    zero = with_overheads(constants, **dict.fromkeys(FITTED, 0.0))
    done, base = _durations(predict(zero, targets, frames))
    unit = 1e-3
    slopes = [
        (_durations(predict(with_overheads(zero, **{name: unit}), targets, frames))[1] - base)
        / unit
        for name in FITTED
    ]
    return Response(done, base, np.stack(slopes, axis=1))


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin ||a x - b|| over x >= 0, exactly, by trying every set of free variables
    (three variables: eight least-squares solves)."""
    best, best_err = np.zeros(a.shape[1]), float(b @ b)
    for k in range(1, a.shape[1] + 1):
        for free in itertools.combinations(range(a.shape[1]), k):
            x_free = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
            if (x_free < 0).any():
                continue
            x = np.zeros(a.shape[1])
            x[list(free)] = x_free
            err = float(np.sum((a @ x - b) ** 2))
            if err < best_err:
                best, best_err = x, err
    return best


@dataclass(frozen=True)
class FitResult:
    constants: PerfConstants
    loss: float
    start_loss: float
    simulated_runs: int


def fit_overheads(
    targets: Sequence[OfflineTarget],
    frames: Mapping[tuple[str, int], pd.DataFrame],
    *,
    start: PerfConstants = PERF,
    iterations: int = 100,
) -> FitResult:
    """The overheads (never negative) that minimize ``loss`` over the offline ``targets``.

    Measures the engine's linear response once, fits it by Gauss-Newton with an exact
    non-negative step, then re-runs the engine at the answer to check the response held.
    """
    response = measure_response(targets, frames, start)
    measured = np.array([t.request_throughput for t in targets])
    x = np.array([fitted_value(start, name) for name in FITTED])
    start_loss = current = loss(response.throughput(x), targets)
    for _ in range(iterations):
        duration = response.base + response.slopes @ x
        residual = np.log(response.completed / duration / measured)
        jacobian = -response.slopes / duration[:, None]
        step = _nnls(jacobian, jacobian @ x - residual) - x
        # halve until the loss does not grow (x + step stays >= 0: both ends are)
        while np.abs(step).max() >= 1e-12 and (
            loss(response.throughput(x + step), targets) > current
        ):
            step = step / 2
        if np.abs(step).max() < 1e-12:
            break
        x = x + step
        current = loss(response.throughput(x), targets)
    fitted = with_overheads(start, **dict(zip(FITTED, map(float, x), strict=True)))
    check = [s["request_throughput"] for s in predict(fitted, targets, frames)]
    if not np.allclose(check, response.throughput(x), rtol=1e-9):
        raise RuntimeError("the simulated run time is not linear in the overheads")
    runs = len(targets) * (len(FITTED) + 2)
    return FitResult(fitted, loss(check, targets), start_loss, runs)
