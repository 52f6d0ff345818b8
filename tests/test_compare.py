"""compare: ranks, ratios and rank reversals between workloads, on a constructed points
table with a known reversal, and the example spec end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from workload_eval.analysis.compare import compare, lower_is_better
from workload_eval.cli import main
from workload_eval.errors import UserError
from workload_eval.results import points

REPO = Path(__file__).resolve().parents[1]

# (system, workload) -> throughput per seed. A wins w1 clearly, B wins w2 clearly, w3 is a
# near tie (A slightly ahead in the mean, the seeds overlap).
VALUES = {
    ("A", "w1"): [10.0, 10.2, 9.8],
    ("B", "w1"): [5.0, 5.1, 4.9],
    ("A", "w2"): [2.0, 2.05, 1.95],
    ("B", "w2"): [4.0, 4.1, 3.9],
    ("A", "w3"): [3.0, 3.5, 2.5],
    ("B", "w3"): [2.9, 3.4, 2.4],
}


def _table(rates=(1.0,), seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for (system, workload), values in VALUES.items():
        for rate in rates:
            for seed in seeds:
                value = values[seed] * rate
                rows.append(
                    {
                        "key": f"{system}{workload}{rate}{seed}",
                        "config_key": f"{system}{workload}{rate}",
                        "engine": "sim",
                        "model": system,
                        "gpu": "a100-40gb",
                        "kv_blocks": {"A": 100, "B": 200}[system],  # a property of the model
                        "workload": workload,
                        "schedule": "poisson",
                        "rate": rate,
                        "seed": seed,
                        "request_throughput": value,
                        "ttft_p95": 1.0 / value,
                    }
                )
    return points(rows)


def test_ranks_ratios_and_the_known_reversal():
    comp = compare(_table(), "model", "request_throughput")
    assert comp.higher_is_better and comp.baseline == "A"
    assert comp.system_columns == ["kv_blocks"] and comp.scenario_columns == []
    v = comp.values.set_index(["workload", "system"])
    assert v.loc[("w1", "A"), "rank"] == 1 and v.loc[("w1", "B"), "rank"] == 2
    assert v.loc[("w2", "B"), "rank"] == 1
    assert v.loc[("w1", "B"), "ratio_to_baseline"] == pytest.approx(0.5)
    assert v.loc[("w2", "B"), "ratio_to_baseline"] == pytest.approx(2.0)
    assert v.loc[("w2", "A"), "ratio_to_best"] == pytest.approx(0.5)
    # the interval across three seeds: mean +- t(0.975, 2) sd / sqrt(3)
    half = 4.302652729911275 * 0.2 / 3**0.5
    assert v.loc[("w1", "A"), "ci_high"] == pytest.approx(10.0 + half)
    assert (comp.values["interval"] == "seeds").all()
    rev = comp.reversals.set_index(["a_wins_on", "b_wins_on"])["noise"].to_dict()
    # A beats B on w1 and w3, B beats A on w2: two reversals; only w1 vs w2 is clear
    assert rev == {("w1", "w2"): "beyond noise", ("w3", "w2"): "within noise"}
    assert len(comp.beyond_noise) == 1


def test_lower_is_better_metrics_flip_the_winner_and_scenarios_split():
    assert lower_is_better("ttft_p95") and lower_is_better("steady.e2e_latency_mean")
    assert not lower_is_better("request_throughput") and not lower_is_better("goodput")
    comp = compare(_table(rates=(1.0, 2.0)), "model", "ttft_p95")
    assert not comp.higher_is_better
    assert comp.scenario_columns == ["rate"] and list(comp.scenarios) == ["rate=1", "rate=2"]
    w1 = comp.values[(comp.values["workload"] == "w1") & (comp.values["scenario"] == "rate=2")]
    assert w1.set_index("system")["rank"].to_dict() == {"A": 1, "B": 2}  # lower ttft: A
    assert set(comp.reversals["scenario"]) == {"rate=1", "rate=2"}
    forced = compare(_table(), "model", "ttft_p95", higher_is_better=True)
    assert forced.values.set_index(["workload", "system"]).loc[("w1", "B"), "rank"] == 1


def test_one_seed_uses_each_runs_interval_or_says_there_is_none():
    table = _table(seeds=(0,))
    none = compare(table, "model", "request_throughput")
    assert (none.reversals["noise"] == "no interval").all()
    table["request_throughput_ci_low"] = table["request_throughput"] * 0.99
    table["request_throughput_ci_high"] = table["request_throughput"] * 1.01
    run = compare(table, "model", "request_throughput", baseline="B")
    assert (run.values["interval"] == "run").all() and run.baseline == "B"
    noise = run.reversals.set_index(["a_wins_on", "b_wins_on"])["noise"].to_dict()
    assert noise == {("w1", "w2"): "beyond noise", ("w3", "w2"): "beyond noise"}


def test_where_keeps_some_points_and_mistakes_are_one_line():
    comp = compare(_table(), "model", "request_throughput", where={"workload": "w1"})
    assert comp.workloads == ["w1"] and comp.reversals.empty and comp.where == {"workload": "w1"}
    with pytest.raises(UserError, match="--by colour: not a configuration column"):
        compare(_table(), "colour", "request_throughput")
    with pytest.raises(UserError, match="--metric speed: no such metric"):
        compare(_table(), "model", "speed")
    with pytest.raises(UserError, match="nothing to compare"):
        compare(_table(), "gpu", "request_throughput")
    with pytest.raises(UserError, match="--where nope=1: no column"):
        compare(_table(), "model", "request_throughput", where={"nope": "1"})
    with pytest.raises(UserError, match="--baseline C: not one of"):
        compare(_table(), "model", "request_throughput", baseline="C")


def test_the_example_spec_end_to_end(tmp_path, data_dir, tokenizer_dir, capsys):
    spec = tmp_path / "workload_sensitivity.yaml"
    shutil.copy(REPO / "examples" / "workload_sensitivity.yaml", spec)
    with spec.open("a") as f:  # where this machine keeps the data
        f.write(f"data_dir: {data_dir}\ntokenizer_dir: {tokenizer_dir}\n")
    out = tmp_path / "sensitivity"
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), "--by", "model"]) == 0  # default: capacity_rate
    text = capsys.readouterr().out
    assert "capacity_rate by model" in text and "rank reversals" in text
    folder = out / "compare" / "model-capacity_rate"
    values = pd.read_csv(folder / "values.csv")
    assert set(values["workload"]) == {"alpaca", "cnn_dailymail", "dolly", "sharegpt"}
    assert (values["interval"] == "search").all()  # 95% capacity intervals
    assert (folder / "compare.png").is_file() and (folder / "compare.pdf").is_file()

    args = ["compare", str(out), "--by", "model", "--metric", "request_throughput"]
    assert main([*args, "--where", "schedule=offline", "--out", str(tmp_path / "c")]) == 0
    text = capsys.readouterr().out
    doc = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert doc["where"] == {"schedule": "offline"} and doc["system_columns"] == ["kv_blocks"]
    assert {r["interval"] for r in doc["values"]} == {"seeds"}
    # the example's point: Llama-2-13B wins ShareGPT, OPT-13B wins CNN/DailyMail, clearly
    clear = {
        (r["a_wins_on"], r["b_wins_on"]) for r in doc["reversals"] if r["noise"] == "beyond noise"
    }
    assert ("sharegpt", "cnn_dailymail") in clear, text
    assert main(["compare", str(out), "--by", "colour"]) == 2
