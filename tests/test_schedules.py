import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from workload_eval.errors import UserError
from workload_eval.schedules import (
    ConstantSchedule,
    GammaSchedule,
    OfflineSchedule,
    PoissonExpSchedule,
    PoissonSchedule,
    SessionsSchedule,
    TraceSchedule,
    arrival_times,
    build_schedule,
    parse_schedule,
    request_count,
)


def _seed_reference(rate: float, duration: float, seed: int) -> list[float]:
    """The seed's loop, verbatim in spirit (global numpy state, 10 ms quanta)."""
    np.random.seed(seed)
    time_quantum = 10
    lam = rate * (time_quantum / 1000)
    quantums_per_sec = 1000 / time_quantum
    counts = np.random.poisson(lam=lam, size=int(duration * quantums_per_sec))
    timestamps: list[float] = []
    for i, n in enumerate(counts):
        timestamps += [i * (time_quantum / 1000)] * n
    return timestamps


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"prompt_len": np.arange(10, 10 + n), "output_len": np.full(n, 5)})


@pytest.mark.parametrize(("rate", "duration", "seed"), [(28.0, 60, 0), (3.3, 20, 0), (1.1, 7, 5)])
def test_poisson_matches_the_seeds_quantized_process_exactly(rate, duration, seed):
    got = arrival_times(PoissonSchedule(rate=rate, duration=duration), seed)
    assert got.tolist() == _seed_reference(rate, duration, seed)


def test_poisson_by_count_is_a_prefix_of_the_same_stream():
    by_time = arrival_times(PoissonSchedule(rate=10, duration=100), 0)
    by_count = arrival_times(PoissonSchedule(rate=10, num_requests=300), 0)
    assert len(by_count) == 300
    assert by_count.tolist() == by_time[:300].tolist()


def test_schedules_are_deterministic_for_a_seed_and_differ_across_seeds():
    for spec in (
        PoissonExpSchedule(rate=5, duration=20),
        GammaSchedule(rate=5, duration=20, burstiness=0.5),
    ):
        a, b, c = arrival_times(spec, 1), arrival_times(spec, 1), arrival_times(spec, 2)
        assert a.tolist() == b.tolist()
        assert a.tolist() != c.tolist()


def test_gap_processes_start_at_zero_and_stay_within_duration():
    for spec in (
        PoissonExpSchedule(rate=20, duration=30),
        GammaSchedule(rate=20, duration=30),
        ConstantSchedule(rate=20, duration=30),
    ):
        t = arrival_times(spec, 0)
        assert t[0] == 0.0 and t[-1] < 30
        assert np.all(np.diff(t) >= 0)


def test_mean_rate_is_close_to_the_requested_rate():
    for spec in (
        PoissonSchedule(rate=50, duration=200),
        PoissonExpSchedule(rate=50, duration=200),
        GammaSchedule(rate=50, duration=200, burstiness=0.25),
    ):
        n = len(arrival_times(spec, 0))
        assert abs(n / 200 - 50) < 2.5, spec.kind


def test_gamma_burstiness_below_one_raises_gap_variability():
    smooth = np.diff(arrival_times(GammaSchedule(rate=10, num_requests=4000, burstiness=4), 0))
    bursty = np.diff(arrival_times(GammaSchedule(rate=10, num_requests=4000, burstiness=0.25), 0))
    cv = lambda g: g.std() / g.mean()  # noqa: E731
    assert cv(bursty) > 1.5 > 0.7 > cv(smooth)


def test_constant_rate_is_evenly_spaced():
    t = arrival_times(ConstantSchedule(rate=4, duration=2.5), 0)
    assert t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    assert len(arrival_times(ConstantSchedule(rate=4, num_requests=3), 0)) == 3


def test_offline_puts_everything_at_zero_and_count_follows_the_spec():
    assert request_count(OfflineSchedule(num_requests=7), 0) == 7
    assert request_count(OfflineSchedule(), 0) is None
    sched = build_schedule(OfflineSchedule(num_requests=3), _frame(5))
    assert [it.arrival_time for it in sched.items] == [0.0, 0.0, 0.0]
    assert [it.request.prompt_len for it in sched.items] == [10, 11, 12]


def test_rate_schedule_pairs_rows_in_order_with_arrivals():
    spec = PoissonSchedule(rate=30, duration=2)
    n = request_count(spec, 0)
    sched = build_schedule(spec, _frame(n), seed=0)
    assert len(sched) == n
    assert [it.arrival_time for it in sched.items] == _seed_reference(30, 2, 0)
    assert [it.request.request_id for it in sched.items] == list(range(n))
    assert sched.params["rate"] == 30 and sched.params["seed"] == 0


def test_too_short_workload_is_a_user_error():
    with pytest.raises(UserError, match="needs 10 requests"):
        build_schedule(ConstantSchedule(rate=1, num_requests=10), _frame(4))


def test_trace_replay_scales_time_and_sorts_by_arrival():
    df = _frame(4).assign(arrival_time=[10.0, 12.0, 11.0, 16.0])
    sched = build_schedule(TraceSchedule(time_scale=2), df)
    assert [it.arrival_time for it in sched.items] == [0.0, 0.5, 1.0, 3.0]
    assert [it.request.prompt_len for it in sched.items] == [10, 12, 11, 13]
    cut = build_schedule(TraceSchedule(time_scale=1, duration=2.5), df)
    assert [it.arrival_time for it in cut.items] == [0.0, 1.0, 2.0]


def test_trace_without_arrival_times_names_the_workload():
    df = _frame(3)
    df.attrs["workload"] = "alpaca"
    with pytest.raises(UserError, match="alpaca has no arrival times"):
        build_schedule(TraceSchedule(), df)


def _chat() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session_id": [0, 0, 0, 1, 2, 2],
            "turn": [0, 1, 2, 0, 0, 1],
            "prompt_len": [10, 30, 60, 15, 20, 50],
            "output_len": [5, 5, 5, 5, 5, 5],
        }
    )


def test_sessions_chain_turns_with_fixed_think_time():
    sched = build_schedule(SessionsSchedule(rate=2, arrival="constant", think_time=1.5), _chat())
    items = sched.items
    assert len(items) == 6
    firsts = [it for it in items if it.depends_on is None]
    assert [it.arrival_time for it in firsts] == [0.0, 0.5, 1.0]
    by_id = {it.request.request_id: it for it in items}
    follow = [it for it in items if it.depends_on is not None]
    assert len(follow) == 3
    for it in follow:
        prev = by_id[it.depends_on].request
        assert prev.session_id == it.request.session_id and prev.turn == it.request.turn - 1
        assert it.think_time == 1.5


def test_sessions_exponential_think_time_is_seeded():
    spec = SessionsSchedule(rate=1, think_time=2.0, think_time_dist="exponential")
    a = [it.think_time for it in build_schedule(spec, _chat(), seed=3).items]
    b = [it.think_time for it in build_schedule(spec, _chat(), seed=3).items]
    c = [it.think_time for it in build_schedule(spec, _chat(), seed=4).items]
    assert a == b != c
    assert sum(t > 0 for t in a) == 3


def test_sessions_duration_drops_late_sessions():
    sched = build_schedule(SessionsSchedule(rate=1, arrival="constant", duration=1.5), _chat())
    assert {it.request.session_id for it in sched.items} == {0, 1}


def test_sessions_need_a_multi_turn_workload():
    with pytest.raises(UserError, match="session_id"):
        build_schedule(SessionsSchedule(rate=1), _frame(3))


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": 0, "duration": 10},
        {"rate": -1, "duration": 10},
        {"rate": 1, "duration": 0},
        {"rate": 1},
    ],
)
def test_invalid_rate_specs_are_rejected(bad):
    with pytest.raises(ValidationError):
        PoissonSchedule(**bad)


def test_parse_schedule_dispatches_on_kind_and_reports_the_field():
    spec = parse_schedule({"kind": "gamma", "rate": 2, "duration": 5, "burstiness": 0.5})
    assert isinstance(spec, GammaSchedule) and spec.burstiness == 0.5
    with pytest.raises(UserError, match="burstiness"):
        parse_schedule({"kind": "gamma", "rate": 2, "duration": 5, "burstiness": 0})
    with pytest.raises(UserError, match="kind"):
        parse_schedule({"kind": "zipf", "rate": 2})


def test_no_arrivals_is_a_user_error():
    with pytest.raises(UserError, match="no arrivals"):
        arrival_times(PoissonSchedule(rate=0.001, duration=0.5), 0)


def test_the_papers_online_alpaca_run_has_about_16800_arrivals():
    t = arrival_times(PoissonSchedule(rate=28, duration=600), 0)
    assert len(t) == len(_seed_reference(28, 600, 0)) == 16797
    assert t[-1] < 600


def test_low_rate_by_count_stays_cheap():
    t = arrival_times(PoissonSchedule(rate=0.01, num_requests=5), 0)
    assert len(t) == 5 and np.all(np.diff(t) >= 0)
