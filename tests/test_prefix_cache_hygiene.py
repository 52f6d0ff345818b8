"""The hit rate a workload implies (vLLM's rules) beside what engines measure, and the reset."""

from __future__ import annotations

import json

import pytest

from workload_eval.contracts import PromptSegment, Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import OpenAIEngine
from workload_eval.engines.openai.cache_hygiene import DEV_MODE_NOTE, counted
from workload_eval.engines.openai.prometheus import parse_metrics
from workload_eval.engines.sim import SimEngine
from workload_eval.prefix_reuse import Reuse, implied_reuse
from workload_eval.testing.instant_server import InstantServerProcess


def _req(rid: int, prompt: int, prefix: int = 0, group: int = 0, ids=None) -> Request:
    segs = (PromptSegment(f"prefix:{group}", prefix),) if prefix else ()
    return Request(rid, prompt, 4, prefix_segments=segs, prompt_token_ids=ids)


def test_implied_hits_follow_vllms_block_rules() -> None:
    reqs = [
        _req(0, 80, prefix=64),  # first of its group: nothing cached
        _req(1, 80, prefix=64),  # 4 full shared blocks of 16
        _req(2, 64, prefix=64),  # the whole prompt is shared: the last token is recomputed,
        #                          so at most (64 - 1) // 16 = 3 blocks
        _req(3, 80, prefix=40),  # 2 full blocks inside the shorter prefix of the same key
        _req(4, 80, prefix=64, group=1),  # another group: a miss
        _req(5, 70),  # no shared part
    ]
    r = implied_reuse(reqs, 16)
    assert r.queries == 80 + 80 + 64 + 80 + 80 + 70
    assert r.hits == 0 + 64 + 48 + 32 + 0 + 0
    assert r.rate == pytest.approx(144 / 454)


def test_token_id_prompts_are_named_by_their_ids() -> None:
    shared = list(range(200, 232))
    reqs = [
        _req(0, 0, ids=[*shared, 1, 2, 3]),
        _req(1, 0, ids=[*shared, 4, 5]),  # the first 32 ids: 2 blocks of 16
        _req(2, 0, ids=[7, *shared]),  # shifted by one: no block matches
    ]
    r = implied_reuse(reqs, 16)
    assert (r.queries, r.hits) == (35 + 34 + 33, 32)


def _shared_prefix_schedule(n: int, groups: int, prefix: int, prompt: int) -> Schedule:
    items = [
        ScheduledRequest(_req(i, prompt, prefix=prefix, group=i % groups), 0.05 * i)
        for i in range(n)
    ]
    return Schedule("constant", items)


def test_the_simulator_measures_the_implied_rate_until_its_cache_is_too_small() -> None:
    sched = _shared_prefix_schedule(40, 4, 256, 300)
    cfg = EngineConfig(
        model="opt-13b",
        kv_blocks=2000,
        max_model_len=512,
        enable_prefix_caching=True,
        options={"policy": "vllm-v1"},
    )
    big = SimEngine().run(sched, cfg).report.prefix_cache
    assert big is not None and big.reset == "fresh"
    assert big.implied_hits == 36 * 256  # every request after the first of its group
    assert (big.measured_queries, big.measured_hits) == (big.implied_queries, big.implied_hits)
    small = SimEngine().run(sched, cfg.model_copy(update={"kv_blocks": 40})).report.prefix_cache
    assert small is not None and small.implied_hit_rate == big.implied_hit_rate
    assert small.measured_hits < small.implied_hits  # evicted blocks are recomputed


def test_summary_and_table_show_measured_beside_implied(tmp_path, capsys) -> None:
    from workload_eval.cli import main

    workload = (
        "shared_prefix:num_groups=2,prompts_per_group=10,system_prompt_len=256,"
        "question_len=32,output_len=8"
    )
    args = ["run", "--model", "opt-13b", "--kv-blocks", "2000", "--policy", "vllm-v1"]
    out = tmp_path / "run"
    assert main([*args, "--enable-prefix-caching", "--workload", workload, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prefix_cache_hit_rate"] == summary["prefix_cache_hit_rate_implied"] > 0.5
    assert summary["prefix_cache_reset"] == "fresh"
    assert "Prefix hits seen / implied" in capsys.readouterr().out
    assert main([*args, "--workload", workload, "--out", str(tmp_path / "off")]) == 0
    off = json.loads((tmp_path / "off" / "summary.json").read_text())
    assert "prefix_cache_hit_rate" not in off  # no prefix caching, no such keys


def test_server_counters_are_read_under_every_versions_names() -> None:
    new = parse_metrics(
        'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0\n'
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 250.0\n'
        'vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7e9\n'
    )
    old = parse_metrics(
        'vllm:gpu_prefix_cache_queries_total{model_name="m"} 1100.0\n'
        'vllm:gpu_prefix_cache_hits_total{model_name="m"} 300.0\n'
    )
    assert (new.prefix_cache_queries, new.prefix_cache_hits) == (1000.0, 250.0)
    assert counted(new, old) == Reuse(100, 50)
    assert counted(old, new) is None  # counters went down: the server restarted
    assert counted(new, parse_metrics("vllm:num_requests_running 0\n")) is None


def test_a_server_without_the_reset_route_is_said_so_in_the_record(capsys) -> None:
    sched = _shared_prefix_schedule(6, 2, 64, 80)
    with InstantServerProcess() as srv:  # like vLLM without VLLM_SERVER_DEV_MODE: a 404
        cfg = EngineConfig(model="instant", block_size=16, options={"base_url": srv.base_url})
        rec = OpenAIEngine().run(sched, cfg)
        cache = rec.report.prefix_cache
        off = OpenAIEngine().run(
            sched, cfg.model_copy(update={"options": {**cfg.options, "reset_prefix_cache": False}})
        )
    assert (rec.requests.status == "ok").all()
    assert cache is not None and cache.reset == "refused" and cache.reset_note == DEV_MODE_NOTE
    assert cache.block_size == 32  # the server's, from vllm:cache_config_info
    assert cache.implied_hits == 4 * 64 and cache.measured_hit_rate is None  # no counters
    assert "not emptied" in capsys.readouterr().err
    assert off.report.prefix_cache is not None and off.report.prefix_cache.reset == "off"
