"""SimEngine end to end: skip-ahead exactness, determinism, sessions, records, errors, V1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sim_helpers import U, random_schedule, run, schedule

from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS
from workload_eval.engines.base import EngineConfig, get_engine
from workload_eval.engines.sim import SimEngine
from workload_eval.errors import UserError

SMALL_KV = {"kv_blocks": 120, "block_size": 16, "max_model_len": 512}


def outcome(rec) -> pd.DataFrame:
    return rec.requests[
        ["first_token_time", "finish_time", "generated_tokens", "num_preemptions", "status"]
    ]


@pytest.mark.parametrize("policy", ["vllm-0.2", "vllm-v0", "vllm-v1"])
def test_skip_ahead_gives_exactly_the_step_by_step_result(policy: str):
    sched = random_schedule(400, seed=1)
    fast = run(sched, policy=policy, **SMALL_KV)
    slow = run(sched, policy=policy, **SMALL_KV, options={"skip_ahead": False})
    assert fast.requests["num_preemptions"].sum() > 0  # the case exercises preemption
    pd.testing.assert_frame_equal(outcome(fast), outcome(slow), check_exact=True)
    assert fast.steps["num_steps"].sum() == slow.steps["num_steps"].sum()
    assert len(fast.steps) < len(slow.steps)  # runs of decode steps were merged


def test_fast_walk_equals_vllm_walk_over_every_group():
    sched = random_schedule(400, seed=2, rate=40)
    fast = run(sched, **SMALL_KV, options={"skip_ahead": False})
    general = run(sched, **SMALL_KV, options={"skip_ahead": False, "walk": "general"})
    assert fast.requests["num_preemptions"].sum() > 20
    pd.testing.assert_frame_equal(outcome(fast), outcome(general), check_exact=True)
    pd.testing.assert_frame_equal(fast.steps, general.steps, check_exact=True)


def test_parallel_samples_with_preemption_finish_and_balance_blocks():
    sched = random_schedule(150, seed=3, rate=30)
    rec = run(sched, n=3, **SMALL_KV)
    slow = run(sched, n=3, **SMALL_KV, options={"skip_ahead": False})
    r = rec.requests
    assert (r["status"] == "ok").all()
    assert r["num_preemptions"].sum() > 0
    assert (
        r["generated_tokens"]
        == np.minimum(r["expected_output_tokens"], 512 + 1 - r["prompt_tokens"])
    ).all()
    pd.testing.assert_frame_equal(outcome(rec), outcome(slow), check_exact=True)
    assert rec.steps["kv_blocks_used"].max() <= 120


def test_deterministic_for_the_same_schedule():
    sched = random_schedule(300, seed=4)
    a, b = run(sched, **SMALL_KV), run(sched, **SMALL_KV)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.steps, b.steps)


def test_records_have_the_contract_columns_and_consistent_times():
    rec = run(random_schedule(200, seed=5), **SMALL_KV)
    assert list(rec.requests.columns) == list(REQUEST_COLUMNS)
    assert list(rec.steps.columns)[: len(STEP_COLUMNS)] == list(STEP_COLUMNS)
    r = rec.requests
    assert (r["arrival_time"] <= r["first_token_time"]).all()
    assert (r["first_token_time"] <= r["finish_time"]).all()
    assert (r["send_time"] == r["arrival_time"]).all()
    s = rec.steps
    assert s["num_preempted"].sum() == r["num_preemptions"].sum()
    assert (s["logical_tokens"] <= s["physical_tokens"]).all()
    assert np.all(np.diff(s["time"]) >= 0)
    assert rec.report.kv_blocks == 120 and rec.report.engine == "sim"


def test_token_times_are_recorded_on_request():
    rec = run(random_schedule(60, seed=6), **SMALL_KV, options={"record_token_times": True})
    r = rec.requests
    for row in r.itertuples():
        assert len(row.token_times) == row.generated_tokens
        assert row.token_times[-1] == row.finish_time
        assert row.token_times[0] == row.first_token_time
        assert list(row.token_times) == sorted(row.token_times)
    plain = run(random_schedule(60, seed=6), **SMALL_KV)
    assert all(len(x) == 0 for x in plain.requests["token_times"])
    pd.testing.assert_series_equal(plain.requests["finish_time"], r["finish_time"])


def test_session_follow_up_arrives_think_time_after_its_parent_finishes():
    sched = schedule(
        [20, 40, 30],
        [5, 5, 5],
        [0.0, 0.0, 0.0],
        depends_on=[None, 0, 1],
        think_time=[0.0, 0.5, 0.25],
    )
    rec = run(sched, kv_blocks=50, max_model_len=100)
    r = rec.requests.set_index("request_id")
    assert r.loc[1, "arrival_time"] == r.loc[0, "finish_time"] + 0.5
    assert r.loc[2, "arrival_time"] == r.loc[1, "finish_time"] + 0.25
    assert r.loc[1, "first_token_time"] == r.loc[1, "arrival_time"] + (16 + 40) * U


def test_too_few_kv_blocks_for_one_maximal_request():
    with pytest.raises(UserError, match=r"--kv-blocks 100 is too few.*2048.*128 blocks"):
        run(schedule([10], [10]), kv_blocks=100)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("gpu", "tpu-v9", "unknown GPU"), ("model", "gpt-17", "unknown model")],
)
def test_unknown_names_are_user_errors(field, value, message):
    cfg = {"model": "opt-13b", "gpu": "a100-40gb", "kv_blocks": 643, field: value}
    with pytest.raises(UserError, match=message):
        SimEngine().run(schedule([10], [10]), EngineConfig(**cfg))


def test_unknown_option_is_a_user_error():
    with pytest.raises(UserError, match="skip_ahaed"):
        run(schedule([10], [10]), options={"skip_ahaed": False})


def test_real_perf_model_and_memory_sized_cache_through_get_engine():
    engine = get_engine("sim")
    cfg = EngineConfig(model="opt-13b", gpu="a100-40gb", gpu_memory_utilization=0.9)
    rec = engine.run(random_schedule(100, seed=7), cfg)
    assert (rec.requests["status"] == "ok").all()
    assert rec.report.kv_blocks is not None and rec.report.kv_blocks > 100
    # OPT-13B decode steps on an A100 take tens of milliseconds
    decode = rec.steps[rec.steps["kind"] == "decode"]
    per_step = decode["duration"].sum() / decode["num_steps"].sum()
    assert 0.005 < per_step < 0.2


def test_v1_chunks_prompts_under_the_token_budget_and_mixes_decodes():
    rec = run(
        schedule([300, 300], [4, 4]),
        policy="vllm-v1",
        max_num_batched_tokens=256,
        kv_blocks=200,
        max_model_len=512,
        options={"skip_ahead": False},
    )
    s = rec.steps
    assert s["batched_tokens"].tolist()[:3] == [256, 256, 89]
    # step 2: the rest of prompt 1 (44) + a chunk of prompt 2 (212); step 3: 1 decode + 88
    assert s["kind"].astype(str).tolist()[:3] == ["prefill", "prefill", "mixed"]
    r = rec.requests
    assert r["first_token_time"].iloc[0] == s["time"].iloc[2]
    assert (r["generated_tokens"] == 4).all()


def test_progress_bar_runs_to_the_same_result(capsys):
    sched = random_schedule(200, seed=8)
    config = EngineConfig(model="opt-13b", **SMALL_KV)
    with_bar = SimEngine().run(sched, config, progress=True)
    without = SimEngine().run(sched, config)
    pd.testing.assert_frame_equal(with_bar.requests, without.requests)
    assert "simulating" in capsys.readouterr().err


class _CtrlCAfter:
    """Fault injection: a step-time model that raises KeyboardInterrupt on its k-th step."""

    def __init__(self, base, k: int) -> None:
        self.base, self.k, self.calls = base, k, 0

    def __getattr__(self, name):
        fn = getattr(self.base, name)

        def counted(*args):
            self.calls += 1
            if self.calls == self.k:
                raise KeyboardInterrupt
            return fn(*args)

        return counted


def test_ctrl_c_returns_the_requests_simulated_so_far():
    from sim_helpers import LinearPerf

    sched = random_schedule(200, seed=3)
    config = EngineConfig(model="opt-13b", gpu="a100-40gb", kv_blocks=400)
    records = SimEngine(perf=_CtrlCAfter(LinearPerf(), 150)).run(sched, config)
    req = records.requests
    assert records.report.interrupted is True
    assert len(req) == 200  # every request is in the records, finished or not
    done, failed = req[req.status == "ok"], req[req.status == "failed"]
    assert len(done) > 0 and len(failed) > 0
    assert (done.generated_tokens == done.expected_output_tokens).all()
    assert failed.error.str.contains("interrupted").all()
    assert records.report.sim_end_time == done.finish_time.max()
