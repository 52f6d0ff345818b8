"""`reproduce`: the paper's study as a sweep spec; --quick end to end; re-running resumes."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from workload_eval import paper
from workload_eval.cli import main
from workload_eval.experiments import build_spec, expand
from workload_eval.experiments.paper_plan import (
    ANCHOR_SHARE,
    FULL,
    QUICK,
    RECORD,
    REFERENCE,
    capacity_grids,
    offline_knees,
    study_data,
)
from workload_eval.paper_data import load_paper_tables
from workload_eval.report.claims import CLAIMS, MEASURES


def _configs(tasks) -> set[tuple[str, int, str]]:
    return {
        (t.base["engine_config"]["model"], t.base["engine_config"]["kv_blocks"], t.base["workload"])
        for t in tasks
    }


def _spec(plan):
    """The study with reference outputs (no stop models: no dataset is read)."""
    tables = load_paper_tables()
    grids = capacity_grids(tables, plan, list(paper.MODELS), list(paper.WORKLOADS))
    return build_spec(study_data(plan, REFERENCE, {}, grids))


def test_full_study_is_the_papers_grid():
    points, tasks = expand(_spec(FULL))
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


def test_capacity_is_the_papers_rule_on_the_papers_grids():
    _, tasks = expand(_spec(FULL))
    assert {(t.options.rule, t.options.extend) for t in tasks} == {("seed-grid", True)}
    on = load_paper_tables().online()
    for t in tasks:
        model, kv, workload = next(iter(_configs([t])))
        grid = t.options.grid(workload, kv)
        if model == "opt-13b":  # measured: exactly the rates the paper probed
            mine = on[(on.model == model) & (on.workload == workload) & (on.kv_blocks == kv)]
            assert grid == sorted(mine["rate"])
        else:  # no table of its own: the measured model's lattice, anchored near the knee
            assert len(grid) == 2 and grid[1] > grid[0]


def test_borrowed_lattices_start_below_our_offline_throughput():
    index = pd.DataFrame(
        {
            "model": ["opt-6.7b"] * 3,
            "workload": ["alpaca"] * 3,
            "kv_blocks": [600] * 3,
            "schedule": ["offline", "offline", "poisson"],
            "num_requests": [100, 1000, None],
            "request_throughput": [20.0, 50.0, 999.0],
        }
    )
    knees = offline_knees(index)
    assert knees == {("opt-6.7b", "alpaca", 600): 50.0}  # the largest N, offline only
    tables = load_paper_tables()
    grids = capacity_grids(tables, FULL, ["opt-13b", "opt-6.7b"], ["alpaca"], knees)
    start = round(ANCHOR_SHARE * 50.0 / 0.5) * 0.5  # the paper's alpaca step is 0.5 req/s
    assert grids[("opt-6.7b", "alpaca", 600)].rates == [start, start + 0.5]
    assert "opt-13b's lattice" in grids[("opt-6.7b", "alpaca", 600)].source
    assert grids[("opt-13b", "alpaca", 600)].rates[0] == 27.0  # measured: the paper's own grid


def test_quick_study_is_smaller_but_covers_every_figure():
    points, tasks = expand(_spec(QUICK))
    full_points, full_tasks = expand(_spec(FULL))
    assert len(points) < len(full_points) / 2 and len(tasks) < len(full_tasks)
    kvs = {kv for _, kv, _ in _configs(tasks)}
    assert 643 in kvs and len(kvs) >= 2  # Figure 2 and Figure 3 both have data
    assert {m for m, _, _ in _configs(tasks)} == {
        "opt-13b",
        "llama-2-13b",
        "opt-6.7b",
        "llama-2-7b",
    }


def _reproduce(args: list[str]) -> tuple[int, str, float]:
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        rc = main(["reproduce", "--quick", "--no-progress", *args])
    return rc, out.getvalue(), time.perf_counter() - t0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, data_dir, tokenizer_dir):
    """The local datasets, as `make reproduce` uses them (never the hub, never profiles)."""
    out = tmp_path_factory.mktemp("reproduce") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKLOAD_EVAL_DATA_DIR", str(data_dir))
        mp.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
        rc, text, wall = _reproduce(["--out", str(out), "--jobs", "2"])
        yield out, rc, wall, text


def test_quick_reproduce_writes_figures_report_and_paper_table(quick_run):
    out, rc, wall, _ = quick_run
    assert rc == 0
    print(f"reproduce --quick: {wall:.1f} s")
    for name in ("spec.yaml", "index.parquet", "index.csv", "capacity.parquet", RECORD):
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
    assert set(cmp_["quantity"]) == {
        "offline throughput",
        "max rate under SLO",
        "p95 normalized latency",
    }
    assert (cmp_["ours"] > 0).all() and cmp_["error_pct"].notna().all()
    cap = pd.read_csv(report / "capacity.csv")
    assert len(cap) == 40 and set(cap["rule"]) == {"seed-grid"}
    assert (cap["max_rate"] > 0).all()
    # the paper's ordering: short-prompt workloads sustain more load than long-prompt ones
    at643 = cap[(cap["model"] == "opt-13b") & (cap["kv_blocks"] == 643)].set_index("workload")[
        "max_rate"
    ]
    assert at643["alpaca"] > at643["cnn_dailymail"] and at643["dolly"] > at643["sharegpt"]


def test_the_closing_lines_and_the_report_start_with_the_claims(quick_run):
    out, rc, _, text = quick_run
    assert rc == 0
    closing = text.split("\n\n", 1)[1]  # after the sweep line
    assert closing.startswith("THE CLAIMS")
    for claim in CLAIMS:
        assert f'"{claim.quote}"' in closing
    assert "in requests/s" in closing and "DOES NOT HOLD in tokens/s" in closing
    assert "PAPER VS OURS, PER FIGURE" in closing
    assert "Figure 3b: offline throughput (req/s), every KV size, N = 1000, opt-13b" in closing
    assert "capacities by the paper's rule" in closing
    assert "output lengths: EOS-matched" in closing
    report = out / "report"
    html = (report / "report.html").read_text()
    assert html.index('id="claims"') < html.index('id="agreement"') < html.index('id="figures"')
    checks = pd.read_csv(report / "claims.csv")
    assert list(checks["unit"]) == [m.unit for m in MEASURES]
    assert set(checks["verdict"]) <= {"holds", "holds qualitatively", "does not hold"}
    assert checks.loc[checks["unit"] == "tokens/s", "verdict"].iloc[0] == "does not hold"
    agree = pd.read_csv(report / "agreement.csv")
    assert set(agree["model"]) == {"opt-13b"} and agree["why"].str.len().min() > 20
    # every caption and table says which output lengths and which capacity rule
    assert "the paper&#39;s rule" in html and html.count("Output lengths: EOS-matched") >= 5
    for name in ("capacity.csv", "paper_comparison.csv", "claims.csv", "agreement.csv"):
        assert pd.read_csv(report / name)["output_lengths"].str.startswith("EOS-matched").all()
    per_point = pd.read_csv(report / "summary.csv")["output_lengths"]
    assert per_point.str.startswith("eos:").all()
    grids = json.loads((out / RECORD).read_text())["grids"]
    assert grids["opt-13b/alpaca/643"] == "its table"
    assert grids["llama-2-7b/alpaca/600"].endswith("from below our offline throughput")
    stops = pd.read_csv(report / "stop_models.csv")
    cnn = stops[(stops.model == "opt-13b") & (stops.workload == "cnn_dailymail")].iloc[0]
    assert cnn["early"] > 0 and cnn["light_points"] > 0


def test_reference_output_lengths_are_todays_variant(tmp_path, data_dir, tokenizer_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKLOAD_EVAL_DATA_DIR", str(data_dir))
        mp.setenv("WORKLOAD_EVAL_TOKENIZER_DIR", str(tokenizer_dir))
        rc, text, _ = _reproduce(
            ["--out", str(tmp_path), "--jobs", "2", "--output-len-model", "reference"]
        )
    assert rc == 0
    assert "output lengths: reference output lengths (ignore_eos)" in text
    report = tmp_path / "report"
    assert (pd.read_csv(report / "summary.csv")["output_lengths"] == "reference").all()
    assert not (report / "stop_models.csv").exists()
    assert "Output lengths: reference output lengths" in (report / "report.html").read_text()


def test_rerunning_reproduce_resumes_without_running_anything(quick_run):
    out, rc, _, _ = quick_run
    assert rc == 0
    rc, text, wall = _reproduce(["--out", str(out), "--jobs", "1"])
    assert rc == 0
    assert "ran 0," in text, text
    assert wall < 60
    # the stored spec is an ordinary sweep spec (YAML-strict): sweeping it re-runs nothing
    sweep_out = io.StringIO()
    with contextlib.redirect_stdout(sweep_out):
        rc = main(["sweep", str(out / "spec.yaml"), "--out", str(out), "--no-progress"])
    assert rc == 0 and "ran 0 run(s)" in sweep_out.getvalue()


def test_reproduce_rejects_a_bad_jobs_value(tmp_path: Path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--jobs", "0"]) == 2
