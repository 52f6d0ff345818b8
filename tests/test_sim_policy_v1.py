"""vLLM V1 and V0 policies: the fast path equals the literal per-request path, and the rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sim_helpers import AsyncLinearPerf, LinearPerf, U, random_schedule, run, schedule

from workload_eval.contracts import PromptSegment

KV = {"kv_blocks": 120, "block_size": 16, "max_model_len": 512}


def outcome(rec) -> pd.DataFrame:
    return rec.requests[
        ["first_token_time", "finish_time", "generated_tokens", "num_preemptions", "status"]
    ]


def with_segments(sched, seed: int):
    """Random shared system prompts and repeated questions, as a shared-prefix workload."""
    rng = np.random.default_rng(seed)
    for it in sched.items:
        p = it.request.prompt_len
        g, s = int(rng.integers(0, 5)), min(int(rng.integers(0, 80)), p)
        segs = (PromptSegment(f"s{g}", s),)
        if rng.random() < 0.5 and p > s:
            segs += (PromptSegment(f"q{g}:{int(rng.integers(0, 3))}:{p - s}", p - s),)
        it.request.prefix_segments = segs
    return sched


MODES = {
    "chunked": {},
    "whole prompts": {"enable_chunked_prefill": False},
    "threshold": {"options": {"long_prefill_token_threshold": 64}},
    "prefix caching": {"enable_prefix_caching": True},
    "caching + threshold": {
        "enable_prefix_caching": True,
        "options": {"long_prefill_token_threshold": 48},
    },
}


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("seed", [3, 4])
def test_fast_path_equals_the_literal_step_and_step_by_step(
    mode: str, seed: int, asynchronous: bool
):
    cfg = {k: v for k, v in MODES[mode].items() if k != "options"}
    opts = MODES[mode].get("options", {})
    cfg["perf"] = AsyncLinearPerf() if asynchronous else LinearPerf()
    sched = random_schedule(300, seed=seed, rate=30)
    if cfg.get("enable_prefix_caching"):
        with_segments(sched, seed)
    fast = run(sched, policy="vllm-v1", **KV, **cfg, options=dict(opts))
    slow = run(sched, policy="vllm-v1", **KV, **cfg, options={**opts, "skip_ahead": False})
    literal = run(
        sched,
        policy="vllm-v1",
        **KV,
        **cfg,
        options={**opts, "skip_ahead": False, "walk": "general"},
    )
    assert fast.requests["num_preemptions"].sum() > 0  # the case exercises preemption
    pd.testing.assert_frame_equal(outcome(fast), outcome(slow), check_exact=True)
    pd.testing.assert_frame_equal(outcome(fast), outcome(literal), check_exact=True)
    assert fast.steps["num_steps"].sum() == literal.steps["num_steps"].sum()
    assert rec_blocks_within(fast, KV["kv_blocks"])


def rec_blocks_within(rec, total: int) -> bool:
    return bool((rec.steps["kv_blocks_used"] <= total).all())


def test_v1_preempts_the_newest_running_request_and_resumes_it_first():
    # 3 requests of 100-token prompts growing to 400 tokens in 40 blocks of 16 (= 640 tokens):
    # they cannot all stay; the newest is preempted, and it goes back to the queue's front
    rec = run(
        schedule([100, 100, 100], [300, 300, 300], [0.0, 0.001, 0.002]),
        policy="vllm-v1",
        kv_blocks=40,
        block_size=16,
        max_model_len=512,
    )
    r = rec.requests.set_index("request_id")
    assert r.loc[0, "num_preemptions"] == 0
    assert r.loc[2, "num_preemptions"] >= 1
    assert r.loc[0, "finish_time"] < r.loc[1, "finish_time"] < r.loc[2, "finish_time"]
    assert (r["generated_tokens"] == 300).all()


def test_v1_admits_no_more_than_max_num_seqs_and_chunks_under_the_budget():
    rec = run(
        schedule([300, 20, 20], [3, 3, 3]),
        policy="vllm-v1",
        max_num_seqs=2,
        max_num_batched_tokens=256,
        kv_blocks=100,
        max_model_len=512,
        options={"skip_ahead": False},
    )
    s = rec.steps
    assert s["num_running"].max() == 2
    assert s["batched_tokens"].tolist()[:2] == [256, 44 + 20]  # chunk, then rest + the next


def test_v1_without_chunked_prefill_waits_for_a_budget_that_fits_the_prompt():
    rec = run(
        schedule([200, 100], [2, 2]),
        policy="vllm-v1",
        enable_chunked_prefill=False,
        max_num_batched_tokens=256,
        kv_blocks=100,
        max_model_len=256,
        options={"skip_ahead": False},
    )
    assert rec.steps["batched_tokens"].tolist()[:2] == [200, 1 + 100]


def test_v0_counts_real_tokens_where_vllm_02_pads():
    sched = schedule([10, 300], [2, 2])
    v02 = run(sched, kv_blocks=200, max_num_batched_tokens=2560)
    v0 = run(sched, policy="vllm-v0", kv_blocks=200, max_num_batched_tokens=2560)
    assert v02.steps["batched_tokens"].iloc[0] == 10  # 0.2: 290 paddings > 256, alone
    assert v0.steps["batched_tokens"].iloc[0] == 310  # V0: both prompts, no padding
    assert v0.steps["kind"].astype(str).iloc[0] == "prefill"  # prefill-first steps


def test_v0_chunked_prefill_allocates_the_whole_prompt_on_admission():
    rec = run(
        schedule([300], [2]),
        policy="vllm-v0",
        enable_chunked_prefill=True,
        max_num_batched_tokens=128,
        kv_blocks=100,
        max_model_len=512,
        options={"skip_ahead": False},
    )
    s = rec.steps
    assert s["batched_tokens"].tolist()[:3] == [128, 128, 44]
    assert s["kv_blocks_used"].iloc[0] == 19  # all of ceil(300 / 16) blocks at once


def test_v0_chunked_runs_to_completion_under_preemption():
    sched = random_schedule(300, seed=5, rate=30)
    rec = run(sched, policy="vllm-v0", enable_chunked_prefill=True, **KV)
    r = rec.requests
    assert (r["status"] == "ok").all() and r["num_preemptions"].sum() > 0
    assert rec_blocks_within(rec, KV["kv_blocks"])


def test_async_scheduling_admits_a_request_arriving_mid_step_one_step_later():
    # a long decode keeps the engine busy with one-request decode steps; the second request
    # arrives during a step: sync schedules it into the next step, async (the next step was
    # scheduled when the current one started) into the one after
    sched = schedule([100, 50], [400, 2], [0.0, 1.0])
    cfg = {"policy": "vllm-v1", "kv_blocks": 200, "max_model_len": 1024}
    sync = run(sched, **cfg).requests.set_index("request_id")
    lagged = run(sched, **cfg, perf=AsyncLinearPerf(), options={"skip_ahead": False})
    lag = lagged.requests.set_index("request_id")
    assert lag.loc[0, "first_token_time"] == sync.loc[0, "first_token_time"]  # idle: no lag
    steps = lagged.steps.reset_index(drop=True)
    mixed = int(steps.index[steps["kind"].astype(str) == "mixed"][0])
    extra_step = steps.iloc[mixed - 1]  # the decode step scheduled before the arrival was seen
    assert extra_step["kind"] == "decode" and extra_step["num_steps"] == 1
    extra = lag.loc[1, "first_token_time"] - sync.loc[1, "first_token_time"]
    # that step, plus 1 U in the mixed step: request 0's context is one token longer by then
    assert extra == extra_step["duration"] + U


def test_async_runs_with_recorded_token_times_equal_step_by_step():
    sched = random_schedule(300, seed=7, rate=30)
    cfg = {"policy": "vllm-v1", **KV, "perf": AsyncLinearPerf()}
    fast = run(sched, **cfg, options={"record_token_times": True})
    slow = run(sched, **cfg, options={"record_token_times": True, "skip_ahead": False})
    pd.testing.assert_frame_equal(outcome(fast), outcome(slow), check_exact=True)
    assert fast.requests["token_times"].map(tuple).equals(slow.requests["token_times"].map(tuple))
    assert len(fast.steps) < len(slow.steps)
