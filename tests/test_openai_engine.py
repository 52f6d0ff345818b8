"""The openai engine (open-loop load generator, Prometheus sampling) against the instant server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import OpenAIEngine
from workload_eval.engines.openai.prometheus import Timeline, parse_metrics
from workload_eval.errors import UserError
from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess, free_port


def poisson(rate: float, n: int, prompt_len: int = 32, output_len: int = 16) -> Schedule:
    t = np.cumsum(np.random.default_rng(0).exponential(1 / rate, n))
    items = [
        ScheduledRequest(Request(i, prompt_len, output_len, workload="w"), float(t[i]))
        for i in range(n)
    ]
    return Schedule("poisson", items, {"rate": rate})


def run(url: str, schedule: Schedule, **options):
    cfg = EngineConfig(model="instant", options={"base_url": url, **options})
    return OpenAIEngine().run(schedule, cfg)


@pytest.fixture(scope="module")
def server():
    with InstantServerProcess() as srv:
        yield srv


def test_open_loop_keeps_the_schedule_and_measures_from_it(server):
    """What holds on any machine: every record, lags measured from the schedule, and a
    verdict that agrees with its own numbers (how well the schedule is kept at speed is
    benchmarks/loadgen.py's to measure, not a unit test's)."""
    sched = poisson(300, 600)
    rec = run(server.base_url, sched, max_lag_p99=0.05, rate_tolerance=0.05)
    r, lg = rec.requests, rec.report.loadgen.model_dump()
    assert len(r) == 600 and (r.status == "ok").all()
    assert (r.generated_tokens == 16).all() and (r.prompt_tokens == 32).all()
    assert lg["output_token_mismatches"] == 0 and lg["prompt_token_mismatches"] == 0
    assert lg["usage_mismatches"] == 0 and (r.attempts == 1).all() and (r.error_side == "").all()
    arrivals = np.array([it.arrival_time for it in sched.items])
    assert np.allclose(r.arrival_time, arrivals)  # latencies run from the schedule
    assert lg["target_rate"] == pytest.approx(599 / (arrivals[-1] - arrivals[0]))
    lag = r.send_time - r.arrival_time
    assert (lag >= 0).all()
    assert np.isclose(lg["dispatch_lag_max"], lag.max())
    assert lg["dispatch_lag_p99"] == pytest.approx(np.percentile(lag, 99))
    assert (r.first_token_time >= r.send_time).all() and (r.finish_time >= r.first_token_time).all()
    for times in r.token_times:
        assert len(times) == 16 and np.all(np.diff(times) >= 0)
    kept = (
        lg["dispatch_lag_p99"] <= 0.05 and abs(lg["achieved_rate"] / lg["target_rate"] - 1) <= 0.05
    )
    assert lg["valid"] == kept and (lg["invalid_reason"] == "") == kept, lg
    assert len(rec.steps) >= 2 and (rec.steps.kv_blocks_total == 100).all()


def test_the_sampler_sees_the_requests_the_server_is_running():
    """Deterministic: each request is held by the server until /metrics was scraped twice
    while it ran, so those samples must show it running."""
    with InstantServerProcess(FaultConfig(hold_for_scrapes=2)) as srv:
        rec = run(srv.base_url, poisson(50, 3), metrics_interval=0.02)
    assert (rec.requests.status == "ok").all()
    steps = rec.steps
    assert (steps.kind == "sample").all() and steps.num_running.max() >= 1
    assert steps.time.is_monotonic_increasing


def test_http_errors_are_recorded_and_the_run_goes_on():
    with InstantServerProcess(FaultConfig(fail_every=4)) as srv:
        rec = run(srv.base_url, poisson(200, 40))
    r = rec.requests
    failed = r[r.status == "failed"]
    assert len(r) == 40 and len(failed) == 10
    assert failed.error.str.startswith("HTTP 500").all()
    assert failed.finish_time.isna().all()
    assert (r[r.status == "ok"].generated_tokens == 16).all()


def test_a_stream_closed_midway_is_a_failed_record():
    with InstantServerProcess(FaultConfig(drop_every=3, token_interval=0.002)) as srv:
        rec = run(srv.base_url, poisson(100, 30, output_len=8))
    r = rec.requests
    failed = r[r.status == "failed"]
    assert len(failed) == 10 and (failed.error != "").all()
    assert (failed.generated_tokens < 8).all()  # the tokens it got before the close


def test_timeouts_are_failed_records_and_do_not_stall_the_run():
    """The server would answer after 60 s: a run that waited for it could not end sooner."""
    with InstantServerProcess(FaultConfig(delay=60.0)) as srv:
        t = time.monotonic()
        rec = run(srv.base_url, poisson(50, 10), request_timeout=0.3)
        wall = time.monotonic() - t
    assert (rec.requests.status == "failed").all()
    assert (rec.requests.error == "timeout").all() and (rec.requests.error_side == "server").all()
    assert wall < 60


def test_max_concurrency_caps_requests_in_flight_at_the_server():
    """Deterministic: the server answers only once 4 requests ran at once, so the cap is
    reached, and a fifth would show as max_running 5; waiting for a slot is lag."""
    with InstantServerProcess(FaultConfig(barrier=4, delay=0.05)) as srv:
        rec = run(srv.base_url, poisson(200, 40, output_len=8), max_concurrency=4)
        with urllib.request.urlopen(srv.base_url + "/metrics") as resp:
            metrics = resp.read().decode()
    assert (rec.requests.status == "ok").all()
    max_running = int(
        next(ln.split()[1] for ln in metrics.splitlines() if ln.startswith("instant:max_running"))
    )
    assert max_running == 4
    # Waiting for a slot is lag: the schedule could not be kept, and the run says so.
    assert not rec.report.loadgen.valid
    assert "lag" in rec.report.loadgen.invalid_reason


def test_chat_sessions_send_the_history_with_the_servers_replies(server):
    texts = ["hello there", "tell me more please", "and again"]
    items = []
    rid = 0
    for s in range(2):
        prev = None
        for turn, text in enumerate(texts):
            req = Request(rid, 10, 3 + turn, session_id=s, turn=turn, prompt_text=text)
            items.append(ScheduledRequest(req, 0.05 * s, depends_on=prev, think_time=0.2))
            prev = rid
            rid += 1
    rec = run(server.base_url, Schedule("sessions", items), endpoint="chat")
    r = rec.requests.set_index("request_id")
    assert (r.status == "ok").all()
    for s in range(2):
        turns = r[r.session_id == s].sort_values("turn")
        words = 0
        for k, row in enumerate(turns.itertuples()):
            words += len(texts[k].split())
            # the instant server counts words: history (with its own replies) + this turn
            assert row.prompt_tokens == words
            words += row.generated_tokens
            if k:
                prev = turns.iloc[k - 1]
                assert row.arrival_time == pytest.approx(prev.finish_time + 0.2, abs=1e-6)
                assert row.send_time >= prev.finish_time + 0.2


def test_api_key_comes_from_the_environment_and_is_never_stored(monkeypatch):
    monkeypatch.setenv("WE_TEST_KEY", "sekret-123")
    with InstantServerProcess(FaultConfig(api_key="sekret-123")) as srv:
        url = srv.base_url.replace("http://", "http://user:pw@")
        rec = run(url, poisson(100, 5), api_key_env="WE_TEST_KEY")
        bad = run(srv.base_url, poisson(100, 2))
    assert (rec.requests.status == "ok").all()
    assert bad.requests.error.str.startswith("HTTP 401").all()
    dumped = rec.report.model_dump_json()
    assert "sekret" not in dumped and "pw@" not in dumped
    monkeypatch.delenv("WE_TEST_KEY")
    with pytest.raises(UserError, match="WE_TEST_KEY"):
        run(srv.base_url, poisson(100, 2), api_key_env="WE_TEST_KEY")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "--base-url"),
        ({"base_url": "http://h", "endpoint": "embed"}, "endpoint"),
        ({"base_url": "ftp://h"}, "http"),
        ({"base_url": "http://h", "max_concurency": 3}, "max_concurency"),
    ],
)
def test_bad_options_are_one_line_user_errors(options, match):
    with pytest.raises(UserError, match=match):
        OpenAIEngine().run(poisson(10, 1), EngineConfig(model="m", options=options))


def test_stages_and_follow_ups_are_sent_when_the_schedule_graph_says(server):
    """Stage 1 leaves 0.3 s after every stage-0 request finished; a follow-up leaves at the
    later of its parent's end + think time and its own arrival time."""
    items = [ScheduledRequest(Request(i, 16, 8, workload="w"), 0.05 * i, stage=0) for i in range(3)]
    items.append(ScheduledRequest(Request(3, 16, 8), 0.4, depends_on=0, think_time=0.0))
    items += [ScheduledRequest(Request(4 + i, 16, 8), 0.1 * i, stage=1) for i in range(2)]
    rec = run(server.base_url, Schedule("staged", items, stage_gap_s=0.3))
    r = rec.requests.set_index("request_id")
    assert (r.status == "ok").all(), r.error.tolist()
    assert r.loc[3, "send_time"] >= r.loc[3, "arrival_time"] == pytest.approx(0.4)
    drained = r.loc[[0, 1, 2, 3], "finish_time"].max()
    assert r.loc[4, "arrival_time"] == pytest.approx(drained + 0.3)
    assert r.loc[5, "arrival_time"] == pytest.approx(drained + 0.4)
    assert (r.loc[[4, 5], "send_time"] >= r.loc[[4, 5], "arrival_time"]).all()


def test_a_server_that_is_not_there_gives_failed_records_not_a_crash():
    rec = run(f"http://127.0.0.1:{free_port()}", poisson(100, 20), metrics_interval=0.05)
    r = rec.requests
    assert len(r) == 20 and (r.status == "failed").all() and (r.error != "").all()
    assert len(rec.steps) == 0


CTRL_C_SCRIPT = textwrap.dedent("""
    import json, signal, sys
    import numpy as np
    # Ctrl-C as a foreground process has it, even when the test runs as a background job
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from workload_eval.contracts import Request, Schedule, ScheduledRequest
    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.openai import OpenAIEngine
    items = [ScheduledRequest(Request(i, 8, 20), 0.1 * i) for i in range(200)]
    cfg = EngineConfig(model="m", options={"base_url": sys.argv[1]})
    print("started", flush=True)
    rec = OpenAIEngine().run(Schedule("constant", items), cfg)
    print(json.dumps({"n": len(rec.requests), "status": rec.requests.status.tolist(),
                      "errors": rec.requests.error.tolist(),
                      "loadgen": rec.report.loadgen.model_dump()}, default=str))
""")


def test_ctrl_c_returns_what_was_gathered():
    with InstantServerProcess(FaultConfig(token_interval=0.02)) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", CTRL_C_SCRIPT, srv.base_url],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 120
        while _completed(srv.base_url) < 2:  # work done, and ~18 s of it still to come
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    got = json.loads(out.strip().splitlines()[-1])
    assert got["n"] == 200 and got["loadgen"]["interrupted"] and not got["loadgen"]["valid"]
    status, errors = got["status"], got["errors"]
    assert 1 <= status.count("ok") < 200
    assert any("interrupted" in e for e in errors)  # in flight at Ctrl-C, or never sent


def _completed(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    line = next(x for x in text.splitlines() if x.startswith("instant:completed_total"))
    return int(float(line.split()[-1]))


def test_prometheus_text_becomes_step_rows():
    text = textwrap.dedent("""\
        # HELP vllm:num_preemptions Cumulative number of preemption from the engine.
        # TYPE vllm:num_preemptions counter
        vllm:num_preemptions_total{engine="0",model_name="m"} 5.0
        vllm:num_preemptions_created{engine="0",model_name="m"} 1.7e9
        vllm:num_requests_running{engine="0",model_name="m"} 3.0
        vllm:num_requests_running{engine="1",model_name="m"} 2.0
        vllm:num_requests_waiting{engine="0",model_name="m"} 4.0
        vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
        vllm:cache_config_info{block_size="32",engine="0",num_gpu_blocks="64"} 1.0
        vllm:prompt_tokens_total{engine="0",model_name="m"} 1234.0
    """)
    s = parse_metrics(text)
    assert (s.running, s.waiting, s.kv_usage, s.preemptions_total) == (5, 4, 0.25, 5)
    assert (s.kv_blocks_total, s.block_size) == (64, 32)
    tl = Timeline()
    tl.add(0.0, s)
    s.preemptions_total = 8
    tl.add(0.5, s)
    assert [r["num_preempted"] for r in tl.rows] == [0, 3] and tl.preemptions == 3
    assert tl.rows[0]["kv_blocks_used"] == 16 and tl.rows[0]["physical_tokens"] == 512
    assert np.isnan(parse_metrics("other_metric 1\n").running)
