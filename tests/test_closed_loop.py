"""Closed-loop (concurrency) load: N users, each sending its next request when its previous one
finished plus think time; the same rules in the Dispatcher, the simulator and the openai engine."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.dispatch import Dispatcher
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import OpenAIEngine
from workload_eval.engines.sim import SimEngine
from workload_eval.errors import UserError
from workload_eval.schedules import build_schedule, parse_schedule
from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess


def _item(rid: int, *, parent=None, think=0.0, prompt=64, out=8) -> ScheduledRequest:
    return ScheduledRequest(Request(rid, prompt, out), 0.0, depends_on=parent, think_time=think)


def _random_loop(n: int, users: int, *, think: float, chains: bool = False) -> Schedule:
    """Random lengths and think times; with ``chains`` every third request is a follow-up."""
    rng = np.random.default_rng(3)
    items = []
    for i in range(n):
        parent = i - 1 if chains and i % 3 and i > 0 else None
        items.append(
            _item(
                i,
                parent=parent,
                think=float(rng.exponential(think)) if i >= users else 0.0,
                prompt=int(rng.integers(16, 600)),
                out=int(rng.integers(2, 120)),
            )
        )
    return Schedule("concurrency", items, concurrency=users)


def test_the_dispatcher_lets_n_users_each_hold_one_request() -> None:
    items = [_item(0), _item(1), _item(2, think=0.5), _item(3, parent=1, think=0.2), _item(4)]
    d = Dispatcher(Schedule("concurrency", items, concurrency=2))
    assert d.begin() == [(0.0, 0), (0.0, 1)]  # two users start at once
    assert d.finished(1, 3.0) == ([(3.2, 3)], [])  # a follow-up keeps its user
    assert d.finished(0, 4.0) == ([(4.5, 2)], [])  # a free user takes the next root
    assert d.finished(3, 5.0) == ([(5.0, 4)], [])  # the conversation ended: next root
    assert d.finished(2, 6.0) == ([], [])  # nothing left to send
    # a failed request's follow-ups are never sent; the user is free once they are reported
    d = Dispatcher(Schedule("concurrency", items, concurrency=2))
    d.begin()
    assert d.finished(1, 1.0, ok=False) == ([], [3])
    assert d.finished(3, 1.0, ok=False) == ([(1.5, 2)], [])


@pytest.mark.parametrize("chains", [False, True])
def test_the_simulator_runs_the_dispatchers_closed_loop_exactly(chains: bool) -> None:
    sched = _random_loop(60, 5, think=0.3, chains=chains)
    rec = SimEngine().run(sched, EngineConfig(model="opt-13b", kv_blocks=400))
    r = rec.requests
    assert (r.status == "ok").all()
    finish = dict(zip(r.request_id, r.finish_time, strict=True))
    d = Dispatcher(_random_loop(60, 5, think=0.3, chains=chains))
    due = {i: t for t, i in d.begin()}
    for i in sorted(finish, key=lambda i: (finish[i], i)):
        due.update((c, t) for t, c in d.finished(i, finish[i])[0])
    arrival = dict(zip(r.request_id, r.arrival_time, strict=True))
    assert len(due) == 60 and due == pytest.approx(arrival, abs=1e-12)


def test_without_think_time_exactly_n_requests_are_in_flight_until_the_queue_empties() -> None:
    r = (
        SimEngine()
        .run(_random_loop(80, 6, think=0.0), EngineConfig(model="opt-13b", kv_blocks=400))
        .requests
    )
    send, finish = r.send_time.to_numpy(), r.finish_time.to_numpy()
    events = np.unique(np.concatenate([send, finish]))
    mids = (events[:-1] + events[1:]) / 2
    in_flight = np.array([((send <= t) & (t < finish)).sum() for t in mids])
    assert in_flight.max() == 6
    assert (in_flight[mids < send.max()] == 6).all()  # until the last request is taken
    # every request after the first six was due when another one finished
    assert r[r.request_id >= 6].arrival_time.isin(set(finish)).all()


def test_build_schedule_draws_think_times_per_seed_and_starts_every_user_at_once() -> None:
    df = pd.DataFrame({"prompt_len": [10] * 20, "output_len": [4] * 20})
    spec = parse_schedule(
        {
            "kind": "concurrency",
            "concurrency": 4,
            "think_time": 2.0,
            "think_time_dist": "exponential",
        }
    )
    a, b = build_schedule(spec, df, seed=1), build_schedule(spec, df, seed=1)
    c = build_schedule(spec, df, seed=2)
    think = [it.think_time for it in a.items]
    assert a.concurrency == 4 and len(a) == 20
    assert think[:4] == [0.0] * 4 and all(t > 0 for t in think[4:])
    assert think == [it.think_time for it in b.items] != [it.think_time for it in c.items]
    assert all(it.arrival_time == 0.0 for it in a.items)
    fixed = build_schedule(
        parse_schedule({"kind": "concurrency", "concurrency": 2, "num_requests": 5}), df
    )
    assert len(fixed) == 5 and {it.think_time for it in fixed.items} == {0.0}


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        (Schedule("c", [_item(0), _item(1)], concurrency=0), "positive integer"),
        (Schedule("c", [_item(0), _item(1)], concurrency=1, stage_gap_s=1.0), "load stages"),
        (
            Schedule("c", [_item(0), _item(1, parent=0), _item(2, parent=0)], concurrency=1),
            "2 follow-ups",
        ),
    ],
)
def test_impossible_closed_loops_are_one_line_errors(schedule: Schedule, match: str) -> None:
    with pytest.raises(UserError, match=match):
        Dispatcher(schedule)


def test_bad_concurrency_specs_name_the_field() -> None:
    with pytest.raises(UserError, match="concurrency"):
        parse_schedule({"kind": "concurrency", "concurrency": 0})
    with pytest.raises(UserError, match="concurrency: field required"):
        parse_schedule({"kind": "concurrency"})
    with pytest.raises(UserError, match="rate"):
        parse_schedule({"kind": "concurrency", "concurrency": 2, "rate": 3})


def test_the_openai_engine_keeps_n_users_against_a_server() -> None:
    """Each request after the first N is due when another finished plus think time; the
    server never sees more than N at once, and it does see N (answers take 40 ms)."""
    items = [_item(i, think=0.01 if i >= 3 else 0.0, out=4) for i in range(30)]
    sched = Schedule("concurrency", items, concurrency=3)
    with InstantServerProcess(FaultConfig(delay=0.04)) as srv:
        cfg = EngineConfig(model="instant", options={"base_url": srv.base_url})
        rec = OpenAIEngine().run(sched, cfg)
        with urllib.request.urlopen(srv.base_url + "/metrics") as resp:
            metrics = resp.read().decode()
    r = rec.requests.sort_values("arrival_time", kind="stable")
    assert (r.status == "ok").all()
    max_running = next(ln for ln in metrics.splitlines() if ln.startswith("instant:max_running"))
    assert int(max_running.split()[1]) == 3
    finishes = np.sort(r.finish_time.to_numpy())
    for due in r.arrival_time.to_numpy()[3:]:  # each is some finish + 10 ms think
        assert np.min(np.abs(finishes + 0.01 - due)) < 1e-9
    assert (r.send_time >= r.arrival_time).all()
    lg = rec.report.loadgen
    assert lg.target_rate is None and lg.achieved_rate is not None  # no target in a closed loop


def test_cli_runs_a_closed_loop_and_shows_it(tmp_path, capsys) -> None:
    from workload_eval.cli import main

    out = tmp_path / "c4"
    args = ["run", "--model", "opt-13b", "--kv-blocks", "400", "--workload"]
    workload = "synthetic:prompt_tokens=64,output_tokens=16,num_requests=40"
    assert main([*args, workload, "--concurrency", "4", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "Users / mean in flight" in table and "4 / " in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["spec"]["schedule"]["kind"] == "concurrency"
    assert 3.5 < summary["in_flight_mean"] <= 4.0  # four users, no think time
    r = pd.read_parquet(out / "requests.parquet")
    assert len(r) == 40 and (r.status == "ok").all()
    # flags that belong to other schedules are refused, one line
    bad = [*args, workload, "--concurrency", "4", "--request-rate", "3", "--out", str(out)]
    assert main(bad) == 2
    assert "--request-rate does not apply to --schedule concurrency" in capsys.readouterr().err
    assert main([*args, workload, "--schedule", "concurrency", "--out", str(out)]) == 2
    assert "needs --concurrency N" in capsys.readouterr().err
    assert main([*args, workload, "--concurrency", "0", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: --concurrency: Input should be greater")


def test_a_spec_sweeps_concurrency_like_rates() -> None:
    from workload_eval.experiments import expand
    from workload_eval.experiments.spec_loading import spec_from_yaml_text

    spec = spec_from_yaml_text(
        "name: c\nworkloads: alpaca\nkv_blocks: 400\n"
        "schedules:\n  - kind: concurrency\n    concurrency: [1, 4, 16]\n    num_requests: 50\n"
    )
    points, tasks = expand(spec)
    assert not tasks
    assert sorted(p.spec.schedule.concurrency for p in points) == [1, 4, 16]
    with pytest.raises(UserError, match=r"schedules\[0\].concurrency"):
        spec_from_yaml_text("name: c\nschedules:\n  - kind: concurrency\n    concurrency: [2, 0]\n")


def test_a_concurrency_sweep_reaches_the_report(tmp_path) -> None:
    from workload_eval.experiments import run_sweep
    from workload_eval.experiments.spec_loading import spec_from_yaml_text
    from workload_eval.report.html import build_report

    spec = spec_from_yaml_text(
        "name: c\nkv_blocks: 800\n"
        "engines: [{engine: sim, policy: vllm-v1, enable_prefix_caching: true}]\n"
        "workloads: ['shared_prefix:num_groups=2,prompts_per_group=8,system_prompt_len=256,"
        "question_len=32,output_len=16']\n"
        "schedules:\n  - kind: concurrency\n    concurrency: [1, 2, 8]\n"
    )
    run_sweep(spec, tmp_path / "res")
    report = build_report(tmp_path / "res")
    names = {p.name for f in report.figures for p in f.paths}
    assert {"closed_loop.png", "closed_loop.pdf"} <= names
    cache = pd.read_csv(report.out_dir / "prefix_cache.csv")
    assert len(cache) == 3 and (cache.prefix_cache_reset == "fresh").all()
    assert (cache.prefix_cache_hit_rate == cache.prefix_cache_hit_rate_implied).all()
    html = report.html.read_text()
    assert "Prefix cache" in html and "Closed loop" in html
    points = report.points.sort_values("schedule.concurrency")
    assert points["request_throughput"].is_monotonic_increasing  # more users, more work done


def test_capacity_finds_the_most_users_that_meet_the_slo(tmp_path, capsys) -> None:
    """The CLI's integer bisection ends on adjacent users: N meets, N + 1 violates."""
    from workload_eval.cli import main

    args = ["capacity", "--model", "opt-13b", "--kv-blocks", "643", "--policy", "vllm-v1"]
    args += ["--workload", "alpaca", "--schedule", "concurrency", "--num-requests", "200"]
    args += ["--slo", "e2e_latency_p95<=4", "--start", "8", "--out", str(tmp_path / "cap")]
    assert main(args) == 0
    out = capsys.readouterr().out
    cap = pd.read_csv(tmp_path / "cap" / "capacity.csv").iloc[0]
    users = int(cap.capacity_rate)
    assert cap.searched == "concurrency" and cap.upper == users + 1
    assert f"capacity: {users} users (closed loop)" in out
    index = pd.read_csv(tmp_path / "cap" / "index.csv")
    by_users = index.set_index("schedule.concurrency")["e2e_latency_p95"]
    assert by_users[users] <= 4 < by_users[users + 1]
    assert main([*args[:-2], "--num-requests", "0", "--out", str(tmp_path / "x")]) == 2


def test_a_spec_searches_users_and_the_report_keeps_them_off_the_rate_figures(tmp_path) -> None:
    from workload_eval.experiments import run_sweep
    from workload_eval.experiments.spec_loading import spec_from_yaml_text
    from workload_eval.report.html import build_report

    spec = spec_from_yaml_text(
        "name: c\nkv_blocks: 643\nworkloads: alpaca\nslos: ['e2e_latency_p95<=4']\n"
        "engines: [{engine: sim, policy: vllm-v1}]\n"
        "schedules:\n  - {kind: concurrency, concurrency: capacity, num_requests: 200}\n"
        "capacity: {start: 8}\n"
    )
    run_sweep(spec, tmp_path / "res")
    cap = pd.read_csv(tmp_path / "res" / "capacity.csv").iloc[0]
    assert cap.searched == "concurrency" and cap.capacity_rate == cap.upper - 1
    report = build_report(tmp_path / "res")
    names = {p.name for f in report.figures for p in f.paths}
    assert "figure2a_capacity.png" not in names  # users are not a request rate
    assert "concurrency" in report.capacity["searched"].tolist()
    with pytest.raises(UserError, match="concurrency: capacity"):
        spec_from_yaml_text(
            "name: c\nslos: ['e2e_latency_p95<=4']\n"
            "schedules:\n  - {kind: concurrency, rate: capacity, num_requests: 20}\n"
        )
