"""Loading the study's workloads from ../shared and from the shipped profiles."""

from __future__ import annotations

import random

import numpy as np
import pytest

from workload_eval.contracts import Request
from workload_eval.workloads import load_workload, to_requests


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def test_alpaca_opt_counts_bos_on_input_and_output(data_dir, tokenizer_dir):
    df = load_workload(
        "alpaca", "opt-13b", num_requests=50, data_dir=data_dir, tokenizer_dir=tokenizer_dir
    )
    assert len(df) == 50
    assert set(df.columns) >= {"prompt_len", "output_len", "prompt_token_ids", "workload"}
    assert all(ids[0] == 2 for ids in df["prompt_token_ids"])  # OPT prepends </s>
    assert (df["prompt_len"] == df["prompt_token_ids"].map(len)).all()
    assert df.attrs["workload"] == "alpaca" and df.attrs["source"] == "local"


def test_llama_family_uses_sentencepiece_bos(data_dir, tokenizer_dir):
    df = load_workload(
        "dolly",
        "meta-llama/Llama-2-13b-hf",
        num_requests=20,
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
    )
    assert all(ids[0] == 1 for ids in df["prompt_token_ids"])
    assert df.attrs["model"] == "llama-2-13b"


def test_selection_is_first_n_then_seed_shuffle(data_dir, tokenizer_dir):
    full = load_workload(
        "alpaca",
        "opt-13b",
        num_requests=None,
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
        seed=0,
    )
    # unshuffle: the kept list in dataset order is the shipped profile order after filtering
    first = load_workload(
        "alpaca", "opt-13b", num_requests=30, data_dir=data_dir, tokenizer_dir=tokenizer_dir, seed=7
    )
    kept = load_workload("alpaca", "opt-13b", source="profile")
    assert len(kept) == len(full)
    prof = __import__("workload_eval.workloads.profiles", fromlist=["x"]).load_profile(
        "alpaca", "opt"
    )
    ok = prof[(prof.prompt_len + prof.output_len < 2048) & (prof.output_len > 1)]
    order = list(range(30))
    random.Random(7).shuffle(order)
    assert first["prompt_len"].tolist() == ok["prompt_len"].iloc[order].tolist()


def test_more_requests_than_data_repeats_the_list(data_dir, tokenizer_dir):
    df = load_workload(
        "humaneval", "opt-13b", num_requests=400, data_dir=data_dir, tokenizer_dir=tokenizer_dir
    )
    assert len(df) == 400
    assert df["prompt_len"].value_counts().max() >= 2


def test_random_sampling_differs_from_first(data_dir, tokenizer_dir):
    a = load_workload(
        "alpaca",
        "opt-13b",
        num_requests=100,
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
        sampling="random",
        seed=1,
    )
    b = load_workload(
        "alpaca",
        "opt-13b",
        num_requests=100,
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
        sampling="random",
        seed=1,
    )
    c = load_workload(
        "alpaca",
        "opt-13b",
        num_requests=100,
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
        seed=1,
    )
    assert a["prompt_len"].tolist() == b["prompt_len"].tolist()
    assert a["prompt_len"].tolist() != c["prompt_len"].tolist()


def test_length_filter_drops_long_pairs(data_dir, tokenizer_dir):
    df = load_workload(
        "cnn_dailymail",
        "opt-13b",
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
        max_model_len=512,
    )
    assert len(df) > 0 and ((df["prompt_len"] + df["output_len"]) < 512).all()


@pytest.mark.parametrize("name", ["alpaca", "dolly", "cnn_dailymail", "sharegpt", "sharegpt_chat"])
@pytest.mark.parametrize("model", ["opt-13b", "llama-2-7b"])
def test_profiles_work_with_no_data(name, model, monkeypatch):
    monkeypatch.delenv("WORKLOAD_EVAL_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from workload_eval.workloads import hub

    hub.hub_available.cache_clear()
    df = load_workload(name, model, num_requests=200)
    assert len(df) == 200 and df.attrs["source"] == "profile"
    assert (df["prompt_len"] + df["output_len"] < 2048).all()
    assert "prompt_token_ids" not in df.columns


def test_profile_selection_equals_local_selection(data_dir, tokenizer_dir):
    a = load_workload(
        "dolly", "opt-6.7b", num_requests=300, data_dir=data_dir, tokenizer_dir=tokenizer_dir
    )
    b = load_workload("dolly", "opt-6.7b", num_requests=300, source="profile")
    assert a["prompt_len"].tolist() == b["prompt_len"].tolist()
    assert a["output_len"].tolist() == b["output_len"].tolist()


def test_traces_keep_arrival_order_and_seconds(data_dir):
    az = load_workload(
        "azure_conv", "opt-13b", num_requests=100, max_model_len=100_000, data_dir=data_dir
    )
    assert az["arrival_time"].iloc[0] == 0.0
    assert np.all(np.diff(az["arrival_time"].to_numpy()) >= 0)
    mc = load_workload(
        "mooncake", "llama-2-7b", num_requests=50, max_model_len=1_000_000, data_dir=data_dir
    )
    assert mc["hash_ids"].map(len).min() >= 1
    assert mc["arrival_time"].max() < 10_000  # ms became s


def test_lengths_only_and_extra_workloads_load(data_dir, tokenizer_dir):
    ax = load_workload(
        "arxiv_summarization",
        "llama-2-13b",
        num_requests=10,
        max_model_len=100_000,
        data_dir=data_dir,
    )
    assert len(ax) == 10 and "prompt_token_ids" not in ax.columns
    lm = load_workload("lmsys_chat", "opt-13b", data_dir=data_dir, tokenizer_dir=tokenizer_dir)
    assert 0 < len(lm) <= 191


def test_chat_turns_carry_history(data_dir, tokenizer_dir):
    df = load_workload(
        "sharegpt_chat", "opt-13b", num_requests=300, max_model_len=4096, source="profile"
    )
    assert len(df) == 300
    for _, s in df.groupby("session_id"):
        assert s["turn"].tolist() == list(range(len(s)))
        p, o = s["prompt_len"].to_numpy(), s["output_len"].to_numpy()
        assert np.all(p[1:] > p[:-1] + o[:-1])  # next prompt = history + reply + new turn


def test_to_requests_keeps_token_ids(data_dir, tokenizer_dir):
    df = load_workload(
        "alpaca", "opt-13b", num_requests=5, data_dir=data_dir, tokenizer_dir=tokenizer_dir
    )
    reqs = to_requests(df)
    assert all(isinstance(r, Request) for r in reqs)
    assert [r.request_id for r in reqs] == list(range(5))
    assert reqs[0].prompt_token_ids == list(df["prompt_token_ids"].iloc[0])
    assert reqs[0].workload == "alpaca"
