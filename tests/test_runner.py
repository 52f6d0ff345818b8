import importlib
import importlib.util
import json
import math

import pandas as pd
import pytest

from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, EngineReport, RunRecords
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai.report import OpenAIReport
from workload_eval.engines.sim.report import SimReport
from workload_eval.errors import UserError
from workload_eval.metrics import summarize
from workload_eval.runner import RunConfig, RunResult, RunSpec, execute, load_run, save_run
from workload_eval.schedules import (
    GammaSchedule,
    OfflineSchedule,
    PoissonExpSchedule,
    PoissonSchedule,
    SessionsSchedule,
    arrival_times,
)


def _has_sim() -> bool:
    if importlib.util.find_spec("workload_eval.engines.sim") is None:
        return False
    return hasattr(importlib.import_module("workload_eval.engines.sim"), "SimEngine")


HAS_SIM = _has_sim()
needs_sim = pytest.mark.skipif(not HAS_SIM, reason="simulator engine not in the tree yet")

SEED_WORKLOADS = ("alpaca", "dolly", "cnn_dailymail", "sharegpt", "sharegpt_chat")


def _hand_result() -> RunResult:
    req = pd.DataFrame(
        [
            {
                "request_id": 0,
                "workload": "w",
                "session_id": None,
                "turn": 0,
                "arrival_time": 0.0,
                "send_time": 0.0,
                "first_token_time": 0.5,
                "finish_time": 2.0,
                "prompt_tokens": 10,
                "generated_tokens": 4,
                "expected_output_tokens": 4,
                "num_preemptions": 0,
                "status": "ok",
                "error": "",
                "token_times": [0.5, 1.0, 1.5, 2.0],
            },
            {
                "request_id": 1,
                "workload": "w",
                "session_id": 3,
                "turn": 1,
                "arrival_time": 1.0,
                "send_time": 1.0,
                "first_token_time": math.nan,
                "finish_time": math.nan,
                "prompt_tokens": 9000,
                "generated_tokens": 0,
                "expected_output_tokens": 4,
                "num_preemptions": 0,
                "status": "ignored",
                "error": "prompt too long",
                "token_times": [],
            },
        ],
        columns=list(REQUEST_COLUMNS),
    )
    steps = pd.DataFrame(
        [[0.0, 0.5, "prefill", 10, 1, 0, 0, 1, 100, 10, 16, 1]], columns=list(STEP_COLUMNS)
    )
    records = RunRecords(requests=req, steps=steps, report=EngineReport(engine="hand"))
    spec = RunSpec(engine="hand", engine_config=EngineConfig(model="m"), workload="w")
    config = RunConfig(spec=spec, resolved=records.report)
    return RunResult(records, {**summarize(records), "config": config.model_dump(mode="json")})


def test_save_and_load_round_trip(tmp_path):
    result = _hand_result()
    save_run(result, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["requests.parquet", "steps.parquet", "summary.json"]
    back = load_run(tmp_path / "run")
    assert back.summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert back.summary["num_completed"] == 1 and back.summary["num_failed"] == 1
    assert list(back.records.requests.columns) == list(REQUEST_COLUMNS)
    assert list(back.records.requests["token_times"].iloc[0]) == [0.5, 1.0, 1.5, 2.0]
    assert back.records.steps["kind"].tolist() == ["prefill"]
    assert back.records.report == EngineReport(engine="hand")
    assert back.config.spec.workload == "w"


def test_save_adds_missing_contract_columns(tmp_path):
    result = _hand_result()
    result.records.steps = pd.DataFrame({"time": [0.0], "kind": ["decode"]})
    save_run(result, tmp_path)
    steps = pd.read_parquet(tmp_path / "steps.parquet")
    assert list(steps.columns) == list(STEP_COLUMNS)


def test_load_run_names_the_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"summary\.json: not found"):
        load_run(tmp_path)
    save_run(_hand_result(), tmp_path)
    (tmp_path / "steps.parquet").unlink()
    with pytest.raises(UserError, match=r"steps\.parquet: not found"):
        load_run(tmp_path)


def test_run_spec_round_trips_through_json_with_the_schedule_kind():
    spec = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=643),
        workload="alpaca",
        schedule=GammaSchedule(rate=3, duration=60, burstiness=0.5),
        seed=2,
        slo={"ttft": 1.0},
    )
    back = RunSpec.model_validate_json(spec.model_dump_json())
    assert back == spec and isinstance(back.schedule, GammaSchedule)
    from_dict = RunSpec.model_validate(
        {
            "engine_config": {"model": "opt-13b", "kv_blocks": 10},
            "workload": "dolly",
            "schedule": {"kind": "poisson", "rate": 2, "duration": 5},
        }
    )
    assert isinstance(from_dict.schedule, PoissonSchedule)
    assert isinstance(
        RunSpec(engine_config=EngineConfig(model="x"), workload="w").schedule, OfflineSchedule
    )


def test_run_spec_rejects_unknown_slo_keys():
    with pytest.raises(ValueError, match="unknown metric 'foo'"):
        RunSpec(engine_config=EngineConfig(model="opt-13b"), workload="alpaca", slo={"foo": 1})


def test_unknown_engine_fails_before_loading_anything():
    spec = RunSpec(
        engine="nope", engine_config=EngineConfig(model="opt-13b", kv_blocks=10), workload="alpaca"
    )
    with pytest.raises(UserError, match="unknown engine 'nope'"):
        execute(spec)


@needs_sim
@pytest.mark.parametrize("workload", SEED_WORKLOADS)
def test_sim_offline_runs_every_seed_workload(workload, data_dir, tokenizer_dir, tmp_path):
    spec = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=643),
        workload=workload,
        schedule=OfflineSchedule(num_requests=40),
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
    )
    result = execute(spec)
    s = result.summary
    assert s["num_requests"] == 40
    assert s["num_completed"] + s["num_failed"] == 40
    assert s["num_completed"] > 0 and s["request_throughput"] > 0
    assert s["token_throughput"] > s["output_token_throughput"] > 0
    assert s["config"]["spec"]["workload"] == workload
    assert s["config"]["resolved"]["kv_blocks"] == 643
    assert (result.records.requests["arrival_time"] == 0).all()
    save_run(result, tmp_path)
    assert load_run(tmp_path).summary == json.loads((tmp_path / "summary.json").read_text())


@needs_sim
def test_a_stored_run_re_executes_to_the_identical_summary(data_dir, tokenizer_dir, tmp_path):
    """The stored record reproduces the run: its spec alone, executed again, gives the same
    summary (the spec keeps the tokenizer as given, not its family)."""
    spec = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=300, options={"policy": "vllm-v1"}),
        workload="sharegpt_chat",
        schedule=SessionsSchedule(rate=2, num_requests=60, think_time=1.0),
        seed=3,
        tokenizer="llama-2-7b",
        slo={"ttft": 0.5},
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
    )
    save_run(execute(spec), tmp_path / "run")
    stored = load_run(tmp_path / "run")
    assert stored.config.spec.tokenizer == "llama-2-7b"  # not the family "llama-2"
    assert stored.config.resolved.workload.tokenizer == "llama-2"
    assert isinstance(stored.records.report, SimReport)
    assert stored.records.report.options.policy == "vllm-v1"
    again = execute(RunSpec.model_validate_json(stored.config.spec.model_dump_json()))
    assert again.summary == stored.summary
    assert again.summary["num_completed"] > 0


def test_an_old_or_foreign_summary_is_a_one_line_error(tmp_path):
    save_run(_hand_result(), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["config"] = {"engine": "sim", "model": "opt-13b"}  # the pre-record shape
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match=r"summary\.json: config\.spec: Field required"):
        load_run(tmp_path)


@needs_sim
def test_sim_online_poisson_uses_one_request_per_arrival(data_dir, tokenizer_dir):
    spec = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=643),
        workload="alpaca",
        schedule=PoissonSchedule(rate=5, duration=10),
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
    )
    result = execute(spec)
    from workload_eval.schedules import arrival_times

    expected = arrival_times(spec.schedule, 0)
    req = result.records.requests.sort_values("request_id")
    assert len(req) == len(expected) == result.summary["num_requests"]
    assert sorted(req["arrival_time"].tolist()) == pytest.approx(expected.tolist())
    assert result.summary["ttft_mean"] > 0 and result.summary["normalized_latency_p95"] > 0
    again = execute(spec)  # same spec and seed: same numbers
    assert again.summary["e2e_latency_mean"] == result.summary["e2e_latency_mean"]


@pytest.fixture(scope="module")
def instant_server():
    from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

    with InstantServerProcess(FaultConfig(token_interval=0.0005)) as srv:
        yield srv


def test_openai_engine_end_to_end_streams_token_times_into_itl(
    instant_server, data_dir, tokenizer_dir
):
    spec = RunSpec(
        engine="openai",
        workload="alpaca",
        engine_config=EngineConfig(model="opt-13b", options={"base_url": instant_server.base_url}),
        schedule=PoissonExpSchedule(rate=50, num_requests=20),
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
        slo={"ttft": 5.0},
    )
    result = execute(spec)
    s = result.summary
    assert s["num_requests"] == s["num_completed"] == 20
    tt = [t for t in result.records.requests["token_times"] if len(t) > 1]
    span = sum(t[-1] - t[0] for t in tt)  # pooled gaps add up to each stream's span
    assert s["itl_mean"] == pytest.approx(span / sum(len(t) - 1 for t in tt))
    assert s["itl_mean"] > 0 and s["itl_p99"] >= s["itl_p50"] >= 0
    assert s["goodput"] > 0 and s["slo_attainment"] == 1.0
    spec_back, resolved = result.config.spec, result.config.resolved
    assert spec_back == spec and spec_back.schedule.kind == "poisson-exp"
    assert isinstance(resolved, OpenAIReport) and resolved.loadgen.sent == 20
    assert not result.interrupted
    expected = arrival_times(spec.schedule, 0)
    got = result.records.requests.sort_values("request_id")["arrival_time"].to_numpy()
    assert got.tolist() == pytest.approx(expected.tolist())


def test_openai_engine_replays_chat_sessions(instant_server, data_dir, tokenizer_dir):
    spec = RunSpec(
        engine="openai",
        workload="sharegpt_chat",
        engine_config=EngineConfig(
            model="opt-13b", options={"base_url": instant_server.base_url, "endpoint": "chat"}
        ),
        schedule=SessionsSchedule(rate=20, num_requests=12, think_time=0.05),
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
    )
    result = execute(spec)
    req = result.records.requests
    assert result.summary["num_completed"] == 12
    for _, turns in req.groupby("session_id"):
        turns = turns.sort_values("turn")
        prev_finish = turns["finish_time"].to_numpy()[:-1]
        # a later turn is sent only after the previous reply plus the think time
        assert (turns["send_time"].to_numpy()[1:] >= prev_finish + 0.05 - 1e-6).all()


@needs_sim
def test_run_files_are_what_save_run_writes_and_read_back_as_pandas_wrote_them(
    data_dir, tokenizer_dir, tmp_path
):
    """The one rendering of a run's files: save_run writes exactly these bytes, and every
    table reads back to the frame DataFrame.to_parquet stored before (dtypes included: the
    text columns, the nullable session_id, the steps' categorical kind)."""
    import io

    from workload_eval.runner import _table, run_files

    spec = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=300),
        workload="sharegpt_chat",
        schedule=SessionsSchedule(rate=2, num_requests=40, think_time=1.0),
        data_dir=str(data_dir),
        tokenizer_dir=str(tokenizer_dir),
    )
    result = execute(spec)
    files = run_files(result)
    assert list(files) == ["requests.parquet", "steps.parquet", "slices.parquet", "summary.json"]
    save_run(result, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    tables = {
        "requests.parquet": _table(result.records.requests, REQUEST_COLUMNS),
        "steps.parquet": _table(result.records.steps, STEP_COLUMNS),
        "slices.parquet": result.slices,
    }
    for name, df in tables.items():
        before = pd.read_parquet(io.BytesIO(df.to_parquet(index=False)))
        pd.testing.assert_frame_equal(
            pd.read_parquet(io.BytesIO(files[name])), before, check_exact=True
        )
    requests = pd.read_parquet(io.BytesIO(files["requests.parquet"]))
    assert str(requests["session_id"].dtype) == "Int64"
    assert requests["session_id"].notna().all() and requests["turn"].max() > 1
    assert isinstance(
        pd.read_parquet(io.BytesIO(files["steps.parquet"]))["kind"].dtype, pd.CategoricalDtype
    )
    assert json.loads(files["summary.json"]) == load_run(tmp_path).summary
