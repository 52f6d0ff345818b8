"""analysis.windows: each shortcut equals the plain form it replaces to the last bit (ties,
NaN, infinities, signed zeros, empty windows), so time slices did not change with them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workload_eval.analysis.windows import (
    SlotRows,
    SortedColumn,
    count,
    group_quantiles,
    held,
    running_sums,
    slots,
    stable_argsort,
)


def _awkward(rng: np.random.Generator, n: int) -> np.ndarray:
    """Times with many ties (rounded), some NaN, infinities and -0.0."""
    v = np.round(rng.random(n) * 50, int(rng.integers(0, 3)))
    if n:
        for value, share in ((math.nan, 10), (-0.0, 10), (math.inf, 20), (-math.inf, 30)):
            v[rng.integers(0, n, size=max(1, n // share))] = value
    return v


def _plain_ramp_sum(events, weights, edges):
    """The slices' original ramp sum: one stable sort and two real cumsums per call."""
    order = np.argsort(events, kind="stable")
    ev, w = events[order], weights[order]
    cw = np.concatenate(([0.0], np.cumsum(w)))
    cwe = np.concatenate(([0.0], np.cumsum(w * ev)))
    k = np.searchsorted(ev, edges, side="right")
    return cw[k] * edges - cwe[k]


@pytest.mark.parametrize("seed", range(40))
def test_stable_argsort_and_subsets_are_numpys_stable_sort(seed):
    rng = np.random.default_rng(seed)
    v = _awkward(rng, int(rng.integers(0, 3000)))
    assert np.array_equal(stable_argsort(v), np.argsort(v, kind="stable"))
    rows = np.flatnonzero(rng.random(len(v)) < 0.6)
    assert np.array_equal(SortedColumn(v).of(rows), np.argsort(v[rows], kind="stable"))


def test_stable_argsort_beyond_16_bit_runs():
    v = np.round(np.random.default_rng(0).random(70_000) * 1000, 1)
    assert np.array_equal(stable_argsort(v), np.argsort(v, kind="stable"))


@pytest.mark.parametrize("seed", range(10))
def test_running_sums_are_cumsums(seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.random(1000) * 10.0 ** rng.integers(-3, 4) for _ in range(3)]
    for got, a in zip(running_sums(arrays), arrays, strict=True):
        assert np.array_equal(got, np.concatenate(([0.0], np.cumsum(a))))


@pytest.mark.parametrize("seed", range(30))
def test_counts_and_held_values_are_the_plain_sums(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2000))
    edges = np.arange(int(rng.integers(1, 30)) + 1) * float(rng.uniform(0.5, 5))
    starts = np.round(rng.random(n) * edges[-1], 1)
    if seed % 2:  # engine steps: bounds in row order
        starts = np.sort(starts)
    ends = starts + np.round(rng.random(n) * 3, 1) * (rng.random(n) < 0.9)
    values = [rng.integers(0, 9, n).astype(float), rng.random(n)]
    values[1][rng.random(n) < 0.05] = math.nan  # unknown on some rows
    times = np.sort(starts) if seed % 3 == 0 else starts
    idx = slots(times, edges)
    assert np.array_equal(count(times, edges), np.bincount(idx, minlength=len(edges) - 1))
    source = SortedColumn(ends) if seed % 4 == 0 else None
    rows = None if source is None else (source, np.arange(n))
    got = held(starts, ends, edges, None, *values, ends_from=rows)
    for g, v in zip(got, [np.ones(n), *values], strict=True):
        keep = np.isfinite(v) & (ends > starts)
        s, e, w = starts[keep], ends[keep], v[keep]
        want = np.diff(_plain_ramp_sum(s, w, edges) - _plain_ramp_sum(e, w, edges))
        assert np.array_equal(g, want)


@pytest.mark.parametrize("seed", range(40))
def test_group_quantiles_are_pandas_groupby_quantiles(seed):
    rng = np.random.default_rng(seed)
    n, slots_n = int(rng.integers(0, 3000)), int(rng.integers(1, 40))
    values = _awkward(rng, n)
    slot = rng.integers(0, slots_n, n)
    if seed % 2:  # uneven slots: too many cells to pad, the sort-then-slot path
        slot[rng.random(n) < 0.9] = 0
    if slots_n > 2:
        slot[slot == 1] = 0  # an empty slot
        values[slot == 2] = math.nan  # a slot with only NaN
    rows = SlotRows(slot, slots_n)
    qs = (0.5, 0.95, 0.99)
    got = group_quantiles(values, rows, qs)
    grouped = pd.Series(values).groupby(slot)
    for q, row in zip(qs, got, strict=True):
        want = grouped.quantile(q).reindex(range(slots_n)).to_numpy()
        assert np.array_equal(row, want, equal_nan=True)


def test_both_quantile_paths_are_taken():
    even, uneven = np.arange(3000) % 30, np.zeros(3000, dtype=np.intp)
    uneven[:30] = np.arange(30)
    assert SlotRows(even, 30).padded and not SlotRows(uneven, 30).padded
