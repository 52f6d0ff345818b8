"""GPU catalog and vLLM-style KV sizing: the calibration's block counts, clear errors."""

from __future__ import annotations

import pytest

from workload_eval.engines.sim.hardware import GPUS, known_gpus, resolve_gpu
from workload_eval.engines.sim.memory import kv_blocks_for_memory, profile_activation_bytes
from workload_eval.errors import UserError
from workload_eval.models import resolve_model

# (kv_blocks, gpu_memory_utilization) the seed paper ran OPT-13B on A100-40GB with.
PAPER_PAIRS = [(643, 0.95), (600, 0.9367), (450, 0.8902), (300, 0.8437), (150, 0.7972)]


def test_catalog_has_the_required_gpus_with_datasheet_numbers():
    assert {"a100-40gb", "a100-80gb", "h100-sxm", "h200", "l40s"} <= set(known_gpus())
    a100 = resolve_gpu("a100-40gb")
    assert a100.hbm_bandwidth == 1555e9 and a100.peak_flops == 312e12
    assert resolve_gpu("H100").hbm_bandwidth == 3350e9
    assert resolve_gpu("A100") is a100  # alias, case-insensitive


def test_unknown_gpu_lists_the_known_ones():
    with pytest.raises(UserError) as e:
        resolve_gpu("tpu-v5")
    msg = str(e.value)
    assert "tpu-v5" in msg
    for name in GPUS:
        assert name in msg


def test_opt13b_a100_40gb_reproduces_the_papers_block_counts():
    model, gpu = resolve_model("opt-13b"), resolve_gpu("a100-40gb")
    for blocks, util in PAPER_PAIRS:
        assert kv_blocks_for_memory(model, gpu, util, 16) == blocks


def test_blocks_scale_with_block_size_and_memory():
    model = resolve_model("llama-2-7b")
    a40, a80 = resolve_gpu("a100-40gb"), resolve_gpu("a100-80gb")
    b16 = kv_blocks_for_memory(model, a40, 0.9, 16)
    b32 = kv_blocks_for_memory(model, a40, 0.9, 32)
    assert b32 in (b16 // 2, b16 // 2 - 1, b16 // 2 + 1)
    assert kv_blocks_for_memory(model, a80, 0.9, 16) > 2 * b16
    # vLLM's default max_num_seqs (256) profiles a smaller sampler batch: more blocks.
    assert kv_blocks_for_memory(model, a80, 0.9, 16, max_num_seqs=256) > kv_blocks_for_memory(
        model, a80, 0.9, 16
    )


def test_activation_peak_is_a_few_gib_for_the_papers_settings():
    act = profile_activation_bytes(resolve_model("opt-13b"))
    assert 5.5e9 < act < 6.5e9


def test_model_that_does_not_fit_is_a_user_error():
    with pytest.raises(UserError, match="no memory is left"):
        kv_blocks_for_memory(resolve_model("llama-2-70b"), resolve_gpu("a100-40gb"), 0.9, 16)
    with pytest.raises(UserError, match="gpu-memory-utilization"):
        kv_blocks_for_memory(resolve_model("opt-13b"), resolve_gpu("a100-40gb"), 1.5, 16)


@pytest.mark.parametrize(
    "name,memory_gb,expect",
    [
        ("a100", 80, "a100-80gb"),
        ("A100", None, "a100-40gb"),
        ("NVIDIA H100 80GB HBM3", 80, "h100-sxm"),
        ("h100", None, "h100-sxm"),
        ("H100_PCIe", 80, "h100-pcie"),
        ("AMD Instinct MI300X", 192, "mi300x"),
        ("rtx 4090", 24, "rtx-4090"),
        ("RTX-PRO-6000", 96, "rtx-pro-6000"),
    ],
)
def test_corpus_gpu_names_resolve_with_their_memory(name, memory_gb, expect):
    assert resolve_gpu(name, memory_gb).name == expect


def test_every_gpu_has_datasheet_facts_and_a_source():
    for g in GPUS.values():
        assert g.source.startswith("http") and g.architecture
        assert 10e9 < g.memory_bytes < 300e9 and 200e9 < g.hbm_bandwidth < 10e12
        assert g.link.bandwidth > 0
        assert g.tensor_flops("fp8") >= g.peak_flops  # no fp8 units: the 16-bit rate
    h100, a100 = resolve_gpu("h100-sxm"), resolve_gpu("a100-80gb")
    assert h100.tensor_flops("fp8") == pytest.approx(2 * h100.peak_flops, rel=1e-3)
    assert a100.fp8_flops is None
    assert h100.link.kind == "nvlink" and resolve_gpu("l40s").link.kind == "pcie"
