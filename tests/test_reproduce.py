"""`reproduce`: the paper's study as a sweep spec; --quick end to end; re-running resumes."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.cli import main
from workload_eval.experiments import build_spec, expand
from workload_eval.experiments.study import FULL, QUICK, study_data


def _configs(tasks) -> set[tuple[str, int, str]]:
    return {
        (t.base["engine_config"]["model"], t.base["engine_config"]["kv_blocks"], t.base["workload"])
        for t in tasks
    }


def test_full_study_is_the_papers_grid():
    points, tasks = expand(build_spec(study_data(FULL)))
    configs = _configs(tasks)
    big = {(m, kv) for m in ("opt-13b", "llama-2-13b") for kv in (150, 300, 450, 600, 643)}
    small = {(m, kv) for m in ("opt-6.7b", "llama-2-7b") for kv in (150, 300, 450, 600)}
    workloads = {"alpaca", "cnn_dailymail", "dolly", "sharegpt"}
    assert configs == {(m, kv, w) for m, kv in big | small for w in workloads}
    assert len(tasks) == 72 and len(points) == 72 * 3
    assert {p.spec.schedule.num_requests for p in points} == {100, 500, 1000}
    t = tasks[0]
    assert t.base["schedule"] == {"kind": "poisson", "duration": 600.0}
    assert [str(s) for s in t.slos] == ["normalized_latency_p95<=0.1875"]
    ec = points[0].spec.engine_config  # the seed's engine settings
    assert (
        ec.block_size,
        ec.max_num_batched_tokens,
        ec.max_num_seqs,
        ec.max_model_len,
        ec.options,
    ) == (16, 2560, 2048, 2048, {"gpu": "a100-40gb"})


def test_quick_study_is_smaller_but_covers_every_figure():
    points, tasks = expand(build_spec(study_data(QUICK)))
    full_points, full_tasks = expand(build_spec(study_data(FULL)))
    assert len(points) < len(full_points) / 2 and len(tasks) < len(full_tasks)
    kvs = {kv for _, kv, _ in _configs(tasks)}
    assert 643 in kvs and len(kvs) >= 2  # Figure 2 and Figure 3 both have data
    assert {m for m, _, _ in _configs(tasks)} == {
        "opt-13b",
        "llama-2-13b",
        "opt-6.7b",
        "llama-2-7b",
    }


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, data_dir, tokenizer_dir):
    """The local datasets, as `make reproduce` uses them (never the hub, never profiles)."""
    out = tmp_path_factory.mktemp("reproduce") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKLOAD_EVAL_DATA_DIR", str(data_dir))
        mp.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
        t0 = time.perf_counter()
        rc = main(["reproduce", "--quick", "--out", str(out), "--jobs", "2", "--no-progress"])
        wall = time.perf_counter() - t0
        yield out, rc, wall, mp


def test_quick_reproduce_writes_figures_report_and_paper_table(quick_run):
    out, rc, wall, _ = quick_run
    assert rc == 0
    print(f"reproduce --quick: {wall:.1f} s")
    for name in ("spec.yaml", "index.parquet", "index.csv", "capacity.parquet"):
        assert (out / name).is_file(), name
    report = out / "report"
    figs = {p.stem for p in (report / "figures").glob("*.png")}
    assert {
        "figure1_lengths",
        "figure2a_capacity",
        "figure2b_throughput",
        "figure3a_capacity_vs_kv",
        "figure3b_throughput_vs_kv",
        "latency_vs_rate",
        "ttft_vs_rate",
        "run_timelines",
        "paper_vs_ours",
    } <= figs
    assert {p.stem for p in (report / "figures").glob("*.pdf")} == figs
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figs)
    cmp_ = pd.read_csv(report / "paper_comparison.csv")
    assert set(cmp_["quantity"]) == {"offline throughput", "max rate under SLO"}
    assert (cmp_["ours"] > 0).all() and cmp_["error_pct"].notna().all()
    cap = pd.read_csv(report / "capacity.csv")
    assert len(cap) == len(expand(build_spec(study_data(QUICK)))[1])
    assert (cap["max_rate"] > 0).all()
    # the paper's ordering: short-prompt workloads sustain more load than long-prompt ones
    at643 = cap[(cap["model"] == "opt-13b") & (cap["kv_blocks"] == 643)].set_index("workload")[
        "max_rate"
    ]
    assert at643["alpaca"] > at643["cnn_dailymail"] and at643["dolly"] > at643["sharegpt"]


def test_rerunning_reproduce_resumes_without_running_anything(quick_run, capsys):
    out, rc, _, _ = quick_run
    assert rc == 0
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["reproduce", "--quick", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "ran 0," in text, text
    assert time.perf_counter() - t0 < 60


def test_reproduce_rejects_a_bad_jobs_value(tmp_path: Path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--jobs", "0"]) == 2
