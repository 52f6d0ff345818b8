"""Bad input gives one clear line (file, line or field, what was expected); CLI exits 2."""

from __future__ import annotations

import gzip
import json

import pytest

from workload_eval.cli import main
from workload_eval.errors import UserError
from workload_eval.workloads import load_workload
from workload_eval.workloads.readers import read_table


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path / "cache"))


def _cli_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(UserError, match=r"nope\.jsonl: no such file"):
        read_table(missing)
    line = _cli_error(
        capsys, ["workloads", "describe", "alpaca", "-m", "opt-13b", "--data-file", str(missing)]
    )
    assert "nope.jsonl" in line


def test_missing_data_dir(tmp_path, capsys):
    line = _cli_error(
        capsys,
        ["workloads", "describe", "alpaca", "-m", "opt-13b", "--data-dir", str(tmp_path / "gone")],
    )
    assert "--data-dir" in line and "gone: no such folder" in line


def test_malformed_json_line_names_file_and_line(tmp_path, tokenizer_dir, capsys):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"prompt": "a", "output": "b"}\n{"prompt": "c", "output": \n')
    with pytest.raises(UserError, match=r"mine\.jsonl: line 2: invalid JSON"):
        read_table(f)
    line = _cli_error(
        capsys,
        ["workloads", "describe", str(f), "-m", "opt-13b", "--tokenizer-dir", str(tokenizer_dir)],
    )
    assert "mine.jsonl: line 2" in line


def test_malformed_gzip_json_names_line(tmp_path):
    f = tmp_path / "conv.json.gz"
    f.write_bytes(gzip.compress(b'[\n {"conversations": []},\n {"conversations": [}\n]'))
    with pytest.raises(UserError, match=r"conv\.json\.gz: line 3: invalid JSON"):
        read_table(f)


def test_missing_field_names_field_and_file(tmp_path, tokenizer_dir, capsys):
    f = tmp_path / "qa.json"
    f.write_text(json.dumps([{"instruction": "Why?", "context": "", "category": "open_qa"}]))
    with pytest.raises(UserError, match=r"qa\.json: missing field 'output' or 'response'"):
        load_workload("dolly", "opt-13b", data_file=f, tokenizer_dir=tokenizer_dir)
    line = _cli_error(
        capsys,
        [
            "workloads",
            "describe",
            "dolly",
            "-m",
            "opt-13b",
            "--data-file",
            str(f),
            "--tokenizer-dir",
            str(tokenizer_dir),
        ],
    )
    assert "qa.json" in line and "'output'" in line


def test_unknown_workload_lists_known(capsys):
    with pytest.raises(UserError, match=r"unknown workload 'alpacca'.*alpaca, dolly"):
        load_workload("alpacca", "opt-13b")
    line = _cli_error(capsys, ["workloads", "describe", "alpacca", "-m", "opt-13b"])
    assert "sharegpt_chat" in line


def test_unknown_model_lists_known(capsys):
    line = _cli_error(capsys, ["workloads", "describe", "alpaca", "-m", "gpt-9"])
    assert "gpt-9" in line and "opt-13b" in line


def test_empty_selection(tmp_path, tokenizer_dir, capsys):
    f = tmp_path / "long.csv"
    f.write_text("prompt,output\n" + "word " * 50 + ",answer here\n")
    with pytest.raises(UserError, match=r"no request left.*max_model_len=10"):
        load_workload(str(f), "opt-13b", max_model_len=10, tokenizer_dir=tokenizer_dir)
    line = _cli_error(
        capsys,
        [
            "workloads",
            "describe",
            str(f),
            "-m",
            "opt-13b",
            "--max-model-len",
            "10",
            "--tokenizer-dir",
            str(tokenizer_dir),
        ],
    )
    assert "max_model_len=10" in line


def test_empty_outputs_are_dropped(tmp_path, tokenizer_dir):
    f = tmp_path / "pairs.csv"
    f.write_text("prompt,output\nhello,\nhi,there\n")
    df = load_workload(str(f), "llama-2-7b", tokenizer_dir=tokenizer_dir)
    assert len(df) == 1 and df["output_len"].iloc[0] > 1


def test_bad_field_mapping_and_values(tmp_path, tokenizer_dir, capsys):
    f = tmp_path / "t.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,12,x\n")
    with pytest.raises(UserError, match=r"t\.csv: record 0: field 'GeneratedTokens'"):
        load_workload("azure_conv", "opt-13b", data_file=f)
    line = _cli_error(
        capsys, ["workloads", "describe", "alpaca", "-m", "opt-13b", "--field", "bogus"]
    )
    assert "ROLE=COLUMN" in line


def test_unsupported_file_type(tmp_path):
    f = tmp_path / "data.xlsx"
    f.write_text("x")
    with pytest.raises(UserError, match=r"data\.xlsx: unsupported file type"):
        read_table(f)


def test_no_data_and_no_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from workload_eval.workloads import hub

    hub.hub_available.cache_clear()
    with pytest.raises(UserError, match="workload 'azure_conv': no data found"):
        load_workload("azure_conv", "opt-13b", data_dir=tmp_path)
    hub.hub_available.cache_clear()
