"""The paper's capacity rule on its grid, extended on the grid's lattice (seed-grid + extend)."""

from __future__ import annotations

import random

import pytest

from workload_eval import paper
from workload_eval.errors import UserError
from workload_eval.experiments import build_spec, expand
from workload_eval.experiments.capacity import SLO, SeedGridSearch, find_capacity, make_search
from workload_eval.experiments.lattice import ExtendedGridSearch

SLOS = [SLO(metric="x", value=1.0)]
GRID = [27.0 + 0.5 * i for i in range(9)]  # the paper's alpaca grid at 643 blocks


def _run(search, fails):
    """Drive a search with verdicts from ``fails(rate) -> bool``; return (answer, probes)."""
    probes: list[float] = []

    def evaluate(rate: float, seed: int) -> dict[str, float]:
        probes.append(rate)
        return {"x": 2.0 if fails(rate) else 0.5}

    return find_capacity(evaluate, search), probes


def test_inside_the_grid_it_is_the_papers_walk():
    for knee in (27.2, 28.7, 29.9):
        for noise in ((), (28.0,)):

            def fails(r, knee=knee, noise=noise):
                return r > knee or r in noise

            ext, ext_probes = _run(ExtendedGridSearch(SLOS, rates=GRID), fails)
            seed, seed_probes = _run(SeedGridSearch(SLOS, rates=GRID), fails)
            assert (ext.rate, ext_probes) == (seed.rate, seed_probes)
            assert not ext.censored


def test_above_and_below_the_grid_the_lattice_decides():
    ans, probes = _run(ExtendedGridSearch(SLOS, rates=GRID), lambda r: r > 33.2)
    assert ans.rate == 33.0 and probes[:9] == GRID  # the whole grid first, as the paper did
    assert set(probes[9:]) < {27.0 + 0.5 * i for i in range(40)}  # on the grid's lattice
    ans, probes = _run(ExtendedGridSearch(SLOS, rates=GRID), lambda r: r > 10.6)
    assert ans.rate == 10.5 and 11.0 in probes and 11.5 in probes  # two violations above
    assert len(probes) < 16  # doubling and bisection, not a walk down from 27
    ans, _ = _run(ExtendedGridSearch(SLOS, rates=GRID), lambda r: True)
    assert ans.rate == 0.0 and ans.censored  # even the lowest lattice rate violates


def test_the_answer_is_the_rule_on_the_whole_lattice():
    rng = random.Random(7)
    lattice = [round(0.5 * i, 6) for i in range(1, 240)]
    for _ in range(300):
        knee = rng.uniform(0.6, 100.0)
        # a lone violation below the knee, inside the grid, where every rate is probed
        noise = {rng.choice(GRID)} if rng.random() < 0.5 else set()

        def fails(r, knee=knee, noise=noise):
            return r > knee or r in noise

        ans, _ = _run(ExtendedGridSearch(SLOS, rates=GRID), fails)
        verdicts = [not fails(r) for r in lattice]
        expected = paper.max_rate_under_slo(lattice, verdicts).rate or 0.0
        assert ans.rate == pytest.approx(expected), (knee, noise)


def test_a_resumed_search_proposes_the_same_rates():
    def fails(r):
        return r > 12.3

    _, probes = _run(ExtendedGridSearch(SLOS, rates=GRID), fails)
    for cut in range(1, len(probes)):
        resumed = ExtendedGridSearch(SLOS, rates=GRID)
        for rate in probes[:cut]:  # the stored probes, replayed
            assert resumed.propose() == [(rate, 0)]
            resumed.record(rate, 0, {"x": 2.0 if fails(rate) else 0.5})
        assert resumed.propose() == [(probes[cut], 0)]


def test_specs_give_each_workload_and_kv_size_its_own_grid():
    data = {
        "models": ["opt-13b"],
        "workloads": ["alpaca", "sharegpt"],
        "kv_blocks": [150, 643],
        "schedules": [{"kind": "poisson", "rate": "capacity", "duration": 60}],
        "capacity": {
            "rule": "seed-grid",
            "extend": True,
            "rates": {"alpaca": {643: [27, 27.5, 28], 150: [13, 13.5]}, "sharegpt": [3.0, 3.1]},
            "confidence": None,  # the paper's point verdicts (60 s: too short for intervals)
        },
    }
    _, tasks = expand(build_spec(data))
    grids = {
        (t.base["workload"], t.base["engine_config"]["kv_blocks"]): t.make_search() for t in tasks
    }
    assert all(isinstance(s, ExtendedGridSearch) for s in grids.values())
    assert grids[("alpaca", 643)].propose() == [(27.0, 0)]
    assert grids[("alpaca", 150)].propose() == [(13.0, 0)]
    assert grids[("sharegpt", 150)].step == pytest.approx(0.1)
    assert len({t.key for t in tasks}) == 4
    data["capacity"]["rates"] = {"alpaca": [27, 27.5]}
    _, tasks = expand(build_spec(data))
    bad = next(t for t in tasks if t.base["workload"] == "sharegpt")
    with pytest.raises(UserError, match="no grid for workload 'sharegpt' at 150 KV blocks"):
        bad.make_search()


def test_make_search_extends_only_when_asked():
    assert type(make_search(SLOS, rule="seed-grid", rates=GRID)) is SeedGridSearch
    assert type(make_search(SLOS, rule="seed-grid", rates=GRID, extend=True)) is (
        ExtendedGridSearch
    )
    with pytest.raises(UserError, match="at least 2 rates"):
        ExtendedGridSearch(SLOS, rates=[3.0])
