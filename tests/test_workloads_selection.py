"""Selection rules on small hand-made tables: filter, repeat, shuffle, traces, sessions."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from workload_eval.errors import UserError
from workload_eval.workloads import hub, load_workload
from workload_eval.workloads.selection import select_pairs, select_sessions, select_trace

KW = dict(max_model_len=100, seed=0, min_output_len=1, where="t")


def test_pairs_filter_repeat_then_shuffle_like_the_seed():
    df = pd.DataFrame({"prompt_len": [10, 90, 20, 30], "output_len": [5, 20, 1, 7]})
    out = select_pairs(df, num_requests=5, sampling="first", **KW)
    kept = [10, 30]  # 90+20 too long, output 1 = BOS only
    data = (kept * 3)[:5]
    random.seed(0)
    random.shuffle(data)
    assert out["prompt_len"].tolist() == data


def test_pairs_empty_selection_is_a_user_error():
    df = pd.DataFrame({"prompt_len": [99], "output_len": [5]})
    with pytest.raises(UserError, match="no request left"):
        select_pairs(df, num_requests=3, sampling="first", **KW)


def test_trace_repeat_shifts_arrivals_and_keeps_order():
    df = pd.DataFrame(
        {"prompt_len": [1, 2, 3], "output_len": [5, 5, 5], "arrival_time": [0.0, 1.0, 2.0]}
    )
    out = select_trace(df, num_requests=7, sampling="first", **KW)
    assert out["arrival_time"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    rnd = select_trace(df, num_requests=2, sampling="random", **KW)
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
    out = select_sessions(df, num_requests=None, sampling="first", **KW)
    assert len(out) == 4  # session 0 loses turn 2 (95 + 10 >= 100)
    for _, s in out.groupby("session_id"):
        assert s["turn"].tolist() == list(range(len(s)))
    more = select_sessions(df, num_requests=9, sampling="random", **KW)
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
