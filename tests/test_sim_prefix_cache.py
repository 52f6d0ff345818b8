"""Prefix caching as vLLM V1 does it, on small hand-computed cases (block size 16).

Every request finishes in its own second here, so each prefill is one step and the step
log's batched tokens say how many prompt tokens were computed (the rest were cache hits).
"""

from __future__ import annotations

import pytest
from sim_helpers import run, schedule

from workload_eval.contracts import PromptSegment, output_segment_key
from workload_eval.engines.sim.prefix_cache import BlockHasher, BlockPool

CFG = {"policy": "vllm-v1", "block_size": 16, "max_num_batched_tokens": 256}


def seg(*parts: tuple[str, int]) -> tuple[PromptSegment, ...]:
    return tuple(PromptSegment(k, n) for k, n in parts)


def prefill_tokens(rec) -> list[int]:
    """Tokens computed by each step that computed prompt tokens (prefill or mixed)."""
    s = rec.steps
    return s.loc[s["kind"].astype(str) != "decode", "batched_tokens"].tolist()


def one_per_second(prompts, outputs, segments, **extra):
    sched = schedule(prompts, outputs, [float(i) for i in range(len(prompts))], **extra)
    for it, segs in zip(sched.items, segments, strict=True):
        it.request.prefix_segments = segs
    return sched


def test_hit_covers_the_shared_full_blocks_and_never_the_last_token():
    sched = one_per_second(
        [40, 50, 48, 48],
        [1, 1, 1, 1],
        [seg(("S", 40)), seg(("S", 40)), seg(("S", 40), ("Q", 8)), seg(("S", 40), ("Q", 8))],
    )
    rec = run(sched, **CFG, kv_blocks=40, max_model_len=128, enable_prefix_caching=True)
    # 40: cold; 50: 2 full blocks of S hit (32) -> 18; 48: the same 2 blocks -> 16;
    # 48 again: 3 cached blocks but at most (48 - 1) // 16 = 2 may hit -> 16
    assert prefill_tokens(rec) == [40, 18, 16, 16]
    cold = run(sched, **CFG, kv_blocks=40, max_model_len=128)
    assert prefill_tokens(cold) == [40, 50, 48, 48]


def test_blocks_shared_by_running_requests_are_held_once():
    sched = schedule([80, 80], [10, 10], [0.0, 0.0])
    for it in sched.items:
        it.request.prefix_segments = seg(("S", 64))
    rec = run(sched, **CFG, kv_blocks=40, max_model_len=128, enable_prefix_caching=True)
    first = rec.steps.iloc[0]
    # the second request is admitted after the first registered its 4 prompt blocks, in the
    # same step: it computes (80 - 1) // 16 * 16 = 64 fewer tokens and holds 1 block of its own
    assert first["batched_tokens"] == 80 + 16
    assert first["kv_blocks_used"] == 5 + 1


def test_least_recently_freed_blocks_are_evicted_first_last_block_first():
    sched = one_per_second(
        [32, 32, 112, 40, 40],
        [1, 1, 1, 1, 1],
        [seg(("A", 32)), seg(("B", 32)), (), seg(("A", 32)), seg(("B", 32))],
    )
    rec = run(sched, **CFG, kv_blocks=10, max_model_len=160, enable_prefix_caching=True)
    # free queue after A, B: [6 plain, A1, A0, B1, B0]; the 7-block prompt takes the 6 plain
    # blocks and evicts A1 (A was freed first, its last block first). A's prompt then hits
    # A0 (24 tokens left) and takes 2 new blocks from the queue's head: B1 and B0, so B's
    # prompt finds nothing.
    assert prefill_tokens(rec) == [32, 32, 112, 24, 40]


def test_follow_up_turn_reuses_the_answer_blocks_of_its_parent():
    parent = seg(("S", 20), ("Q", 12))
    repeat = (*parent, PromptSegment(output_segment_key(0), 17), PromptSegment("Q", 12))
    other = (*parent, PromptSegment("unrelated answer", 17), PromptSegment("Q", 12))
    for follow, computed in ((repeat, 61 - 48), (other, 61 - 32)):
        check_follow_up(parent, follow, computed)


def test_a_prefix_stable_session_key_continues_through_the_answer():
    # workloads' sessions: turn r+1 extends turn r's last key over its answer and question
    parent = seg(("prefix:0", 20), ("session:0", 12))
    follow = seg(("prefix:0", 20), ("session:0", 12 + 17 + 12))
    check_follow_up(parent, follow, 61 - 48)
    check_follow_up(parent, seg(("prefix:0", 20), ("session:1", 41)), 61 - 16)


def check_follow_up(parent, follow, computed: int) -> None:
    sched = one_per_second([32, 61], [17, 4], [parent, follow], depends_on=[None, 0])
    rec = run(sched, **CFG, kv_blocks=40, max_model_len=128, enable_prefix_caching=True)
    # the parent computed 32 + 17 - 1 = 48 tokens: 3 full blocks, the third its answer
    assert prefill_tokens(rec)[-1] == computed


@pytest.mark.parametrize("caching", [False, True])
def test_recomputed_requests_reuse_their_own_blocks_when_still_cached(caching: bool):
    sched = schedule([100, 100, 100], [300, 300, 300], [0.0, 0.001, 0.002])
    rec = run(sched, **CFG, kv_blocks=40, max_model_len=512, enable_prefix_caching=caching)
    r = rec.requests
    assert (r["status"] == "ok").all() and r["num_preemptions"].sum() > 0
    prompt_work = int(rec.steps["batched_tokens"].sum() - r["generated_tokens"].sum())
    if caching:  # a preempted request's blocks stay cached until evicted: some are reused
        uncached = run(sched, **CFG, kv_blocks=40, max_model_len=512)
        assert prompt_work < int(
            uncached.steps["batched_tokens"].sum() - uncached.requests["generated_tokens"].sum()
        )


def test_block_ids_follow_content_and_chain():
    h = BlockHasher(16)
    a = h.block_ids([("S", 40)])
    assert len(a) == 2
    assert h.block_ids([("S", 40), ("Q", 30)])[:2] == a  # same leading content
    assert h.block_ids([("S", 16), ("T", 16)])[0] == a[0]
    assert h.block_ids([("S", 16), ("T", 16)])[1] != a[1]  # different second block
    assert h.block_ids([("X", 16), ("S", 16)])[1] != a[0]  # same piece, other parent
    assert h.block_ids([("S", 15)]) == []


def test_pool_counts_free_and_evicts_from_the_head():
    pool = BlockPool(4)
    pool.allocate(2)
    pool.register(7)
    pool.release(7)  # cached, free, evictable
    assert pool.free == 3 and pool.cached(7)
    pool.touch(7)  # reused: no longer free
    assert pool.free == 2
    pool.release(7)
    pool.allocate(3)  # 2 plain blocks, then the cached one
    assert pool.free == 0 and not pool.cached(7) and pool.evicted_cached == 1
