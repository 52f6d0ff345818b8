"""The `workloads` subcommands: list, describe --json, plot; custom files with a mapping."""

from __future__ import annotations

import json

import pytest

from workload_eval.cli import main
from workload_eval.workloads import load_workload, plot_length_cdfs


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def test_describe_json_is_one_object_with_the_keys(capsys, data_dir, tokenizer_dir):
    assert (
        main(
            [
                "workloads",
                "describe",
                "dolly",
                "--model",
                "opt-13b",
                "--num-requests",
                "200",
                "--json",
                "--data-dir",
                str(data_dir),
                "--tokenizer-dir",
                str(tokenizer_dir),
            ]
        )
        == 0
    )
    obj = json.loads(capsys.readouterr().out)
    assert set(obj) == {"workload", "model", "num_requests", "input_len", "output_len"}
    assert obj["num_requests"] == 200 and obj["workload"] == "dolly"
    for key in ("input_len", "output_len"):
        s = obj[key]
        assert {"mean", "p50", "p90", "p99", "max"} <= set(s)
        assert s["p50"] <= s["p90"] <= s["p99"] <= s["max"]


def test_describe_works_with_no_data(capsys, monkeypatch):
    monkeypatch.delenv("WORKLOAD_EVAL_DATA_DIR", raising=False)
    assert (
        main(
            [
                "workloads",
                "describe",
                "cnn_dailymail",
                "-m",
                "llama-2-13b",
                "-n",
                "100",
                "--source",
                "profile",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "input" in out and "p99" in out and "profile" in out


def test_list_has_every_workload(capsys, data_dir, tmp_path):
    # a data dir with two datasets: counts come from files, then profiles, else unknown
    for rel in ("alpaca/alpaca_random_9k.json", "extra/HumanEval.jsonl.gz"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(data_dir / rel)
    assert main(["workloads", "list", "--json", "--data-dir", str(tmp_path)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) >= {
        "alpaca",
        "dolly",
        "cnn_dailymail",
        "sharegpt",
        "sharegpt_chat",
        "azure_conv",
        "azure_code",
        "mooncake",
        "humaneval",
        "lmsys_chat",
        "arxiv_summarization",
    }
    assert rows["alpaca"]["records"] == 9229 and rows["humaneval"]["records"] == 164
    assert rows["sharegpt"]["records"] > 0  # from the shipped profile
    assert rows["azure_conv"]["records"] is None
    assert main(["workloads", "list", "--data-dir", str(tmp_path)]) == 0
    assert "text generation" in capsys.readouterr().out


def test_plot_writes_png_and_pdf(tmp_path, capsys):
    out = tmp_path / "fig1.png"
    assert (
        main(
            [
                "workloads",
                "plot",
                "alpaca",
                "dolly",
                "-m",
                "opt-13b",
                "--out",
                str(out),
                "--source",
                "profile",
            ]
        )
        == 0
    )
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    frames = {"sharegpt": load_workload("sharegpt", "opt-13b", source="profile")}
    plot_length_cdfs(frames, tmp_path / "f.pdf")
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_user_file_with_field_mapping(tmp_path, tokenizer_dir, capsys):
    f = tmp_path / "mine.jsonl.gz"
    import gzip

    rows = [{"q": f"question {i} " * (i + 1), "a": "answer " * (i + 2)} for i in range(20)]
    f.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    df = load_workload(
        "custom",
        "opt-13b",
        data_file=f,
        fields={"prompt": "q", "output": "a"},
        tokenizer_dir=tokenizer_dir,
    )
    assert len(df) == 20 and df["prompt_len"].max() > df["prompt_len"].min()
    assert (
        main(
            [
                "workloads",
                "describe",
                "mine",
                "-m",
                "opt-13b",
                "--data-file",
                str(f),
                "--field",
                "prompt=q",
                "--field",
                "output=a",
                "--json",
                "--tokenizer-dir",
                str(tokenizer_dir),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["num_requests"] == 20
