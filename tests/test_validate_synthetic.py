"""`validate` on synthetic scenarios of what other corpora hold (tests/data/measured).

The files cover GPUs, number formats, parallel layouts, MoE families, vLLM generations,
workload kinds, measurement points and statuses the calibration corpus does not (their
targets are estimates, not measurements: see each file's notes). Every file must be read,
every expressible one simulated, and the simulated decode time per token must lie between
the memory-bandwidth floor (the weights one GPU must read per step at batch 1, from public
model sizes and datasheet bandwidths) and a generous ceiling (every weight of the GPU read
at half the bandwidth, plus 40 ms for KV reads, collectives and the CPU).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from workload_eval.cli import main

CORPUS = Path(__file__).parent / "data" / "measured"

# id -> (GB read per GPU per decode step at batch 1 (active weights), GB of all weights per
# GPU, HBM TB/s). Model sizes: the checkpoints' published parameter counts x bytes per
# weight (fp8 1, mxfp4 ~0.53, 16-bit 2) / GPUs sharing them; bandwidths: NVIDIA/AMD datasheets.
BOUNDS = {
    "a100-80gb-llama-3.1-8b-v1-null-fields": (15.0, 16.1, 2.039),
    "l40s-qwen2.5-7b-fp8-kvfp8-prometheus": (7.0, 8.7, 0.864),
    "h200-llama-3.1-70b-fp8-tp8-trace-in-process": (8.0, 9.5, 4.8),
    "b200-llama-3.3-70b-tp2-multi-turn": (65.0, 70.6, 8.0),
    "mi300x-mixtral-8x7b-tp1": (25.0, 93.4, 5.3),
    "h100-qwen3-30b-a3b-moe": (6.0, 61.1, 3.35),
    "h100-deepseek-v2-lite-mla": (4.5, 31.4, 3.35),
    "h100-pcie-gpt-oss-20b-mxfp4": (1.5, 13.8, 2.0),
    "a100-80gb-llama-2-13b-v0-cumulative": (25.0, 26.0, 2.039),
    "rtx-4090-llama-3.2-3b-v1": (6.0, 7.2, 1.008),
    "rtx-pro-6000-qwen3-32b-fp8": (30.0, 33.5, 1.792),
    "h100-llama4-scout-tp4-ep-text-config": (8.0, 54.5, 3.35),
    "h100-mixtral-8x22b-tp8-v0-overloaded": (9.0, 35.3, 3.35),
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_validate_reads_and_simulates_every_synthetic_scenario(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["validate", str(CORPUS), "--out", str(out), "--jobs", "2"]) == 0
    capsys.readouterr()
    experiments = {r["id"].removeprefix("synthetic__"): r for r in rows(out / "experiments.csv")}
    assert len(experiments) == len(list(CORPUS.glob("*.json")))
    assert not [r for r in experiments.values() if r["status"] == "invalid"]
    simulated = {k for k, r in experiments.items() if r["simulated"] == "true"}
    assert simulated == set(BOUNDS), {k: r["reason"] for k, r in experiments.items()}
    assert "trace_missing" in experiments["trace-missing"]["reason"]

    cells = [r for r in rows(out / "cells.csv") if r["predicted"]]
    by = {(r["id"].removeprefix("synthetic__"), int(r["stage"]), r["metric"]): r for r in cells}
    for (exp, k, metric), r in by.items():
        predicted = float(r["predicted"])
        assert predicted > 0, (exp, k, metric)
        if metric == "decode_time_per_token_mean":
            active, total, tbps = BOUNDS[exp]
            floor, ceiling = active / tbps * 1e-3, total / (0.5 * tbps) * 1e-3 + 0.04
            overloaded = exp.endswith("overloaded") and k == 2
            assert floor <= predicted, (exp, k, predicted, floor)
            assert overloaded or predicted <= ceiling, (exp, k, predicted, ceiling)
        if metric == "ttft_mean":
            assert predicted < float(by[(exp, k, "e2e_mean")]["predicted"]), (exp, k)
    # scored: status ok, stages not overloaded (12 files; the V0 file's third stage is not)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["scored_experiments"] == len(BOUNDS) - 1
    assert summary["per_experiment"]["synthetic__a100-80gb-llama-2-13b-v0-cumulative"]["cells"] == 0
    assert (
        summary["per_experiment"]["synthetic__h100-mixtral-8x22b-tp8-v0-overloaded"]["cells"] == 18
    )
