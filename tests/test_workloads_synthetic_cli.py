"""Synthetic workloads wherever a workload name goes: run, capacity, sweep, describe, export."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from workload_eval.cli import main
from workload_eval.commands.run import build_spec
from workload_eval.commands.run import command as run_command
from workload_eval.engines.openai import OpenAIOptions
from workload_eval.experiments import expand, load_spec

CALIB = Path(__file__).resolve().parents[2] / "shared" / "real-gpu" / "calib"
SIM = ["--model", "opt-13b", "--kv-blocks", "643", "--no-progress"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_run_an_inline_synthetic_workload_on_the_sim(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", *SIM, "--workload", "synthetic:prompt_tokens=512,output_tokens=256"]
    assert main([*args, "--num-requests", "40", "--out", str(out)]) == 0
    req = pd.read_parquet(out / "requests.parquet")
    assert len(req) == 40 and set(req["prompt_tokens"]) == {512}
    assert set(req["generated_tokens"]) == {256}
    config = json.loads((out / "summary.json").read_text())["config"]
    spec = config["resolved"]["workload"]["spec"]  # the generated workload's full spec
    assert spec["prompt_tokens"] == {"type": "fixed", "value": 512}


def test_run_a_corpus_workload_block_as_a_workload_file(tmp_path, capsys):
    block = json.loads(next(CALIB.glob("*codegen.json")).read_text())["scenario"]["workload"]
    wl = tmp_path / "codegen.yaml"
    wl.write_text(yaml.safe_dump(block))
    out = tmp_path / "run"
    args = ["run", *SIM, "--workload", str(wl), "--max-model-len", "4096"]
    assert main([*args, "--request-rate", "5", "--num-requests", "50", "--out", str(out)]) == 0
    req = pd.read_parquet(out / "requests.parquet")
    assert len(req) == 50 and set(req["generated_tokens"]) == {247}


def test_bad_workloads_and_options_are_one_line_errors(tmp_path, capsys):
    base = ["run", *SIM, "--out", str(tmp_path / "r"), "--num-requests", "5"]
    assert main([*base, "--workload", "synthetic:prompt_tokens=5"]) == 2
    assert "output_tokens: field required" in _err(capsys)
    assert (
        main(
            [
                *base,
                "--workload",
                "synthetic:prompt_tokens=5,output_tokens=5",
                "--output-len-model",
                "eos",
            ]
        )
        == 2
    )
    assert "--output-len-model: " in _err(capsys)
    assert main([*base, "--workload", "codegen", "--no-ignore-eos"]) == 2
    assert "the sim generates the workload's output lengths" in _err(capsys)
    bad = tmp_path / "w.yaml"
    bad.write_text("kind: sessions\nturns: 2\nprompt_tokens: 5\noutput_tokens: uniform(1)\n")
    assert main([*base, "--workload", str(bad)]) == 2
    assert f"{bad}: output_tokens: uniform(...) takes min, max" in _err(capsys)


def test_no_ignore_eos_reaches_the_real_engines_options():
    ctx = run_command.make_context(
        "run",
        [
            "--engine",
            "openai",
            "--model",
            "m",
            "--workload",
            "codegen",
            "--out",
            "x",
            "--base-url",
            "http://127.0.0.1:1",
            "--no-ignore-eos",
        ],
    )
    spec = build_spec(ctx.params)
    assert spec.engine_config.options["ignore_eos"] is False
    assert OpenAIOptions.model_validate(spec.engine_config.options).ignore_eos is False


def test_describe_and_export_accept_every_form(tmp_path, capsys):
    assert main(["workloads", "describe", "roleplay", "-m", "opt-13b", "-n", "150", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input_len"]["mean"] == 750 and d["output_len"]["mean"] == 251
    out = tmp_path / "t.csv"
    args = ["workloads", "export", "synthetic:prompt_tokens=uniform(5,50),output_tokens=9"]
    assert (
        main(
            [
                *args,
                "-m",
                "opt-13b",
                "--request-rate",
                "4",
                "--duration",
                "5",
                "--schedule",
                "constant",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert list(table.columns) == ["arrival_s", "prompt_len", "output_len"]
    assert table["arrival_s"].tolist() == [i / 4 for i in range(20)]
    assert main(["workloads", "describe", str(out), "-m", "opt-13b", "--json"]) == 0
    back = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert back["num_requests"] == 20 and back["output_len"]["mean"] == 9
    png = tmp_path / "f.png"
    names = ["general", "synthetic:prompt_tokens=lognormal(300,100),output_tokens=50", str(out)]
    assert main(["workloads", "plot", *names, "-m", "opt-13b", "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000


def test_describe_with_an_eos_output_model(capsys):
    args = ["workloads", "describe", "general", "-m", "opt-13b", "-n", "400", "--json"]
    assert main([*args, "--output-len-model", "eos:600"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert abs(d["input_len"]["mean"] + d["output_len"]["mean"] - 600) < 0.5


def test_sweep_specs_take_synthetic_workloads_and_output_models(tmp_path):
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(
        "name: synth\n"
        "workloads: ['synthetic:prompt_tokens=128,output_tokens=64', codegen]\n"
        "schedules: [{kind: offline, num_requests: 20}]\n"
        "output_len_model: {codegen: 'eos:500'}\n"
    )
    points = expand(load_spec(spec_path))[0]
    by_workload = {p.spec.workload: p.spec for p in points}
    assert by_workload["codegen"].output_len_model == "eos:500"
    assert by_workload["synthetic:prompt_tokens=128,output_tokens=64"].output_len_model is None
    bad = tmp_path / "b.yaml"
    bad.write_text("name: b\nworkloads: ['synthetic:prompt_tokens=x,output_tokens=1']\n")
    try:
        load_spec(bad)
    except Exception as e:  # UserError, one line, file:line: key
        assert str(e).startswith(f"{bad}:2: workloads[0]: workload ") and "\n" not in str(e)
    else:
        raise AssertionError("a bad inline workload in a spec must be refused")
