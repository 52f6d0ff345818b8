"""Confidence intervals (analysis.intervals): exact t quantiles, coverage on known
distributions with fixed seeds, and why batches (an autocorrelated series)."""

import math

import numpy as np
import pytest

from workload_eval.analysis.intervals import (
    CONFIDENCE_LEVEL,
    family_intervals,
    mean_interval,
    num_batches,
    sectioning,
    t_quantile,
)


@pytest.mark.parametrize(
    ("level", "dof", "table"),
    [
        (0.95, 1, 12.7062),
        (0.95, 2, 4.3027),
        (0.95, 4, 2.7764),
        (0.95, 19, 2.0930),
        (0.99, 10, 3.1693),
        (0.90, 30, 1.6973),
    ],
)
def test_t_quantile_matches_the_printed_table(level, dof, table):
    assert t_quantile(level, dof) == pytest.approx(table, abs=5e-5)


def test_batches_need_values_beyond_the_percentile():
    # a p99 batch holds >= 200 values (2 beyond the percentile), at least 5 batches
    assert num_batches(1000, 99) == 5
    assert num_batches(999, 99) == 0
    assert num_batches(10_000, 99) == 20
    assert num_batches(200, 95) == 5  # 40 per batch
    assert num_batches(49, None) == 0  # a mean: 10 per batch
    assert sectioning(np.ones(999), 99) is None


def _coverage(draw, truth: dict, reps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(truth, 0)
    for _ in range(reps):
        x = draw(rng)
        for pct, true in truth.items():
            ci = sectioning(x, pct)
            assert ci is not None and ci.low <= ci.high
            hits[pct] += ci.contains(true)
    return {p: h / reps for p, h in hits.items()}


def test_intervals_cover_the_truth_of_a_lognormal_at_the_stated_level():
    z = {50: 0.0, 95: 1.6448536269514722, 99: 2.3263478740408408}
    truth = {None: math.exp(0.5), **{p: math.exp(v) for p, v in z.items()}}
    cov = _coverage(lambda rng: rng.lognormal(0.0, 1.0, 2000), truth, reps=300, seed=1)
    assert CONFIDENCE_LEVEL == 0.95
    for pct, c in cov.items():  # nominal 95%; 300 replications have a standard error of 1.3%
        assert 0.89 <= c <= 0.99, (pct, c)


def test_batches_keep_coverage_where_an_iid_interval_fails():
    """AR(1) with phi = 0.8 (latencies of consecutive requests share a queue): the i.i.d.
    interval of the mean covers about half the time, batch means about 95%."""
    phi, n, reps = 0.8, 4000, 200
    rng = np.random.default_rng(3)
    ours = naive = 0
    for _ in range(reps):
        e = rng.normal(size=n)
        x = np.empty(n)
        x[0] = e[0] / math.sqrt(1 - phi**2)
        for i in range(1, n):
            x[i] = phi * x[i - 1] + e[i]
        ci = sectioning(x)
        assert ci is not None
        ours += ci.contains(0.0)
        naive += abs(x.mean()) <= 1.96 * x.std(ddof=1) / math.sqrt(n)
    assert ours / reps >= 0.9
    assert naive / reps <= 0.7


def test_family_intervals_center_on_the_given_point_and_name_their_keys():
    x = np.arange(1000, dtype=float)
    out = family_intervals(x, "ttft", (50, 99), points={"ttft_mean": 499.5})
    assert set(out) == {
        "ttft_mean_ci_low",
        "ttft_mean_ci_high",
        "ttft_p50_ci_low",
        "ttft_p50_ci_high",
        "ttft_p99_ci_low",
        "ttft_p99_ci_high",
    }
    assert out["ttft_mean_ci_low"] < 499.5 < out["ttft_mean_ci_high"]
    assert (out["ttft_mean_ci_low"] + out["ttft_mean_ci_high"]) / 2 == pytest.approx(499.5)
    assert family_intervals(np.full(5, np.nan), "x", (95,))["x_p95_ci_low"] is None


def test_mean_interval_over_seeds_is_the_student_t_interval():
    ci = mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd 1 / sqrt(3)
    assert ci.low == pytest.approx(2 - half) and ci.high == pytest.approx(2 + half)
    assert ci.batches == 3
    assert mean_interval([1.0]) is None and mean_interval([1.0, None, math.nan]) is None
