"""TP/PP/EP sharding, collectives, precision, and vLLM's KV sizing per GPU."""

from __future__ import annotations

import pytest

from workload_eval.engines.sim.deployment import (
    kv_blocks_for,
    physics_options,
    resolve_deployment,
)
from workload_eval.engines.sim.hardware import resolve_gpu
from workload_eval.engines.sim.parallelism import (
    Parallelism,
    kv_elems_per_token_layer_gpu,
    ring_allreduce_time,
    shard_model,
)
from workload_eval.engines.sim.precision import resolve_precision
from workload_eval.errors import UserError
from workload_eval.models import resolve_model

H100 = resolve_gpu("h100-sxm")


def deploy(model: str, gpu: str = "h100-sxm", policy: str = "vllm-v1", **opts):
    return resolve_deployment(model, gpu, policy, physics_options(opts))


def shard(model: str, **par):
    m = resolve_model(model)
    return shard_model(m, resolve_precision(m, H100), Parallelism(**par))


@pytest.mark.parametrize(
    "model,tp,blocks",
    [
        ("llama-2-7b", 1, 7463),
        ("llama-2-70b", 4, 31357),
        ("mixtral-8x7b", 2, 27511),
        ("codellama-34b", 2, 26603),
    ],
)
def test_kv_blocks_match_what_vllm_reported_on_h100(model, tp, blocks):
    """vLLM 0.15.1's num_gpu_blocks at 0.9 utilization, 2048 batched tokens, 128 seqs."""
    dep = deploy(model, tensor_parallel_size=tp, vllm_version="0.15.1")
    got = kv_blocks_for(
        dep, utilization=0.9, block_size=16, max_num_batched_tokens=2048, max_num_seqs=128
    )
    assert got == pytest.approx(blocks, rel=0.005)


def test_tensor_parallelism_splits_weights_and_kv_heads():
    one, two = shard("llama-2-7b"), shard("llama-2-7b", tensor=2)
    assert two.static_weight_read == pytest.approx(one.static_weight_read / 2, rel=1e-9)
    assert two.kv_bytes_per_token == one.kv_bytes_per_token / 2
    assert one.allreduces_per_step == 0 and two.allreduces_per_step == 2 * 32
    # 8 KV heads on 16 ranks: each rank keeps one KV head (replicated), not half of one
    m = resolve_model("llama-3.1-8b")
    assert kv_elems_per_token_layer_gpu(m, 16) == 2 * 128
    assert kv_elems_per_token_layer_gpu(m, 4) == 2 * 2 * 128


def test_pipeline_stages_hold_their_layers_and_expert_parallel_whole_experts():
    full, pp2 = shard("llama-2-70b", tensor=2), shard("llama-2-70b", tensor=2, pipeline=2)
    assert pp2.kv_bytes_per_token == full.kv_bytes_per_token / 2
    assert pp2.resident_weight_bytes < 0.55 * full.resident_weight_bytes
    tp2, ep2 = shard("mixtral-8x7b", tensor=2), shard("mixtral-8x7b", tensor=2, expert=True)
    assert tp2.local_experts == 8 and ep2.local_experts == 4
    assert ep2.expert_bytes == 2 * tp2.expert_bytes
    assert ep2.all_to_alls_per_step == 2 * 32


def test_a_corpus_gpu_name_and_size_pick_the_board():
    assert deploy("llama-2-7b", gpu="a100", gpu_memory_gb=80).gpu.name == "a100-80gb"
    assert deploy("llama-2-7b", gpu="a100").gpu.name == "a100-40gb"


def test_layouts_vllm_refuses_are_user_errors():
    with pytest.raises(UserError, match="not divisible"):
        deploy("llama-2-7b", tensor_parallel_size=3)
    with pytest.raises(UserError, match="not a mixture-of-experts"):
        deploy("llama-2-7b", enable_expert_parallel=True)
    with pytest.raises(UserError, match=r"vllm-0\.2"):
        deploy("llama-2-7b", policy="vllm-0.2", tensor_parallel_size=2)
    with pytest.raises(UserError, match="tensor_parallel_size"):
        physics_options({"tensor_parallel_size": 0})


def test_ring_allreduce_costs_hops_and_bytes():
    link = H100.link
    assert ring_allreduce_time(1e6, 1, link, 2e-6, 1.0) == 0.0
    small = ring_allreduce_time(0.0, 4, link, 2e-6, 1.0)
    assert small == pytest.approx(6 * 2e-6)
    big = ring_allreduce_time(64e6, 4, link, 2e-6, 1.0)
    assert big == pytest.approx(small + 6 / 4 * 64e6 / link.bandwidth)
    pcie = resolve_gpu("l40s").link
    assert ring_allreduce_time(64e6, 4, pcie, 2e-6, 1.0) > 10 * big


def test_precision_fp8_weights_and_kv_cache():
    m = resolve_model("llama-3.1-8b")
    fp8 = resolve_precision(m, H100, quantization="fp8", kv_cache_dtype="fp8")
    assert fp8.weight_bits == 8 and fp8.kv_bytes == 1 and fp8.compute == "fp8"
    # the A100 has no fp8 tensor cores: weight-only fp8 (Marlin), 16-bit GEMMs
    assert resolve_precision(m, resolve_gpu("a100-80gb"), quantization="fp8").compute == "fp16"
    bnb = resolve_precision(m, H100, quantization="bitsandbytes")
    assert bnb.weight_bits < 5 and bnb.read_bits > 16  # dequantized copy moved every step
    dep16, dep8 = deploy("llama-3.1-8b"), deploy("llama-3.1-8b", kv_cache_dtype="fp8")
    assert dep8.shard.kv_bytes_per_token == dep16.shard.kv_bytes_per_token / 2
    with pytest.raises(UserError, match="kv_cache_dtype"):
        resolve_precision(m, H100, kv_cache_dtype="int3")
