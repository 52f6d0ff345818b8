"""Load stages with a drain barrier: stage k+1 starts a gap after stage k has finished."""

from __future__ import annotations

import pytest
from sim_helpers import U, run, schedule

from workload_eval.errors import UserError

KV = {"kv_blocks": 200, "max_model_len": 512}


@pytest.mark.parametrize("policy", ["vllm-0.2", "vllm-v0", "vllm-v1"])
def test_next_stage_starts_gap_after_the_previous_stage_drained(policy: str):
    sched = schedule([20, 30, 40, 50], [5, 40, 5, 5], [0.0, 0.125, 0.5, 0.25], stage=[0, 0, 1, 1])
    sched.stage_gap_s = 2.0
    r = run(sched, policy=policy, **KV).requests.set_index("request_id")
    drained = max(r.loc[0, "finish_time"], r.loc[1, "finish_time"])
    assert r.loc[1, "finish_time"] > r.loc[0, "finish_time"]  # the long one drains the stage
    assert r.loc[2, "arrival_time"] == drained + 2.0 + 0.5
    assert r.loc[3, "arrival_time"] == drained + 2.0 + 0.25
    # latency counts from the stage-relative intended arrival
    assert r.loc[3, "first_token_time"] == r.loc[3, "arrival_time"] + (16 + 50) * U


def test_empty_stages_chain_their_gaps():
    sched = schedule([20, 20], [3, 3], [0.0, 0.0], stage=[0, 3])
    sched.stage_gap_s = 1.0
    r = run(sched, **KV).requests.set_index("request_id")
    assert r.loc[1, "arrival_time"] == r.loc[0, "finish_time"] + 3 * 1.0


def test_without_a_gap_stage_indices_are_ignored():
    sched = schedule([20, 20], [3, 3], [0.0, 0.25], stage=[0, 1])
    r = run(sched, **KV).requests.set_index("request_id")
    assert r.loc[1, "arrival_time"] == 0.25


def test_follow_up_waits_for_its_parent_and_for_its_own_slot():
    # turn 1 is due at 0.001 s but its parent finishes later: sent at the parent's finish;
    # turn 2 is due long after turn 1 finishes: sent at its own time
    sched = schedule([20, 40, 30], [5, 5, 5], [0.0, 0.001, 10.0], depends_on=[None, 0, 1])
    r = run(sched, **KV).requests.set_index("request_id")
    assert r.loc[1, "arrival_time"] == r.loc[0, "finish_time"]
    assert r.loc[2, "arrival_time"] == 10.0


def test_follow_up_across_stages_is_released_with_its_stage():
    sched = schedule([20, 40], [5, 5], [0.0, 0.5], depends_on=[None, 0], stage=[0, 1])
    sched.stage_gap_s = 2.0
    r = run(sched, **KV).requests.set_index("request_id")
    assert r.loc[1, "arrival_time"] == r.loc[0, "finish_time"] + 2.0 + 0.5


def test_dependency_on_a_later_stage_is_a_user_error():
    sched = schedule([20, 40], [5, 5], [0.0, 0.0], depends_on=[1, None], stage=[0, 1])
    sched.stage_gap_s = 1.0
    with pytest.raises(UserError, match="depends on request 1 of a later stage 1"):
        run(sched, **KV)
