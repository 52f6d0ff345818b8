"""The paper's capacity rule, decided once here (every consumer calls paper.max_rate_under_slo)."""

from __future__ import annotations

import pytest

from workload_eval.paper import SLO_S_PER_TOKEN, SLO_TEXT, RuleAnswer, max_rate_under_slo

# The paper's measured OPT-13B p95 normalized latency at 643 KV blocks (../shared/calibration).
ALPACA_643 = {
    27.0: 0.1057,
    27.5: 0.1128,
    28.0: 0.1212,
    28.5: 0.1287,
    29.0: 0.1212,
    29.5: 0.1721,
    30.0: 0.1841,
    30.5: 0.3427,
    31.0: 0.6874,
}
# cnn_dailymail wavers around the SLO: pass/fail per rate 0.1, 0.2, ..., 2.0.
CNN_643 = "PPFPPFFPFPPFFFFFFFFF"


def rule(rates: list[float], verdicts: str) -> RuleAnswer:
    return max_rate_under_slo(rates, [v == "P" for v in verdicts])


def test_the_slo_is_the_papers() -> None:
    assert SLO_S_PER_TOKEN == 0.1875
    assert SLO_TEXT == "normalized_latency_p95<=0.1875"


def test_on_the_papers_alpaca_grid_the_rate_before_the_first_two_violations() -> None:
    ans = max_rate_under_slo(list(ALPACA_643), [v <= SLO_S_PER_TOKEN for v in ALPACA_643.values()])
    assert ans == RuleAnswer(rate=30.0, decided=True, upper=30.5)
    assert not ans.censored


def test_the_first_pair_of_violations_decides_even_if_higher_rates_pass() -> None:
    rates = [round(0.1 * i, 1) for i in range(1, 21)]
    ans = rule(rates, CNN_643)
    assert (ans.rate, ans.decided, ans.upper) == (0.5, True, 0.6)


def test_a_lone_violation_is_noise() -> None:
    assert rule([1, 2, 3, 4, 5], "PFPFF") == RuleAnswer(3.0, True, 4.0)
    assert rule([1, 2, 3, 4, 5], "FPPFF") == RuleAnswer(3.0, True, 4.0)  # at the bottom too


def test_grid_ends_before_two_violations_gives_the_highest_pass_undecided() -> None:
    # the edge case the two old copies disagreed on (0.0 vs 2.0)
    ans = rule([1, 2, 3], "PPF")
    assert ans == RuleAnswer(2.0, False, 3.0)
    assert ans.censored
    assert rule([1, 2, 3], "PPP") == RuleAnswer(3.0, False, None)
    assert rule([1, 2, 3, 4], "PFPF") == RuleAnswer(3.0, False, 4.0)


def test_two_lowest_rates_violating_puts_the_capacity_below_the_grid() -> None:
    assert rule([1, 2, 3], "FFF") == RuleAnswer(None, True, 1.0)
    # passes above the first pair do not count
    ans = rule([1, 2, 3, 4, 5], "FFPFF")
    assert ans == RuleAnswer(None, True, 1.0) and ans.censored


def test_nothing_passes_without_a_pair() -> None:
    assert rule([1], "F") == RuleAnswer(None, False, 1.0)
    assert rule([], "") == RuleAnswer(None, False, None)
    assert rule([1], "P") == RuleAnswer(1.0, False, None)


def test_unsorted_rates_are_sorted_with_their_verdicts() -> None:
    assert rule([3, 1, 2, 4], "FPPF") == RuleAnswer(2.0, True, 3.0)


@pytest.mark.parametrize(
    ("rates", "verdicts"), [([1, 1, 2], "PPF"), ([1, float("nan")], "PP"), ([1, 2], "P")]
)
def test_bad_grids_are_refused(rates: list[float], verdicts: str) -> None:
    with pytest.raises(ValueError):
        rule(rates, verdicts)
