"""Selection rules on small hand-made tables: filter, repeat, shuffle, traces, sessions."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from workload_eval.errors import UserError
from workload_eval.workloads import hub, load_workload
from workload_eval.workloads.selection import (
    Sampling,
    Selection,
    mixed_first,
    select_pairs,
    select_sessions,
    select_trace,
)

KW = dict(max_model_len=100, seed=0, min_output_len=1, where="t")


def rule(num_requests: int | None, sampling: Sampling) -> Selection:
    return Selection(num_requests=num_requests, sampling=sampling, **KW)


def test_pairs_filter_repeat_then_shuffle_like_the_seed():
    df = pd.DataFrame({"prompt_len": [10, 90, 20, 30], "output_len": [5, 20, 1, 7]})
    out = select_pairs(df, rule(5, "first"))
    kept = [10, 30]  # 90+20 too long, output 1 = BOS only
    data = (kept * 3)[:5]
    random.seed(0)
    random.shuffle(data)
    assert out["prompt_len"].tolist() == data


def test_pairs_empty_selection_is_a_user_error():
    df = pd.DataFrame({"prompt_len": [99], "output_len": [5]})
    with pytest.raises(UserError, match="no request left"):
        select_pairs(df, rule(3, "first"))


def test_trace_repeat_shifts_arrivals_and_keeps_order():
    df = pd.DataFrame(
        {"prompt_len": [1, 2, 3], "output_len": [5, 5, 5], "arrival_time": [0.0, 1.0, 2.0]}
    )
    out = select_trace(df, rule(7, "first"))
    assert out["arrival_time"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    rnd = select_trace(df, rule(2, "random"))
    assert np.all(np.diff(rnd["arrival_time"].to_numpy()) >= 0)


def test_sessions_cut_at_first_bad_turn_and_stay_ordered():
    df = pd.DataFrame(
        {
            "session_id": [0, 0, 0, 1, 1],
            "turn": [0, 1, 2, 0, 1],
            "prompt_len": [10, 40, 95, 5, 20],
            "output_len": [20, 30, 10, 5, 5],
        }
    )
    out = select_sessions(df, rule(None, "first"))
    assert len(out) == 4  # session 0 loses turn 2 (95 + 10 >= 100)
    for _, s in out.groupby("session_id"):
        assert s["turn"].tolist() == list(range(len(s)))
    more = select_sessions(df, rule(9, "random"))
    assert len(more) == 9 and more["session_id"].nunique() >= 4


def test_hub_source_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_available.cache_clear()
    try:
        with pytest.raises(UserError, match="hub is not reachable"):
            load_workload("alpaca", "opt-13b", source="hub")
        with pytest.raises(UserError, match="has no hub dataset"):
            load_workload("azure_conv", "opt-13b", source="hub")
    finally:
        hub.hub_available.cache_clear()


MIX = (("a", 6), ("b", 3), ("c", 1))


def test_category_mix_interleaves_in_proportion_and_file_order():
    cats = np.array(["b"] * 8 + ["a"] * 30 + ["c"] * 2)
    first = mixed_first(cats, MIX, 40)
    picked = cats[first]
    for n in range(1, 41):  # every prefix holds each category within one of its share
        for c, w in MIX:
            assert abs((picked[:n] == c).sum() - n * w / 10) <= 1.0
    a_rows = first[picked == "a"]
    assert a_rows.tolist() == list(range(8, 32))  # a category's rows in file order
    c_rows = first[picked == "c"]
    assert c_rows.tolist() == [38, 39, 38, 39]  # a short category starts over, as the seed
    # a longer selection starts with the shorter one: N = 100 is inside N = 1000
    assert mixed_first(cats, MIX, 400)[:40].tolist() == first.tolist()


def test_category_mix_selection_then_shuffle_and_random_weights():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "prompt_len": rng.integers(2, 40, 300),
            "output_len": rng.integers(2, 40, 300),
            "category": ["a"] * 250 + ["b"] * 40 + ["c"] * 10,
        }
    )
    out = select_pairs(df, rule(200, "first"), category_mix=MIX)
    assert "category" not in out.columns and len(out) == 200
    order = mixed_first(df["category"].to_numpy(), MIX, 200).tolist()
    random.Random(0).shuffle(order)
    assert out["prompt_len"].tolist() == df["prompt_len"].to_numpy()[order].tolist()
    rnd = select_pairs(df.assign(row=np.arange(300)), rule(2000, "random"), category_mix=MIX)
    drawn = df["category"].to_numpy()[rnd["row"].to_numpy()]
    # weighted draws: "c" (10 of 300 rows) comes at its share of the mix
    assert abs((drawn == "c").mean() - 0.1) < 0.03 and abs((drawn == "a").mean() - 0.6) < 0.04
    plain = select_pairs(df.drop(columns="category"), rule(200, "first"))
    assert plain["prompt_len"].tolist() != out["prompt_len"].tolist()


def test_category_mix_warns_about_categories_it_does_not_name():
    df = pd.DataFrame({"prompt_len": [5] * 4, "output_len": [5] * 4, "category": list("abde")})
    with pytest.warns(UserWarning, match=r"\['d', 'e'\] are not in the mix"):
        out = select_pairs(df, rule(6, "first"), category_mix=MIX)
    assert len(out) == 6
    with pytest.raises(UserError, match="none of its categories"):
        select_pairs(df[2:], rule(2, "first"), category_mix=MIX)


def test_dolly_loads_in_dolly_15k_proportions(data_dir, tokenizer_dir):
    """Our Dolly copy holds closed_qa (long contexts) 2.5x rarer than dolly-15k: the first
    1,000 requests get it at its dolly-15k share, locally and from the shipped profile."""
    from workload_eval.workloads.catalog import DOLLY_QA_COUNTS

    df = load_workload(
        "dolly", "opt-13b", num_requests=1000, data_dir=data_dir, tokenizer_dir=tokenizer_dir
    )
    share = dict(DOLLY_QA_COUNTS)["closed_qa"] / sum(dict(DOLLY_QA_COUNTS).values())
    # closed_qa carries the context passages: 86% of its prompts are over 64 tokens, against
    # under 1% of the other two; the unmixed copy would give 8% such prompts
    long_prompts = (df["prompt_len"] > 64).mean()
    assert 0.8 * share < long_prompts < share + 0.02
    prof = load_workload("dolly", "opt-13b", num_requests=1000, source="profile")
    assert prof["prompt_len"].tolist() == df["prompt_len"].tolist()
