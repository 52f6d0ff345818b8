"""The strict, bounded readers every input goes through (``workload_eval.inputs``): what
they refuse is pinned by the fuzz suite; here, what they must still accept, and how much
work a hostile file can make them do."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workload_eval.errors import UserError
from workload_eval.experiments.spec_loading import spec_from_yaml_text
from workload_eval.inputs import loads_json, loads_yaml, read_bytes
from workload_eval.limits import MAX_DATA_BYTES, MAX_YAML_NODES
from workload_eval.workloads.builders import _datetime_seconds
from workload_eval.workloads.readers import read_table


def test_yaml_anchors_and_merge_keys_still_work() -> None:
    spec = spec_from_yaml_text(
        """
workloads: &w [alpaca]
schedules: [{kind: offline, num_requests: 5}]
engines:
  - &sim {engine: sim, max_num_seqs: 64}
  - {<<: *sim, label: small, max_num_seqs: 8}
groups:
  - {name: a, workloads: *w}
"""
    )
    engines = spec.groups[0].engines
    assert [e.name for e in engines] == ["sim", "small"]
    assert [e.config_knobs["max_num_seqs"] for e in engines] == [64, 8]


def test_yaml_1_2_numbers_are_numbers() -> None:
    data = loads_yaml("a: [1e3, 2.5E-3, -1e+2, 1_000, '1e3', .e5]", "x.yaml")
    assert data["a"] == [1000.0, 0.0025, -100.0, 1000, "1e3", ".e5"]


def test_alias_bomb_is_refused_before_building_anything() -> None:
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    text = "\n".join([*levels, "name: *i"])  # 587 bytes, 9**9 strings once expanded
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="alias bomb"):
        loads_yaml(text, "bomb.yaml")
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # refused before expanding: the memory says so (expanding takes GB); the time only
    # guards against a hang (expanding would take minutes)
    assert peak < 20 << 20 and elapsed < 60, (elapsed, peak)
    # below the bound, the same shape is fine
    small = "\n".join([*levels[:4], "name: *d"])  # 9**4 = 6561 strings
    assert MAX_YAML_NODES > 9**4
    assert len(loads_yaml(small, "ok.yaml")["name"]) == 9


def test_json_surrogate_pairs_are_characters() -> None:
    assert loads_json('["\\ud83d\\ude00", "\\\\ud800"]', "x.json") == ["😀", "\\ud800"]


def test_gzip_bomb_stops_while_inflating(tmp_path: Path) -> None:
    block = gzip.compress(b"A" * (1 << 20), compresslevel=9)
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b'["') + block * 1024 + gzip.compress(b'"]'))
    tracemalloc.start()
    with pytest.raises(UserError, match="inflates more than"):
        read_bytes(bomb, limit=MAX_DATA_BYTES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100 << 20  # stopped after ~17 MiB, not 1 GiB


def test_honest_gzip_data_reads_like_the_plain_file(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "output": f"o{i}"} for i in range(100)]
    plain, packed = tmp_path / "d.json", tmp_path / "d.json.gz"
    plain.write_text(json.dumps(rows))
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    pd.testing.assert_frame_equal(read_table(plain), read_table(packed))


def test_csv_text_nan_stays_text_and_numbers_stay_numbers(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text("prompt,output,n\nNaN,null,3\n")
    df = read_table(f)
    assert df.loc[0, "prompt"] == "NaN" and df.loc[0, "output"] == "null" and df.loc[0, "n"] == 3


def test_timestamps_with_and_without_fractions_parse_row_by_row() -> None:
    # pandas would infer "%Y-%m-%d %H:%M:%S.%f" from row 0 and reject row 1
    col = pd.Series(["2023-11-16 18:15:46.6805900", "2023-11-16 18:15:47", "2023-11-16 18:15:49.5"])
    assert np.allclose(_datetime_seconds(col, "TIMESTAMP", "t"), [0, 0.31941, 2.81941])
    zoned = pd.Series(["2023-11-16T18:00:00+01:00", "2023-11-16T17:00:30Z"])
    assert np.allclose(_datetime_seconds(zoned, "TIMESTAMP", "t"), [0, 30])


def test_azure_trace_mixing_fractional_seconds_runs(tmp_path: Path) -> None:
    from workload_eval.cli import main

    traces = tmp_path / "data" / "traces"
    traces.mkdir(parents=True)
    (traces / "AzureLLMInferenceTrace_conv_2023.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:47,396,109\n"
        "2023-11-16 18:15:51.2224670,879,55\n"
    )
    out = tmp_path / "run"
    code = main(
        [
            *("run", "--model", "opt-13b", "--kv-blocks", "643", "--workload", "azure_conv"),
            *("--data-dir", str(tmp_path / "data"), "--schedule", "trace", "--no-progress"),
            *("--out", str(out)),
        ]
    )
    assert code == 0
    requests = pd.read_parquet(out / "requests.parquet").sort_values("arrival_time")
    assert np.allclose(requests["arrival_time"], [0, 0.31941, 4.541877])
