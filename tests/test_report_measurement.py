"""The report's measurement sections on a small sweep: time slices at capacity with the
steady window, intervals across seeds, and the workload-sensitivity comparison."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workload_eval.experiments import load_spec, run_sweep
from workload_eval.report import build_report

SPEC = """
name: measure
models: [opt-13b, llama-2-13b]
kv_blocks: [300]
workloads: [alpaca, sharegpt]
schedules:
  - {kind: offline, num_requests: 100}
  - {kind: poisson, duration: 60, rate: [2]}
seeds: [0, 1]
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory, data_dir, tokenizer_dir) -> Path:
    root = tmp_path_factory.mktemp("measure")
    spec = root / "spec.yaml"
    spec.write_text(f"data_dir: {data_dir}\ntokenizer_dir: {tokenizer_dir}\n{SPEC}")
    out = root / "results"
    result = run_sweep(load_spec(spec), out)
    assert not result.failed and len(result.seeds) == 8  # 2 models x 2 workloads x 2 schedules
    return out


def test_sweep_writes_seed_intervals_and_points_carry_slices(results: Path):
    seeds = pd.read_csv(results / "seeds.csv")
    assert (seeds["num_seeds"] == 2).all() and set(seeds["seeds"]) == {"0,1"}
    for m in ("request_throughput", "normalized_latency_p95"):
        assert (seeds[f"{m}_seed_ci_low"] <= seeds[m]).all()
        assert (seeds[m] <= seeds[f"{m}_seed_ci_high"]).all()
    index = pd.read_csv(results / "index.csv")
    assert index["config_key"].nunique() == len(index) // 2  # one per configuration
    some = results / "points" / index["key"].iloc[0]
    assert (some / "slices.parquet").is_file()
    assert {"steady.reached", "slices.count", "ttft_p95_ci_high"} <= set(index.columns)


def test_report_has_the_measurement_sections(results: Path, tmp_path: Path):
    report = build_report(results, tmp_path / "report", slice_seconds=5.0)
    names = {p.name for f in report.figures for p in f.paths}
    assert {"time_slices.png", "workload_sensitivity.png"} <= names
    html = report.html.read_text()
    assert '<h2 id="seeds">Across seeds</h2>' in html
    assert 'id="reversals">Rank reversals by model (request_throughput)' in html
    values = pd.read_csv(tmp_path / "report" / "compare_values.csv")
    assert set(values["system"]) == {"opt-13b", "llama-2-13b"}
    assert (values["interval"] == "seeds").all()  # two seeds each: the t interval
    assert (tmp_path / "report" / "seeds.csv").is_file()
    assert "steady.normalized_latency_p95" in html  # a column of the points table on the page
