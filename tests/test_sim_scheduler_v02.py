"""vLLM 0.2.1 scheduling rules on hand-computed small cases."""

from __future__ import annotations

import pytest
from sim_helpers import LinearPerf, U, run, schedule


def kinds(records) -> list[tuple[str, int, int]]:
    s = records.steps
    return list(zip(s["kind"].astype(str), s["batched_tokens"], s["num_preempted"], strict=True))


def test_admission_stops_at_max_num_batched_tokens_in_queue_order():
    rec = run(
        schedule([40, 40, 30], [3, 3, 3]),
        max_num_batched_tokens=100,
        max_model_len=100,
        kv_blocks=200,
    )
    steps = kinds(rec)
    assert steps[0] == ("prefill", 80, 0)  # 2 x 40 fits; 3 x 40 = 120 > 100
    assert steps[1] == ("prefill", 30, 0)  # prefill first: the third prompt before any decode
    assert steps[2][0] == "decode"


def test_padding_limit_of_256_tokens():
    rec = run(schedule([10, 300], [2, 2]), kv_blocks=200)
    assert kinds(rec)[0] == ("prefill", 10, 0)  # 2 x 300 - 310 = 290 paddings > 256
    rec = run(schedule([10, 200], [2, 2]), kv_blocks=200)
    assert kinds(rec)[0] == ("prefill", 400, 0)  # 190 paddings: one padded batch of 2 x 200


def test_max_num_seqs_counts_sequences_of_every_sample():
    rec = run(schedule([8, 8, 8], [2, 2, 2]), max_num_seqs=2, kv_blocks=200)
    assert rec.steps["num_running"].iloc[0] == 2
    rec = run(schedule([8, 8], [2, 2]), max_num_seqs=3, n=2, kv_blocks=400)
    assert kinds(rec)[0] == ("prefill", 8, 0)  # 2 + 2 sequences > 3


@pytest.mark.parametrize(("blocks", "admitted"), [(100, 1), (101, 2)])
def test_watermark_keeps_one_percent_free(blocks: int, admitted: int):
    # 800-token prompts need 50 blocks of 16; watermark = int(0.01 * blocks) = 1
    rec = run(
        schedule([800, 800], [2, 2]),
        kv_blocks=blocks,
        max_model_len=800,
        max_num_batched_tokens=1600,
    )
    assert rec.steps["batched_tokens"].iloc[0] == 800 * admitted
    assert rec.steps["kv_blocks_used"].iloc[0] == 50 * admitted


def test_prompts_over_the_limit_are_ignored_and_the_queue_goes_on():
    rec = run(schedule([1500, 20], [5, 5]), max_num_batched_tokens=1000, kv_blocks=300)
    r = rec.requests
    assert r["status"].tolist() == ["ignored", "ok"]
    assert "1500" in r["error"].iloc[0] and "1000" in r["error"].iloc[0]
    assert r["generated_tokens"].tolist() == [0, 5]
    assert kinds(rec)[0] == ("prefill", 20, 0)


@pytest.mark.parametrize("walk", ["fast", "general"])
def test_preemption_newest_first_then_self_and_front_of_queue(walk: str):
    # block_size 1: every decode step needs one block per sequence. 9 blocks, watermark 0.
    # A, B, C (prompt 2, output 5) fill 6 blocks; step 1 uses the last 3; step 2 preempts C
    # (newest); step 3 finds no block for B, the last running one: B preempts itself and goes
    # to the front of the queue, before C. A finishes in step 4; then B (prompt 2 + 3 generated)
    # and C (2 + 2) are recomputed together, in that order, filling the cache again, so the
    # next decode step preempts C a second time.
    rec = run(
        schedule([2, 2, 2], [5, 5, 5]),
        block_size=1,
        kv_blocks=9,
        max_model_len=9,
        options={"walk": walk, "skip_ahead": False},
    )
    steps = kinds(rec)
    assert steps[:5] == [
        ("prefill", 6, 0),
        ("decode", 3, 0),
        ("decode", 2, 1),
        ("decode", 1, 1),
        ("decode", 1, 0),
    ]
    assert steps[5] == ("prefill", 10, 0)  # B (5 tokens) and C (4), padded to 2 x 5
    r = rec.requests
    assert r["num_preemptions"].tolist() == [0, 1, 2]
    assert steps[6] == ("decode", 1, 1)
    assert r["generated_tokens"].tolist() == [5, 5, 5]
    assert rec.steps["num_running"].iloc[5] == 2
    t = rec.steps["time"].tolist()
    assert r["finish_time"].iloc[0] == t[5]  # A ends with step 4, when the recompute starts


def test_logical_and_physical_tokens():
    rec = run(schedule([20], [3]), kv_blocks=50, max_model_len=100, options={"skip_ahead": False})
    s = rec.steps
    assert s["kv_blocks_used"].tolist() == [2, 2, 2]
    assert s["physical_tokens"].tolist() == [32, 32, 32]
    assert s["logical_tokens"].tolist() == [20, 21, 22]
    assert s["kv_blocks_total"].iloc[0] == 50


@pytest.mark.parametrize(("prompt", "after_prefill", "after_decode"), [(20, 2, 4), (32, 2, 5)])
def test_parallel_samples_share_prompt_blocks_copy_on_write(prompt, after_prefill, after_decode):
    # n = 3: the prompt is stored once; the first decode step copies a partial last block for
    # two samples (20 tokens: 1 shared + 3 own) or gives each sample a new block (32 tokens).
    rec = run(
        schedule([prompt], [3]), n=3, kv_blocks=50, max_model_len=100, options={"skip_ahead": False}
    )
    used = rec.steps["kv_blocks_used"].tolist()
    assert used[:2] == [after_prefill, after_decode]
    assert rec.steps["batched_tokens"].tolist()[1] == 3  # three sequences decode
    assert rec.requests["generated_tokens"].iloc[0] == 3


def test_step_times_follow_the_performance_model():
    rec = run(schedule([20], [3]), kv_blocks=50, max_model_len=100, options={"skip_ahead": False})
    s = rec.steps
    assert s["duration"].tolist() == [(16 + 20) * U, (8 + 1 + 21) * U, (8 + 1 + 22) * U]
    r = rec.requests.iloc[0]
    assert r["first_token_time"] == 36 * U
    assert r["finish_time"] == (36 + 30 + 31) * U


def test_arrivals_wait_for_the_running_step():
    rec = run(
        schedule([20, 20], [2, 2], [0.0, 1 * U]),
        kv_blocks=50,
        max_model_len=100,
        options={"skip_ahead": False},
    )
    s = rec.steps
    # the second request arrives during the first prefill and is admitted right after it
    assert s["kind"].astype(str).tolist()[:2] == ["prefill", "prefill"]
    assert s["time"].iloc[1] == 36 * U


class RecordingPerf(LinearPerf):
    """The linear model, keeping what each prefill step was costed on."""

    def __init__(self) -> None:
        self.prefills: list[tuple[int, int, int]] = []

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        self.prefills.append((num_seqs, tokens, sum_sq_tokens))
        return super().prefill_time(num_seqs, tokens, sum_sq_tokens)


def test_prefill_attention_runs_over_the_padded_batch():
    """vLLM 0.2.1 pads every prompt of a prefill batch to the longest and its xformers mask
    is BlockDiagonalCausalMask.from_seqlens([max_prompt_len] * num_prompts): attention
    costs count x longest^2, like the GEMMs' count x longest tokens."""
    perf = RecordingPerf()
    run(schedule([10, 200], [2, 2]), perf=perf, kv_blocks=200)
    assert perf.prefills[0] == (2, 400, 2 * 200 * 200)
