"""Experiment specs: the seed's defaults, grid expansion, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from workload_eval.cli import main
from workload_eval.errors import UserError
from workload_eval.experiments import expand, load_spec, point_key
from workload_eval.experiments.spec_loading import spec_from_yaml_text

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_seed_settings() -> None:
    spec = spec_from_yaml_text("name: d\n")
    points, tasks = expand(spec)
    offline = [p.spec for p in points]
    assert {p.schedule.num_requests for p in offline} == {100, 500, 1000}
    assert {p.workload for p in offline} == {"alpaca", "cnn_dailymail", "dolly", "sharegpt"}
    ec = offline[0].engine_config
    assert (ec.model, ec.options["gpu"], ec.kv_blocks, ec.block_size) == (
        "opt-13b",
        "a100-40gb",
        643,
        16,
    )
    assert (ec.max_num_batched_tokens, ec.max_num_seqs, ec.max_model_len) == (2560, 2048, 2048)
    assert "policy" not in ec.options  # the sim's default, vllm-0.2
    assert offline[0].seed == 0 and offline[0].engine == "sim"
    assert len(tasks) == 4  # one capacity search per workload
    probe = tasks[0].run_spec(12.5, 0)
    assert (probe.schedule.kind, probe.schedule.duration, probe.schedule.rate) == (
        "poisson",
        600,
        12.5,
    )
    assert [str(s) for s in tasks[0].slos] == ["normalized_latency_p95<=0.1875"]


def test_grid_expands_lists_ranges_groups_and_dedupes() -> None:
    spec = spec_from_yaml_text(
        """
name: g
engines: [sim, {engine: sim, label: v1, policy: vllm-v1}]
workloads: alpaca
seeds: [0, 1]
schedules:
  - {kind: poisson, duration: 30, rate: {start: 1, stop: 2, step: 0.5}}
groups:
  - {name: a, kv_blocks: [100, 200]}
  - {name: b, kv_blocks: [200], gpu_memory_utilization: [0.9]}
"""
    )
    points, tasks = expand(spec)
    assert not tasks
    rates = sorted({p.spec.schedule.rate for p in points})
    assert rates == [1.0, 1.5, 2.0]
    # group a: 2 engines x 2 kv x 3 rates x 2 seeds = 24; group b adds only util 0.9 (12)
    assert len(points) == 24 + 12
    assert len({p.key for p in points}) == len(points)
    assert {p.spec.engine_config.options.get("policy") for p in points} == {None, "vllm-v1"}
    assert all(p.spec.engine_config.seed == p.spec.seed for p in points)


def test_engine_options_are_flat_or_nested_and_reach_the_run_spec() -> None:
    spec = spec_from_yaml_text(
        """
engines:
  - {engine: sim, policy: vllm-v1, enable_chunked_prefill: false}
  - {engine: sim, label: prof, options: {record_token_times: true}}
gpus: [h100]
workloads: [alpaca]
schedules: [{kind: offline, num_requests: 10}]
"""
    )
    points, _ = expand(spec)
    opts = sorted((p.engine_label, p.spec.engine_config.options) for p in points)
    assert opts == [
        ("prof", {"gpu": "h100", "record_token_times": True}),
        ("sim", {"gpu": "h100", "policy": "vllm-v1"}),
    ]
    assert {p.spec.engine_config.enable_chunked_prefill for p in points} == {False, None}


def test_point_key_is_stable_and_ignores_data_locations() -> None:
    spec = spec_from_yaml_text(
        "workloads: [alpaca]\nschedules: [{kind: offline, num_requests: 10}]\n"
    )
    p = expand(spec)[0][0].spec
    moved = p.model_copy(update={"data_dir": "/elsewhere"})
    assert point_key(p) == point_key(moved) and len(point_key(p)) == 16
    other = p.model_copy(update={"seed": 1})
    assert point_key(other) != point_key(p)
    assert point_key(p) == point_key(type(p).model_validate_json(p.model_dump_json()))


BAD = [
    ("workloads: [alpaca, dolly, foo]\n", 2, "workloads[2]: unknown workload 'foo' (expected"),
    ("models: [opt-13b]\nkv_blocks: [100, -1]\n", 3, "kv_blocks[1]: Input should be greater"),
    ("engines:\n  - engine: sim\n    policy: fast\n", 4, "engines[0].policy:"),
    ("engines:\n  - engine: sim\n    polcy: vllm-v1\n", 4, "engines[0].polcy: unknown setting"),
    ("engines: [vllm]\ngpus: [h100]\n", 3, "gpus: engine 'vllm' runs on its own hardware"),
    ("engines: [trt]\n", 2, "engines[0].engine: unknown engine 'trt'"),
    (
        "schedules:\n  - kind: poisson\n    rate: capacity\n",
        3,
        "schedules[0]: schedule 'poisson' needs a duration or num_requests",
    ),
    (
        "schedules:\n  - kind: offline\n    rate: capacity\n",
        4,
        "schedules[0].rate: 'capacity' needs a rate-driven schedule",
    ),
    ("schedules: [{kind: fifo}]\n", 2, "schedules[0].kind: unknown schedule kind 'fifo'"),
    ("slos: ['p95 < fast']\n", 2, "slos: cannot parse SLO"),
    ("slos:\n  - ttft_p99<=2\n  - latency<=2\n", 4, "slos[1]: unknown metric 'latency'"),
    ("capacity: {rule: guess}\n", 2, "capacity.rule:"),
    ("modles: [opt-13b]\n", 2, "modles: unknown setting"),
    ("groups:\n  - name: x\n    gpus: [h900]\n", 4, "groups[0].gpus[0]: unknown gpu 'h900'"),
]


@pytest.mark.parametrize(("body", "line", "expected"), BAD)
def test_bad_spec_is_one_line_with_file_line_and_key(
    tmp_path: Path, body: str, line: int, expected: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: bad\n" + body)
    with pytest.raises(UserError) as e:
        load_spec(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}: "), msg
    assert expected in msg, msg


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nmodels: [opt-13b\n")
    with pytest.raises(UserError, match=r"s.yaml:\d+: invalid YAML"):
        load_spec(path)
    with pytest.raises(UserError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_cli_prints_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: bad\nworkloads: [alpaca, foo]\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0
    assert f"{path}:2: workloads[1]: unknown workload 'foo'" in err


@pytest.mark.parametrize("name", ["paper.yaml", "quick.yaml"])
def test_shipped_examples_validate(name: str) -> None:
    spec = load_spec(REPO / "examples" / name)
    points, tasks = expand(spec)
    assert points and tasks
    if name == "paper.yaml":
        models = {p.spec.engine_config.model for p in points}
        assert models == {"opt-13b", "llama-2-13b", "opt-6.7b", "llama-2-7b"}
        kv = {(p.spec.engine_config.model, p.spec.engine_config.kv_blocks) for p in points}
        assert ("opt-6.7b", 150) in kv and ("llama-2-13b", 643) in kv
        assert len(tasks) == 2 * 4 + 2 * 4 * 4


def test_validation_reads_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workload names are checked against the catalog; the datasets are the runs' business."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    (data / "alpaca").mkdir(parents=True)
    (data / "alpaca" / "alpaca_data.json").write_text("{not json")  # unreadable if opened
    monkeypatch.setenv("WORKLOAD_EVAL_DATA_DIR", str(data))
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(cache))
    spec = load_spec(REPO / "examples" / "quick.yaml")
    assert spec.groups[0].workloads == ["alpaca", "sharegpt"]
    assert not cache.exists()  # nothing was counted or cached
    with pytest.raises(UserError, match="unknown workload 'alpacca'"):
        spec_from_yaml_text("workloads: [alpacca]\n")
