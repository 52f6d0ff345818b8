"""linear_percentiles must equal np.percentile bit for bit (summaries must not change)."""

import numpy as np

from workload_eval.analysis.quantiles import linear_percentiles

PERCENTILES = (50, 90, 95, 99)


def _samples(rng: np.random.Generator):
    for n in (*range(1, 60), 99, 100, 101, 199, 200, 201, 999, 1000, 4001, 16000):
        yield rng.lognormal(-2.0, 1.5, n)  # latency-like, distinct values
        yield np.round(rng.exponential(1.0, n), 1)  # many ties
    yield np.array([1.0, np.inf, 2.0, 3.0, np.inf])
    yield np.array([-np.inf, 0.0, 1e-300, 1e300])
    yield np.full(7, 0.25)


def test_equal_to_numpy_percentile_on_one_sample_bit_for_bit():
    rng = np.random.default_rng(7)
    for x in _samples(rng):
        for qs in (PERCENTILES, (95,), (0, 12.5, 100)):
            with np.errstate(invalid="ignore"):  # inf - inf in both
                got = linear_percentiles(x, qs)
                want = np.percentile(x, qs)
            assert got.shape == want.shape
            assert got.tobytes() == want.tobytes(), (len(x), qs)


def test_equal_to_numpy_percentile_along_rows_bit_for_bit():
    rng = np.random.default_rng(8)
    for k, size in ((5, 10), (20, 40), (20, 200), (7, 1), (20, 799)):
        m = rng.lognormal(-1.0, 1.0, (k, size))
        got = linear_percentiles(m, PERCENTILES)
        want = np.percentile(m, PERCENTILES, axis=1)
        assert got.shape == want.shape == (len(PERCENTILES), k)
        assert got.tobytes() == want.tobytes(), (k, size)


def test_input_is_not_reordered():
    x = np.array([3.0, 1.0, 2.0])
    linear_percentiles(x, (50,))
    assert x.tolist() == [3.0, 1.0, 2.0]
