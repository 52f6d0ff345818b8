"""The paper's output lengths as eos models: targets from its tables, early stops from its
light-load latency (CNN/DailyMail's one-token summaries), the same rule for every workload."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workload_eval import paper
from workload_eval.paper_data import LoadedTable, PaperTables, load_paper_tables, read_table
from workload_eval.paper_eos import (
    LIGHT_LOAD,
    ONLINE,
    NoLoadLatency,
    light_load_points,
    paper_tokens,
    stop_models,
)
from workload_eval.workloads.output_models import parse_output_len_model


def _tables(offline: dict, online: dict) -> PaperTables:
    out = PaperTables()
    for experiment, data in (("offline", offline), ("online", online)):
        text = json.dumps({"model": "opt-13b", "experiment": experiment, "data": data})
        out.tables[("opt-13b", experiment)] = LoadedTable(read_table(text, "test"), "test")
    return out


OFFLINE = {
    "w": [
        {
            "kv_blocks": kv,
            "by_num_requests": {
                "100": {"request": 2.0, "token": 2.0 * t100},
                "1000": {"request": thr, "token": thr * t1000},
            },
        }
        for kv, thr, t100, t1000 in ((150, 1.0, 90.0, 100.0), (600, 4.0, 110.0, 104.0))
    ]
}
ONLINE_TABLE = {
    "w": [
        {
            "kv_blocks": kv,
            "by_request_rate": {str(r): {"avg": 0.05, "p95": 0.1} for r in rates},
        }
        for kv, rates in ((150, (0.1, 0.2)), (600, (0.3, 0.4, 0.5)))
    ]
}


def test_tokens_per_request_are_the_papers_mean_over_kv_sizes_per_n():
    tokens = paper_tokens(_tables(OFFLINE, ONLINE_TABLE), "opt-13b")["w"]
    assert tokens == {100: pytest.approx(100.0), 1000: pytest.approx(102.0), ONLINE: 102.0}


def test_an_n_the_table_lacks_takes_the_nearest_n_it_has():
    from workload_eval.paper_eos import StopModel

    sm = StopModel("m", "w", {100: 90.0, 1000: 110.0, ONLINE: 110.0}, 0.0, 1.0, None, "eos:110")
    assert sm.spec(500) == sm.spec(100) == "eos:90,prompts=stretch"
    assert sm.spec(800) == "eos:110,prompts=stretch" and sm.spec(ONLINE) == "eos:110"


def test_light_load_is_a_tenth_of_the_offline_throughput_at_that_kv_size():
    light = light_load_points(_tables(OFFLINE, ONLINE_TABLE), "opt-13b", "w")
    assert LIGHT_LOAD == 0.1
    # 150 blocks: 1.0 req/s offline -> rates <= 0.1; 600 blocks: 4.0 -> rates <= 0.4
    assert sorted(zip(light["kv_blocks"], light["rate"], strict=True)) == [
        (150, 0.1),
        (600, 0.3),
        (600, 0.4),
    ]


class _Linear:
    """A step-time model a test can do by hand: prefill a + b * tokens, decode c."""

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        return 0.01 + 0.001 * tokens

    def decode_time(self, batch_size: int, context_tokens: int) -> float:
        return 0.02


def test_no_load_latency_is_prefill_plus_decode_steps_per_token():
    latency = NoLoadLatency(_Linear(), max_context=100)
    prompts, outputs = np.array([50, 50, 10]), np.array([1, 5, 2])
    expected = [(0.01 + 0.05) / 1, (0.01 + 0.05 + 4 * 0.02) / 5, (0.01 + 0.01 + 0.02) / 2]
    assert latency(prompts, outputs) == pytest.approx(expected)


@pytest.fixture(scope="module")
def shipped_stop_models(tmp_path_factory, data_dir, tokenizer_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKLOAD_EVAL_DATA_DIR", str(data_dir))
        mp.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
        mp.setenv("WORKLOAD_EVAL_CALIBRATION_DIR", str(tmp_path_factory.mktemp("none") / "x"))
        with pytest.warns(UserWarning, match="no such folder"):
            tables = load_paper_tables()
        yield stop_models(tables, ["opt-13b", "llama-2-7b"], list(paper.WORKLOADS)), tables


def test_cnn_dailymail_gets_its_one_token_summaries_from_the_papers_latency(shipped_stop_models):
    models, tables = shipped_stop_models
    cnn = models[("opt-13b", "cnn_dailymail")]
    assert 0.1 <= cnn.early <= 0.3 and cnn.early_len <= 1.5  # a share stops at once
    light = cnn.light
    assert light is not None and light.points >= 10
    # the no-load latency of the stop model meets the paper's at light load
    assert light.model_avg == pytest.approx(light.paper_avg, rel=0.05)
    assert light.model_p95 == pytest.approx(light.paper_p95, rel=0.05)
    p95 = light_load_points(tables, "opt-13b", "cnn_dailymail")["normalized_latency_p95"]
    assert light.paper_p95 == pytest.approx(float(p95.median()))
    # the same rule elsewhere: the paper measured alpaca and dolly only near capacity
    for w in ("alpaca", "dolly"):
        assert models[("opt-13b", w)].early == 0 and models[("opt-13b", w)].light is None


def test_every_n_has_its_target_and_online_runs_get_fixed_parameters(shipped_stop_models):
    models, tables = shipped_stop_models
    tokens = paper_tokens(tables, "opt-13b")
    for (model, workload), sm in models.items():
        for n in paper.NUM_REQUESTS:
            eos = parse_output_len_model(sm.spec(n))
            assert eos.stretch and not eos.fixed
            if model == "opt-13b":
                assert eos.tokens == pytest.approx(tokens[workload][n], abs=0.05)
        online = parse_output_len_model(sm.spec(ONLINE))
        assert online.fixed  # solved once: every rate's sample gets the same stop model
    cnn = parse_output_len_model(models[("opt-13b", "cnn_dailymail")].spec(ONLINE))
    assert cnn.p is None and cnn.prompt_scale > 1  # the paper's articles were longer


def test_a_model_without_tables_borrows_the_stop_model(shipped_stop_models):
    models, _ = shipped_stop_models
    for w in paper.WORKLOADS:
        mine, theirs = models[("llama-2-7b", w)], models[("opt-13b", w)]
        assert mine.borrowed_from == "opt-13b" and mine.light is None
        assert (mine.early, mine.early_len) == (theirs.early, theirs.early_len)
        assert mine.tokens[1000] != theirs.tokens[1000]  # scaled to Llama-2's token counts
