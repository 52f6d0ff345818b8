"""inference-perf's shared_prefix stream, pinned on small cases computed by hand."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from workload_eval.contracts import PromptSegment
from workload_eval.workloads.shared_prefix import (
    SharedPrefixWorkload,
    prompt_lengths,
    prompt_order,
    shared_prefix_requests,
    shared_prefix_table,
)

CALIB = Path(__file__).resolve().parents[2] / "shared" / "real-gpu" / "calib"

# 2 groups x 2 prompts; group-major prompt i belongs to group i // 2:
#   prompt 0 = S0 Q0, 1 = S0 Q1, 2 = S1 Q2, 3 = S1 Q3.
SMALL = dict(num_groups=2, prompts_per_group=2, system_prompt_len=3, question_len=2, output_len=5)


def test_order_is_pythons_seeded_shuffle_of_the_group_major_prompts():
    # random.Random(0).shuffle([0, 1, 2, 3]) == [2, 0, 1, 3]: what inference-perf's
    # random.shuffle draws after random.seed(0)
    spec = SharedPrefixWorkload(**SMALL)
    assert prompt_order(spec, 0) == [2, 0, 1, 3]
    ref = list(range(4))
    random.Random(0).shuffle(ref)
    assert prompt_order(spec, 0) == ref


def test_single_turn_stream_restarts_at_prompt_zero_every_stage():
    spec = SharedPrefixWorkload(**SMALL)
    t = shared_prefix_table(spec, [6, 3], seed=0)
    # stage 0: n = 0..5 -> shuffled positions 0,1,2,3,0,1 -> prompts 2,0,1,3,2,0
    # stage 1: n = 0..2 -> positions 0,1,2 -> prompts 2,0,1 (not 3,0,1: the count restarts)
    assert t["prompt_id"].tolist() == [2, 0, 1, 3, 2, 0, 2, 0, 1]
    assert t["prefix_group"].tolist() == [1, 0, 0, 1, 1, 0, 1, 0, 0]
    assert t["stage"].tolist() == [0] * 6 + [1] * 3
    assert t["index"].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    assert t["prompt_len"].tolist() == [5] * 9  # 3 + 2, fixed lengths
    assert t["output_len"].tolist() == [5] * 9
    assert t["prefix_len"].tolist() == [3] * 9


def test_single_turn_requests_share_group_prefix_and_repeat_whole_prompts():
    spec = SharedPrefixWorkload(**SMALL)
    stream = shared_prefix_requests(spec, [6, 3], seed=0, workload="sp")
    reqs = [r for stage in stream.stages for r in stage]
    assert [r.request_id for r in reqs] == list(range(9))
    assert [len(s) for s in stream.stages] == [6, 3]
    assert reqs[0].prefix_segments == (PromptSegment("prefix:1", 3), PromptSegment("prompt:2", 2))
    assert reqs[1].prefix_segments == (PromptSegment("prefix:0", 3), PromptSegment("prompt:0", 2))
    # prompt 2 recurs at n=4 and in the next stage at n=0: identical segments (full-prompt hits)
    assert reqs[4].prefix_segments == reqs[0].prefix_segments == reqs[6].prefix_segments
    # prompts 0 and 1 share only their group's system prompt
    assert reqs[2].prefix_segments[0] == reqs[1].prefix_segments[0]
    assert reqs[2].prefix_segments[1] != reqs[1].prefix_segments[1]
    assert stream.after == {}
    assert all(r.workload == "sp" and r.session_id is None for r in reqs)


def test_multi_turn_prompts_grow_by_question_and_output_and_turns_chain_across_stages():
    spec = SharedPrefixWorkload(**SMALL, multi_turn=True)
    t = shared_prefix_table(spec, [6, 3], seed=0)
    # user u = k % 4 in every stage; session perm[u] = [2, 0, 1, 3][u] carries the system
    # prompt of group perm[u] // 2; turn r is S + (r+1) Q + r O = 3 + 2(r+1) + 5r = 5 + 7r
    assert t["session_id"].tolist() == [2, 0, 1, 3, 2, 0, 2, 0, 1]
    assert t["turn"].tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 1]
    assert t["prompt_len"].tolist() == [5, 5, 5, 5, 12, 12, 19, 19, 12]
    assert t["prefix_group"].tolist() == [1, 0, 0, 1, 1, 0, 1, 0, 0]
    stream = shared_prefix_requests(spec, [6, 3], seed=0)
    # each turn waits for the same user's previous turn, also across the stage boundary
    assert stream.after == {4: 0, 5: 1, 6: 4, 7: 5, 8: 2}
    reqs = [r for stage in stream.stages for r in stage]
    # the group's system prompt, then the user's conversation so far under one growing key:
    # turn 2 (19 tokens) = turn 1's prompt (12) + its output (5) + the question again (2)
    assert reqs[6].prefix_segments == (
        PromptSegment("prefix:1", 3),
        PromptSegment("session:2", 16),
    )
    assert reqs[4].prefix_segments == (PromptSegment("prefix:1", 3), PromptSegment("session:2", 9))
    assert reqs[0].prefix_segments == (PromptSegment("prefix:1", 3), PromptSegment("session:2", 2))
    assert (reqs[6].session_id, reqs[6].turn) == (2, 2)


def test_measured_prompt_length_sets_the_mean_bounds_and_shared_part():
    spec = SharedPrefixWorkload(
        num_groups=10,
        prompts_per_group=10,
        system_prompt_len=100,
        question_len=466,
        output_len=247,
        measured_prompt_len={"mean": 591.63, "min": 580.0, "max": 604.0},
    )
    lens = prompt_lengths(spec, 0)
    # BOS + 100 * (591.63 - 1) / 566 = 1 + round(104.35) = 105 shared tokens per group
    assert lens.system == 105
    totals = lens.system + lens.questions
    assert totals.sum() == 59163  # mean exactly 591.63 over the 100 prompts
    assert totals.min() >= 580 and totals.max() <= 604
    t = shared_prefix_table(spec, [1000], seed=0)
    assert t["prompt_len"].mean() == pytest.approx(591.63)
    # the lengths are a property of the prompt: a recurring prompt keeps its length
    first = t.groupby("prompt_id")["prompt_len"].nunique()
    assert (first == 1).all()
    assert not np.array_equal(prompt_lengths(spec, 1).questions, lens.questions)


def test_corpus_workload_blocks_are_valid_workloads():
    files = sorted(CALIB.glob("*.json"))
    assert len(files) >= 22
    for path in files:
        block = json.loads(path.read_text())["scenario"]["workload"]
        spec = SharedPrefixWorkload.model_validate(block)
        assert spec.num_prompts == 100 and not spec.multi_turn
        t = shared_prefix_table(spec, [250], seed=3)
        m = block["measured_prompt_len"]
        assert m["min"] <= t["prompt_len"].min() <= t["prompt_len"].max() <= m["max"]


def test_inference_perf_profile_names_are_accepted():
    spec = SharedPrefixWorkload.model_validate(
        {
            "num_unique_system_prompts": 11,
            "num_users_per_system_prompt": 4,
            "enable_multi_turn_chat": True,
            "system_prompt_len": 100,
            "question_len": 466,
            "output_len": 247,
        }
    )
    assert (spec.num_groups, spec.prompts_per_group, spec.multi_turn) == (11, 4, True)


def test_spec_seed_overrides_the_run_seed():
    spec = SharedPrefixWorkload(**SMALL, seed=0)
    a = shared_prefix_table(spec, [4], seed=99)["prompt_id"].tolist()
    assert a == [2, 0, 1, 3]
