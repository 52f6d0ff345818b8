"""Lengths-only files and public traces as workloads; export and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workload_eval.contracts import PromptSegment
from workload_eval.errors import UserError
from workload_eval.schedules import (
    ConstantSchedule,
    SessionsSchedule,
    TraceSchedule,
    build_schedule,
)
from workload_eval.workloads import load_workload
from workload_eval.workloads.export import schedule_table, write_trace
from workload_eval.workloads.lengths_files import read_lengths_file

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRACES = SHARED / "real-gpu" / "calib" / "traces"


def _load(name, n=None, **kw):
    kw.setdefault("max_model_len", 100_000)
    return load_workload(str(name), "opt-13b", num_requests=n, **kw)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_prompt_len_output_len_file_is_a_workload(tmp_path, suffix):
    table = pd.DataFrame({"prompt_len": [5, 7, 9, 11], "output_len": [3, 2, 4, 1]})
    path = tmp_path / f"lens{suffix}"
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_parquet(path)
    df = _load(path)
    # a dataset: the seed's selection (all rows, shuffled with random.Random(0))
    pairs = sorted(zip(df.prompt_len, df.output_len, strict=True))
    assert pairs == [(5, 3), (7, 2), (9, 4), (11, 1)]
    assert df.attrs["workload"] == "lens" and "arrival_time" not in df


def test_measured_corpus_traces_load_and_failed_rows_are_left_out():
    path = TRACES / "inference-sim-training__20260217-170634-llama-2-7b-tp1-reasoning.csv"
    raw = pd.read_csv(path)
    failed = raw["prompt_len"].isna() & raw["output_len"].isna()
    assert failed.sum() == 4068
    with pytest.warns(UserWarning, match="4068 of .* rows have empty lengths"):
        df = _load(path)
    assert len(df) == len(raw) - 4068 and df.attrs["failed_rows"] == 4068
    ok = raw[~failed].reset_index(drop=True)
    # arrivals kept exactly (seconds from the first row, which succeeded)
    assert np.allclose(df["arrival_time"], ok["arrival_s"] - raw["arrival_s"].iloc[0])
    assert df["prompt_len"].tolist() == ok["prompt_len"].astype(int).tolist()
    assert set(df["output_len"]) == {1448}


def test_a_measured_experiment_file_gives_its_shared_prefix_workload():
    name = "inference-sim-training__20260217-155451-llama-2-7b-tp1-codegen.json"
    path = SHARED / "real-gpu" / "calib" / name
    df = _load(path, 300)
    assert df["prompt_len"].mean() == pytest.approx(591.63, abs=0.01)
    assert df["prompt_id"].nunique() == 100


@pytest.mark.parametrize(
    ("file", "fmt", "first"),
    [
        ("datasets/traces/AzureLLMInferenceTrace_code_2023.csv", "azure", None),
        ("datasets/traces/mooncake_conversation_trace.jsonl", "mooncake", None),
        ("datasets/extra/arxiv_summarization_lengths_llama2.csv", "vidur", (3772, 54)),
    ],
)
def test_public_trace_formats_are_read_by_their_columns(file, fmt, first):
    table = read_lengths_file(SHARED / file)
    assert table.attrs["format"] == fmt
    if first is not None:
        assert (table.prompt_len[0], table.output_len[0]) == first
    if fmt != "vidur":
        t = table["arrival_time"].to_numpy()
        assert t.min() == 0 and (np.diff(t) >= 0).all()
    if fmt == "mooncake":
        assert all(isinstance(h, list) for h in table["hash_ids"].head())


def test_azure_file_matches_the_catalog_workload():
    path = SHARED / "datasets/traces/AzureLLMInferenceTrace_conv_2023.csv"
    mine = _load(path, 300, max_model_len=2048)
    catalog = load_workload("azure_conv", "opt-13b", num_requests=300, data_dir=SHARED / "datasets")
    assert mine["prompt_len"].tolist() == catalog["prompt_len"].tolist()
    assert np.allclose(mine["arrival_time"], catalog["arrival_time"])


def test_structure_columns_become_prompt_segments(tmp_path):
    path = tmp_path / "shared.csv"
    path.write_text(
        "prompt_len,output_len,prefix_group,prefix_len,prompt_id\n"
        "10,2,a,6,p1\n10,2,a,6,p1\n12,2,a,6,p2\n"
    )
    df = _load(path, sampling="first")
    sched = build_schedule(ConstantSchedule(rate=1.0, num_requests=3), df)
    segs = {r.request.prompt_len: r.request.prefix_segments for r in sched.items}
    assert segs[12] == (PromptSegment("prefix:a", 6), PromptSegment("prompt:p2", 6))
    assert segs[10] == (PromptSegment("prefix:a", 6), PromptSegment("prompt:p1", 4))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt_len,output_len\n5,x\n", "record 0: output_len = 'x' (expected an integer"),
        ("prompt_len,output_len\n0,3\n", "record 0: prompt_len = 0 (expected an integer in 1."),
        ("prompt_len,output_len\n5,\n", "record 0: one of prompt_len/output_len is empty"),
        ("prompt_len,output_len,prefix_group\n5,3,a\n", "'prefix_group' needs a 'prefix_len'"),
        ("prompt_len,output_len,arrival_s\n5,3,soon\n", "arrival_s = 'soon' (expected seconds"),
        (
            "prompt_len,output_len,session_id,turn\n5,3,1,0\n6,3,1,1\n",
            "session 1 turn 1: prompt_len 6 is shorter than the history",
        ),
    ],
)
def test_bad_lengths_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        df = _load(path)
        build_schedule(ConstantSchedule(rate=1.0, num_requests=len(df)), df)
    assert message in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_export_writes_schedule_and_sharing_and_loads_back(tmp_path):
    df = _load("codegen_multi_turn", 60)
    sched = build_schedule(ConstantSchedule(rate=5.0, num_requests=60), df, seed=0)
    out = write_trace(sched, tmp_path / "trace.csv")
    text = out.read_text().splitlines()
    assert text[0] == (
        "arrival_s,prompt_len,output_len,session_id,turn,prefix_group,prefix_len,think_time"
    )
    back = _load(out)
    assert back["prompt_len"].tolist() == [it.request.prompt_len for it in sched.items]
    assert np.allclose(back["arrival_time"], [it.arrival_time for it in sched.items])
    replay = build_schedule(TraceSchedule(), back)
    # the same sharing (segment keys) and the same turn order (each waits for the previous)
    assert [it.request.prefix_segments for it in replay.items] == [
        it.request.prefix_segments for it in sched.items
    ]
    assert [it.depends_on for it in replay.items] == [it.depends_on for it in sched.items]


def test_export_of_sessions_keeps_think_times_for_the_replay(tmp_path):
    df = _load("sessions:turns=3,prompt_tokens=10,output_tokens=5,think_time=1.5,num_sessions=4")
    sched = build_schedule(SessionsSchedule(rate=2.0), df, seed=0)
    out = write_trace(sched, tmp_path / "s.jsonl.gz")
    back = _load(out)
    replay = build_schedule(TraceSchedule(time_scale=2.0), back)
    assert [it.think_time for it in replay.items] == [it.think_time / 2.0 for it in sched.items]
    lens = schedule_table(replay)["prompt_len"].tolist()
    assert lens == schedule_table(sched)["prompt_len"].tolist()


def test_export_refuses_other_suffixes(tmp_path):
    sched = build_schedule(ConstantSchedule(rate=1.0, num_requests=2), _load("codegen", 2))
    with pytest.raises(UserError, match=r"trace\.txt: expected a \.csv"):
        write_trace(sched, tmp_path / "trace.txt")


def test_a_trace_kind_workload_file_points_at_its_trace(tmp_path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "x.csv").write_text(
        "arrival_s,prompt_len,output_len\n0.0,10,5\n0.5,20,6\n1.5,30,7\n"
    )
    experiment = tmp_path / "x.json"
    experiment.write_text(
        '{"format": "workload-eval-measured/1", "scenario": {"workload": {"kind": "trace", '
        '"file": "traces/x.csv", "ignore_eos": false, "api": "in_process", "streaming": null, '
        '"num_requests": 3, "sampling": "temperature 0"}}}'
    )
    df = _load(experiment)
    assert df["prompt_len"].tolist() == [10, 20, 30]
    assert df["arrival_time"].tolist() == [0.0, 0.5, 1.5]
    missing = tmp_path / "m.yaml"
    missing.write_text("kind: trace\nfile: traces/none.csv\n")
    with pytest.raises(UserError, match=r"m\.yaml: file 'traces/none\.csv': no such file"):
        _load(missing)
