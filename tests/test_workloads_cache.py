"""Prepared workloads are cached on disk; a changed source file is prepared again."""

from __future__ import annotations

import os
import time

from workload_eval.workloads import load_workload


def test_second_call_hits_the_cache_and_is_fast(tmp_path, monkeypatch, data_dir, tokenizer_dir):
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    kw = dict(data_dir=data_dir, tokenizer_dir=tokenizer_dir)
    t0 = time.perf_counter()
    cold = load_workload("alpaca", "llama-2-13b", **kw)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = load_workload("alpaca", "llama-2-13b", **kw)
    t_warm = time.perf_counter() - t0
    assert not cold.attrs["cached"] and warm.attrs["cached"]
    assert len(cold) == 9225  # 9,229 records; 4 have an empty output
    assert cold["prompt_len"].tolist() == warm["prompt_len"].tolist()
    # the cache is proven by `cached`; times are reported, not asserted (a busy machine)
    assert t_cold > 0 and t_warm > 0
    assert list((tmp_path / "cache" / "prepared").glob("*.parquet"))


def test_changed_file_is_prepared_again(tmp_path, monkeypatch, tokenizer_dir):
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "pairs.csv"
    f.write_text("prompt,output\nhello there,general kenobi\n")
    a = load_workload(str(f), "opt-13b", tokenizer_dir=tokenizer_dir)
    assert load_workload(str(f), "opt-13b", tokenizer_dir=tokenizer_dir).attrs["cached"]
    f.write_text("prompt,output\nhello there you,general kenobi\n")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    b = load_workload(str(f), "opt-13b", tokenizer_dir=tokenizer_dir)
    assert not b.attrs["cached"] and b["prompt_len"].iloc[0] == a["prompt_len"].iloc[0] + 1
