"""`workload-eval validate`: corpus reading, stream rebuilding, scoring and outputs."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from validation_corpus import experiment, stage, write

from workload_eval.cli import main
from workload_eval.validation import simulate_experiment
from workload_eval.validation.corpus import CorpusError, load_experiment
from workload_eval.validation.measurement import FRONTEND, add_path
from workload_eval.validation.scenario import engine_setup, model_family, policy_for
from workload_eval.validation.streams import constant_load_offsets, shared_prefix_stream


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_validate_scores_a_corpus_and_lists_what_it_cannot_read_or_simulate(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    write(corpus, experiment("test__good"))
    write(
        corpus,
        experiment(
            "test__eagle",
            scenario__engine__speculative_decoding="eagle3",
        ),
    )
    write(corpus, experiment("test__bad", scenario__engine__max_num_seqs="many"))
    (corpus / "other-format.json").write_text(json.dumps({"format": "someone-else/2"}))
    (corpus / "README.md").write_text("not a json file: ignored")
    out = tmp_path / "out"
    # invalid files: exit 3 (EXIT_INCOMPLETE), the valid files' results written all the same
    assert main(["validate", str(corpus), "--out", str(out), "--jobs", "1"]) == 3
    captured = capsys.readouterr()
    assert "2 of 4 corpus files invalid: exit 3" in captured.err
    assert "test__bad.json: field scenario.engine.max_num_seqs" in captured.err
    assert "other-format.json: field format: expected 'workload-eval-measured/1'" in captured.err
    assert "speculative decoding (eagle3)" in captured.out
    cells = rows(out / "cells.csv")
    assert list(cells[0]) == ["id", "stage", "metric", "measured", "predicted", "error"]
    good = [c for c in cells if c["id"] == "test__good"]
    assert len(good) == 2 * 9 and all(c["predicted"] for c in good)
    for c in good:
        assert float(c["error"]) == pytest.approx(float(c["predicted"]) / float(c["measured"]) - 1)
    eagle = [c for c in cells if c["id"] == "test__eagle"]
    assert eagle and not any(c["predicted"] for c in eagle)  # listed, not silently dropped
    exps = {r["id"]: r for r in rows(out / "experiments.csv")}
    assert exps["test__good"]["simulated"] == "true"
    assert exps["test__eagle"]["simulated"] == "false"
    assert exps["test__eagle"]["reason"].startswith("not simulatable: speculative decoding")
    assert exps["test__bad"]["status"] == "invalid"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {
        "files": 4,
        "invalid": 2,
        "simulated": 1,
        "not_simulatable": 1,
        "scored_experiments": 1,
        "scored_cells": 18,
    }
    assert summary["summary"]["overall"]["cells"] == 18
    assert (out / "measured_vs_predicted.png").stat().st_size > 1000


def test_missing_corpus_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_overloaded_stages_and_other_statuses_are_not_scored(tmp_path):
    exp = experiment("test__over", status="saturated_queueing")
    exp["targets"]["stages"][1]["overloaded"] = True
    res = simulate_experiment(write(tmp_path, exp))
    assert res.simulated and res.reason == "not scored: status saturated_queueing"
    assert not any(c.scored for c in res.cells)
    res = simulate_experiment(write(tmp_path, {**exp, "id": "test__ok", "status": "ok"}))
    assert {c.stage for c in res.cells if c.scored} == {0}


def test_constant_load_timer_sends_int_rate_x_duration_requests_ending_at_the_duration():
    rng = np.random.default_rng(0)
    t = constant_load_offsets(3.7, 10.0, rng)
    assert len(t) == 37 and t[-1] == pytest.approx(10.0)
    assert (np.diff(t) > 0).all()
    assert len(constant_load_offsets(0.05, 10.0, rng)) == 0


def test_shared_prefix_prompts_cycle_round_robin_restarting_every_stage(tmp_path):
    path = write(tmp_path, experiment("test__cycle"))
    exp = load_experiment(path)
    stream = shared_prefix_stream(exp, path, max_model_len=4096, seed=0)
    items = stream.schedule.items
    assert stream.target_stage.count(0) == 20 and stream.target_stage.count(1) == 20
    assert stream.schedule.stage_gap_s == 2.0
    first = [it for it, s in zip(items, stream.target_stage, strict=True) if s == 0]
    second = [it for it, s in zip(items, stream.target_stage, strict=True) if s == 1]
    for n in range(6):  # 2 groups x 3 prompts: request n and n + 6 send the same prompt
        assert first[n].request.prefix_segments == first[n + 6].request.prefix_segments
        assert second[n].request.prefix_segments == first[n].request.prefix_segments
    systems = {it.request.prefix_segments[0] for it in first}
    assert len(systems) == 2  # one system prompt per group, shared by its 3 prompts
    lengths = [it.request.prompt_len for it in first[:6]]
    assert min(lengths) >= 165 and max(lengths) <= 171
    assert all(sum(s.length for s in it.request.prefix_segments) == it.request.prompt_len
               for it in items)  # fmt: skip


def test_next_stage_starts_after_the_previous_one_drained(tmp_path):
    path = write(tmp_path, experiment("test__drain"))
    res = simulate_experiment(path)
    assert res.simulated, res.reason
    # there is no trace here, so no observed gap; the schedule's barrier is checked on records
    from workload_eval.engines.sim import SimEngine
    from workload_eval.validation.scenario import engine_setup as setup_of

    exp = load_experiment(path)
    setup = setup_of(exp, tmp_path / "model")
    stream = shared_prefix_stream(exp, path, max_model_len=4096, seed=0)
    rec = SimEngine().run(stream.schedule, setup.config).requests
    stage_of = np.asarray(stream.target_stage)
    last_finish = rec["finish_time"][stage_of == 0].max()
    first_send = rec["arrival_time"][stage_of == 1].min()
    assert first_send >= last_finish + 2.0


def test_trace_replay_uses_recorded_sends_and_lengths_and_skips_failed_rows(tmp_path):
    exp = experiment("test__trace")
    exp["scenario"]["workload"]["trace_file"] = "traces/test__trace.csv"
    exp["targets"]["stages"] = [stage(0, 2.0, 3), stage(1, 4.0, 2)]
    exp["targets"]["stages"][0]["num_failed"] = 1
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "test__trace.csv").write_text(
        "arrival_s,prompt_len,output_len\n0.0,170,20\n0.5,166,20\n0.9,,\n1.2,168,20\n"
        "9.0,170,20\n9.3,171,20\n"
    )
    path = write(tmp_path, exp)
    stream = shared_prefix_stream(load_experiment(path), path, max_model_len=4096, seed=0)
    assert stream.target_stage == [0, 0, 0, 0, 1, 1]
    assert stream.measured_failed == [False, False, True, False, False, False]
    items = stream.schedule.items
    offsets = [it.arrival_time for it in items]
    assert offsets[1] - offsets[0] == pytest.approx(0.5)
    assert offsets[5] - offsets[4] == pytest.approx(0.3)
    assert [it.request.prompt_len for it in items[:2]] == [170, 166]
    res = simulate_experiment(path)
    assert res.stage_counts == [(3, 3), (2, 2)]  # the failed row loads the server, not the stats
    assert res.gaps and res.gaps[0].observed_s == pytest.approx(9.0 - 1.2)


def test_bad_trace_rows_are_one_line_errors(tmp_path):
    exp = experiment("test__badtrace")
    exp["scenario"]["workload"]["trace_file"] = "traces/t.csv"
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "t.csv").write_text("arrival_s,prompt_len,output_len\n0.0,12.5,20\n")
    res = simulate_experiment(write(tmp_path, exp))
    assert not res.simulated
    assert "t.csv: line 2: column prompt_len: expected an integer >= 1 or empty" in res.reason


def test_multi_turn_users_grow_their_prompt_and_wait_for_their_previous_turn(tmp_path):
    exp = experiment("test__turns", scenario__engine__max_model_len=420)
    exp["scenario"]["workload"].update(multi_turn=True, num_groups=1, prompts_per_group=2)
    exp["scenario"]["load"]["stages"] = [{"rate": 1.0, "duration_s": 8.0}]
    exp["targets"]["stages"] = [stage(0, 1.0, 8)]
    path = write(tmp_path, exp)
    stream = shared_prefix_stream(load_experiment(path), path, max_model_len=420, seed=0)
    items = stream.schedule.items
    user0 = [it for it in items if it.request.session_id == 0]
    assert [it.request.turn for it in user0] == list(range(len(user0)))
    for prev, nxt in itertools.pairwise(user0):
        assert nxt.depends_on == prev.request.request_id
        assert nxt.request.prompt_len > prev.request.prompt_len + 20  # + answer + question
        # the same keys (system prompt, the user's conversation), the conversation longer
        before, after = prev.request.prefix_segments, nxt.request.prefix_segments
        assert [s.key for s in before] == [s.key for s in after]
        grown = nxt.request.prompt_len - prev.request.prompt_len
        assert after[-1].length - before[-1].length == grown
        assert after[0] == before[0]
    # prompts + 20 output tokens beyond 420 are refused (HTTP 400), as the server does
    assert stream.rejected.get(0, 0) == 8 - len(items) > 0
    assert all(it.request.prompt_len + 20 <= 420 for it in items)
    res = simulate_experiment(path)
    assert res.simulated, res.reason


def test_peers_are_compared_on_exactly_the_cells_they_predicted(tmp_path, capsys):
    exp = experiment("test__peers")
    exp["peers"] = {
        "blis": {"stages": [{"stage": 0, "ttft_mean": 0.06, "e2e_mean": 0.5}], "units": "s"}
    }
    corpus = tmp_path / "c"
    write(corpus, exp)
    out = tmp_path / "o"
    assert main(["validate", str(corpus), "--out", str(out), "--jobs", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    peer = summary["peers"]["blis"]
    assert peer["peer"]["overall"]["cells"] == 2
    assert peer["peer"]["per_metric"]["ttft_mean"]["median_abs_pct"] == pytest.approx(100.0)
    assert peer["ours_on_the_same_cells"]["overall"]["cells"] == 2
    assert "peer blis: median |err| 75.0% over 2 cells" in capsys.readouterr().out
    assert {r["peer"] for r in rows(out / "peers.csv")} == {"blis"}


def test_measurement_points_add_the_path_outside_the_engine():
    ttft, e2e = np.array([0.1]), np.array([1.0])
    p, o = np.array([200.0]), np.array([50.0])
    t_in, e_in = add_path("engine_in_process", ttft, e2e, p, o)
    assert t_in[0] == 0.1 and e_in[0] == 1.0
    t_http, e_http = add_path("client_http", ttft, e2e, p, o)
    c = FRONTEND["client_http"]
    before = c.request_fixed_s + c.tokenize_s_per_token * 200
    assert t_http[0] == pytest.approx(0.1 + before + c.token_delivery_s)
    assert e_http[0] - t_http[0] == pytest.approx(0.9 + c.client_retokenize_s_per_token * 250)


@pytest.mark.parametrize(
    ("generation", "version", "policy"),
    [("V1", "0.15.1", "vllm-v1"), ("V0", "0.9.0", "vllm-v0"), ("V0", "0.2.7", "vllm-0.2"),
     (None, "0.6.3", "vllm-v0"), (None, "0.10.1", "vllm-v1")],
)  # fmt: skip
def test_engine_generation_and_version_choose_the_policy(generation, version, policy):
    assert policy_for(generation, version) == policy


def test_null_engine_fields_take_the_versions_defaults(tmp_path):
    exp = experiment("test__defaults")
    eng = exp["scenario"]["engine"]
    for key in ("max_num_batched_tokens", "max_num_seqs", "block_size", "num_gpu_blocks"):
        eng[key] = None
    eng["enable_prefix_caching"] = eng["enable_chunked_prefill"] = None
    setup = engine_setup(load_experiment(write(tmp_path, exp)), tmp_path)
    cfg = setup.config
    assert cfg is not None
    assert (cfg.max_num_batched_tokens, cfg.max_num_seqs, cfg.block_size) == (8192, 1024, 16)
    assert cfg.enable_prefix_caching and cfg.enable_chunked_prefill
    assert cfg.kv_blocks is None and cfg.gpu_memory_utilization == 0.9
    assert "max_num_batched_tokens" in setup.defaults_used
    eng.update(engine_generation="V0", version="0.9.0", max_model_len=512)
    cfg = engine_setup(load_experiment(write(tmp_path, exp)), tmp_path).config
    assert cfg is not None and cfg.options["policy"] == "vllm-v0"
    assert (cfg.max_num_batched_tokens, cfg.enable_prefix_caching) == (2048, False)


def test_model_families_for_the_figure():
    assert model_family("meta-llama/Llama-2-70b-hf", None) == "llama-2"
    assert model_family("meta-llama/Llama-3.1-8B-Instruct", None) == "llama-3.1"
    assert model_family("mistralai/Mixtral-8x7B-v0.1", None) == "mixtral"
    assert model_family("codellama/CodeLlama-34b-Instruct-hf", None) == "codellama"
    assert model_family("Qwen/Qwen2.5-7B-Instruct", None) == "qwen2.5"


def test_corpus_errors_name_the_file_and_the_field(tmp_path):
    exp = experiment("test__neg")
    exp["scenario"]["load"]["stages"][0]["rate"] = -1
    with pytest.raises(CorpusError, match=r"test__neg.json: field scenario.load.stages.0.rate"):
        load_experiment(write(tmp_path, exp))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CorpusError, match=r"broken.json: line 1: invalid JSON"):
        load_experiment(tmp_path / "broken.json")


def test_trace_workloads_replay_every_row_in_one_stage(tmp_path):
    exp = experiment("test__replay", status="cumulative_metrics")
    exp["scenario"]["workload"] = {
        "kind": "trace",
        "file": "traces/test__replay.csv",
        "ignore_eos": False,
        "api": "in_process",
        "streaming": None,
        "num_requests": 4,
        "sampling": "greedy",
    }
    exp["scenario"]["load"] = {
        "kind": "trace",
        "stages": [{"rate": 2.0, "duration_s": 1.5}],
        "stage_gap_s": None,
        "arrival_process": "replay",
    }
    exp["targets"]["measurement_point"] = "engine_in_process"
    exp["targets"]["stages"] = [stage(0, 2.0, 4)]
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "test__replay.csv").write_text(
        "arrival_s,prompt_len,output_len\n0.0,100,10\n0.5,200,30\n1.0,50,5\n1.5,4000,200\n"
    )
    res = simulate_experiment(write(tmp_path, exp))
    assert res.simulated, res.reason
    assert res.reason == "not scored: status cumulative_metrics"
    # the 4000 + 200 token request is over max_model_len 4096: refused, not simulated
    assert res.stage_counts == [(4, 3)]
    decode = next(c for c in res.cells if c.metric == "decode_time_per_token_mean")
    assert decode.predicted is not None and decode.predicted > 0


def test_a_missing_trace_is_listed_not_simulated(tmp_path):
    exp = experiment("test__gone", status="trace_missing")
    exp["scenario"]["workload"] = {"kind": "trace", "file": None, "num_requests": 10}
    res = simulate_experiment(write(tmp_path, exp))
    assert not res.simulated and "trace_missing" in res.reason


def test_poisson_stages_and_byte_order_marks_are_read(tmp_path):
    exp = experiment("test__poisson", scenario__load__kind="poisson")
    path = tmp_path / "test__poisson.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(exp).encode())
    res = simulate_experiment(path)
    assert res.simulated, res.reason
    sent = sum(n for _, n in res.stage_counts)
    assert 20 <= sent <= 60  # Poisson counts around 2 x 10 + 4 x 5 = 40


def test_a_folder_of_corpora_is_searched_one_level_down(tmp_path):
    write(tmp_path / "calib", experiment("test__nested"))
    from workload_eval.validation.run import discover

    assert [p.stem for p in discover(tmp_path, None)] == ["test__nested"]
