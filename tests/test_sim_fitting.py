"""The overhead fit runs the shipped simulator and recovers overheads it generated itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workload_eval.engines.sim import fitting, paper_runs
from workload_eval.engines.sim.calibration import PERF
from workload_eval.schedules import OfflineSchedule

N = 150


def lengths(seed: int, prompt: tuple[int, int], output: tuple[int, int]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"prompt_len": rng.integers(*prompt, N), "output_len": rng.integers(*output, N)}
    )


# Short prompts with long outputs, and the reverse: decode-bound and prefill-bound runs.
FRAMES = {
    ("chatty", N): lengths(0, (10, 60), (50, 400)),
    ("summary", N): lengths(1, (400, 1200), (5, 60)),
}


def throughputs(constants, targets: list[fitting.OfflineTarget]) -> list[float]:
    return [s["request_throughput"] for s in fitting.predict(constants, targets, FRAMES)]


def targets_from(constants) -> list[fitting.OfflineTarget]:
    shape = [(w, kv) for w, _ in FRAMES for kv in (150, 300, 643)]
    made = throughputs(constants, [fitting.OfflineTarget(w, kv, N, 1.0) for w, kv in shape])
    return [fitting.OfflineTarget(w, kv, N, x) for (w, kv), x in zip(shape, made, strict=True)]


def test_predict_is_the_engine_the_benchmark_runs() -> None:
    fitted = throughputs(PERF, [fitting.OfflineTarget("summary", 150, N, 1.0)])[0]
    shipped = paper_runs.simulate(FRAMES[("summary", N)], OfflineSchedule(num_requests=N), 150)
    assert fitted == shipped["request_throughput"]


@pytest.mark.parametrize(
    "truth",
    [
        {"prefill_step_overhead": 5e-4, "decode_step_overhead": 1.5e-3, "seq_overhead": 1.3e-4},
        {"prefill_step_overhead": 0.0, "decode_step_overhead": 7e-4, "seq_overhead": 9e-5},
    ],
)
def test_fit_recovers_the_overheads_that_made_the_targets(truth: dict[str, float]) -> None:
    targets = targets_from(fitting.with_overheads(PERF, **truth))
    result = fitting.fit_overheads(targets, FRAMES, start=PERF)
    assert result.start_loss > 1e-4 and result.loss < 1e-16
    for name, want in truth.items():
        assert fitting.fitted_value(result.constants, name) == pytest.approx(want, abs=1e-9)
    assert result.constants.bw_efficiency == PERF.bw_efficiency  # the efficiencies are held
    assert result.simulated_runs == len(targets) * 5


def test_an_overhead_the_data_wants_below_zero_stays_at_zero() -> None:
    # targets faster than zero overheads can make: the best fit is all zeros, never negative
    zero = fitting.with_overheads(PERF, **dict.fromkeys(fitting.FITTED, 0.0))
    targets = [
        fitting.OfflineTarget(t.workload, t.kv_blocks, N, t.request_throughput * 1.2)
        for t in targets_from(zero)
    ]
    result = fitting.fit_overheads(targets, FRAMES, start=PERF)
    assert [fitting.fitted_value(result.constants, k) for k in fitting.FITTED] == [0.0] * 3


def test_seq_overhead_sets_both_per_sequence_overheads() -> None:
    c = fitting.with_overheads(PERF, seq_overhead=2e-4, decode_step_overhead=0.0)
    assert (c.prefill_seq_overhead, c.decode_seq_overhead, c.decode_step_overhead) == (
        2e-4,
        2e-4,
        0.0,
    )
