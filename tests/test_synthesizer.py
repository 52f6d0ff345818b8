"""The one prompt synthesizer and the schedule's graph: what every engine sends, and when."""

from __future__ import annotations

import numpy as np
import pytest

from workload_eval.contracts import PromptSegment, Request, Schedule, ScheduledRequest
from workload_eval.errors import UserError
from workload_eval.models import resolve_model
from workload_eval.workloads.synthesizer import (
    HASH_BLOCK_TOKENS,
    SYNTH_LOW_ID,
    PromptSynthesizer,
    Vocab,
    prompt_digest,
)

VOCAB = Vocab(size=32_000, special_ids=frozenset({0, 1, 2, 5000}), bos_id=1)


def test_ids_are_deterministic_for_a_seed_in_vocab_with_bos_first() -> None:
    req = Request(7, 300, 10)
    a = PromptSynthesizer(VOCAB, seed=0).prompt_ids(req)
    assert a == PromptSynthesizer(VOCAB, seed=0).prompt_ids(req)
    assert a != PromptSynthesizer(VOCAB, seed=1).prompt_ids(req)
    assert len(a) == 300 and a[0] == 1
    rest = np.array(a[1:])
    assert rest.min() >= SYNTH_LOW_ID and rest.max() < VOCAB.size and 5000 not in rest
    assert a != PromptSynthesizer(VOCAB, seed=0).prompt_ids(Request(8, 300, 10))


def test_same_segment_key_gives_identical_ids_and_a_shorter_one_is_a_prefix() -> None:
    synth = PromptSynthesizer(VOCAB, seed=3)
    system = PromptSegment("system:a", 64)
    a = synth.prompt_ids(Request(0, 100, 5, prefix_segments=(system,)))
    b = synth.prompt_ids(Request(1, 200, 5, prefix_segments=(system,)))
    assert a[:64] == b[:64] and a[64:] != b[64:100]
    short = synth.prompt_ids(Request(2, 100, 5, prefix_segments=(PromptSegment("system:a", 20),)))
    assert short[:20] == a[:20]
    assert synth.stream("k", 50).tolist() == synth.stream("k", 80).tolist()[:50]


def test_mooncake_hash_blocks_are_shared_token_ids() -> None:
    synth = PromptSynthesizer(VOCAB, seed=0)
    a = synth.prompt_ids(Request(0, 1200, 5, prefix_hash_ids=(11, 12, 13)))
    b = synth.prompt_ids(Request(1, 700, 5, prefix_hash_ids=(11, 14)))
    block = HASH_BLOCK_TOKENS
    assert a[:block] == b[:block]  # hash 11
    assert a[block : 2 * block] != b[block:700]
    segs = synth.segments(Request(1, 700, 5, prefix_hash_ids=(11, 14)))
    assert [(s.key, s.length) for s in segs] == [("hash:11", 512), ("hash:14", 188)]


def test_a_session_turn_starts_with_the_previous_turn_and_its_reply() -> None:
    synth = PromptSynthesizer(VOCAB, seed=0)
    turns = [Request(i, n, 10, session_id=4, turn=i) for i, n in enumerate((40, 80, 130))]
    ids = [synth.prompt_ids(t) for t in turns]
    assert ids[1][:50] == ids[0] + synth.stream("session:4", 50).tolist()[40:50]
    assert ids[2][:80] == ids[1]
    system = PromptSegment("system:chat", 16)
    with_system = synth.prompt_ids(Request(9, 60, 5, session_id=4, prefix_segments=(system,)))
    assert with_system[:16] == synth.prompt_ids(Request(3, 16, 1, prefix_segments=(system,)))


def test_segments_cover_exactly_the_prompt() -> None:
    synth = PromptSynthesizer(VOCAB, seed=0)
    req = Request(5, 100, 5, prefix_segments=(PromptSegment("a", 30), PromptSegment("b", 500)))
    segs = synth.segments(req)
    assert [(s.key, s.length) for s in segs] == [("a", 30), ("b", 70)]
    assert sum(s.length for s in synth.segments(Request(6, 90, 1))) == 90


def test_a_workloads_own_ids_pass_through_folded_into_the_vocabulary() -> None:
    synth = PromptSynthesizer(Vocab(size=1000, bos_id=1), seed=0)
    assert synth.prompt_ids(Request(0, 3, 1, prompt_token_ids=[1, 999, 1500])) == [1, 999, 700]


def test_vocab_from_the_catalog_and_a_digest_that_tells_prompts_apart() -> None:
    assert Vocab.for_model(resolve_model("llama-2-7b")) == Vocab(size=32_000, bos_id=1)
    assert Vocab.for_model(resolve_model("opt-13b")).bos_id == 2
    assert prompt_digest([1, 2, 3]) == prompt_digest((1, 2, 3)) != prompt_digest([1, 2, 4])


def _session(depends: list[int | None], arrivals: list[float]) -> Schedule:
    items = [
        ScheduledRequest(Request(10 + i, 5, 5), t, depends_on=d, think_time=0.5)
        for i, (d, t) in enumerate(zip(depends, arrivals, strict=True))
    ]
    return Schedule("sessions", items)


def test_the_schedule_owns_its_graph() -> None:
    sched = _session([None, 10, None, 11, None], [2.0, 2.0, 1.0, 2.0, 1.0])
    g = sched.graph
    assert g.roots == (2, 4, 0)  # by arrival time, ties in schedule order
    assert g.children == ((1,), (3,), (), (), ())
    assert g.parents == (None, 0, None, 1, None) and g.has_follow_ups
    assert sched.graph is g  # built once
    assert not _session([None, None], [0.0, 1.0]).graph.has_follow_ups


@pytest.mark.parametrize(
    ("depends", "match"),
    [([None, 99], "item 1: depends_on=99 names no other request"), ([11, 10], "never sent")],
)
def test_a_broken_graph_is_a_one_line_error(depends: list[int | None], match: str) -> None:
    with pytest.raises(UserError, match=match):
        _ = _session(depends, [0.0, 0.0]).graph


def test_the_simulator_records_what_a_real_engine_would_be_sent() -> None:
    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.sim import SimEngine

    sched = _session([None, 10, None], [0.0, 0.0, 0.5])
    config = EngineConfig(model="llama-2-7b", kv_blocks=200, options={"record_prompts": True})
    rec = SimEngine().run(sched, config)
    synth = PromptSynthesizer(Vocab.for_model(resolve_model("llama-2-7b")), seed=0)
    expected = [prompt_digest(synth.prompt_ids(it.request)) for it in sched.items]
    assert rec.requests["prompt_digest"].tolist() == expected
    plain = SimEngine().run(sched, config.model_copy(update={"options": {}}))
    assert (plain.requests["prompt_digest"] == "").all()  # off by default: it costs time


def test_a_dataset_run_records_the_datasets_own_ids_and_skips_them_otherwise(
    monkeypatch, data_dir, tokenizer_dir
) -> None:
    """The runner hands the simulator no token ids unless it records prompts (then the
    digest is of the dataset's own ids, what a real engine is sent)."""
    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.sim import SimEngine
    from workload_eval.runner import RunSpec, execute
    from workload_eval.schedules import OfflineSchedule
    from workload_eval.workloads import load_workload

    monkeypatch.setenv("WORKLOAD_EVAL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
    config = EngineConfig(model="opt-13b", kv_blocks=200)
    assert not SimEngine().uses_token_ids(config)
    recording = config.model_copy(update={"options": {"record_prompts": True}})
    assert SimEngine().uses_token_ids(recording)
    spec = RunSpec(
        engine="sim",
        engine_config=recording,
        workload="alpaca",
        schedule=OfflineSchedule(num_requests=4),
    )
    ids = load_workload("alpaca", "opt-13b", num_requests=4)["prompt_token_ids"]
    digests = execute(spec).records.requests.sort_values("request_id")["prompt_digest"]
    assert digests.tolist() == [prompt_digest(list(i)) for i in ids]
