"""Performance model: monotone in work, GPU and model size; closed forms; profile fitting."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from workload_eval.engines.sim.hardware import resolve_gpu
from workload_eval.engines.sim.perf_model import (
    DecodeRun,
    ProfilePerfModel,
    RooflinePerfModel,
    build_perf_model,
)
from workload_eval.errors import UserError
from workload_eval.models import resolve_model

OPT13 = resolve_model("opt-13b")
A100 = resolve_gpu("a100-40gb")


def roofline(model: str = "opt-13b", gpu: str = "a100-40gb") -> RooflinePerfModel:
    return RooflinePerfModel(resolve_model(model), resolve_gpu(gpu))


def test_more_tokens_never_faster():
    pm = roofline()
    prev = 0.0
    for tokens in [1, 16, 64, 256, 1024, 2560]:
        t = pm.prefill_time(1, tokens, tokens * tokens)
        assert t >= prev
        prev = t
    assert pm.prefill_time(4, 2048, 4 * 512**2) >= pm.prefill_time(4, 1024, 4 * 256**2)
    assert pm.mixed_time(512, 512**2, 8, 4000) >= pm.mixed_time(256, 256**2, 8, 4000)


def test_bigger_batch_or_context_never_faster():
    pm = roofline()
    for ctx in [0, 1000, 20000, 100000]:
        times = [pm.decode_time(b, ctx) for b in [1, 2, 8, 32, 95, 128, 256, 512, 2048]]
        assert times == sorted(times)
    for b in [1, 64, 512]:
        times = [pm.decode_time(b, c) for c in [0, 100, 5000, 50000, 500000]]
        assert times == sorted(times)
        assert times[-1] > times[0]


def test_bigger_gpu_never_slower_and_bigger_model_never_faster():
    cases = [(1, 128, 128**2), (8, 2048, 8 * 256**2)]
    decodes = [(1, 100), (64, 20000), (256, 80000)]
    # Each GPU has at least the bandwidth and FLOP/s of the one before (the L40S has more
    # FLOP/s but less bandwidth than an A100, so it is in no such order with it).
    order = ["a100-40gb", "a100-80gb", "h100", "h200"]
    for model in ["opt-13b", "llama-2-7b", "llama-3-8b"]:
        pms = [roofline(model, g) for g in order]
        for slow, fast in itertools.pairwise(pms):
            for c in cases:
                assert fast.prefill_time(*c) <= slow.prefill_time(*c)
            for d in decodes:
                assert fast.decode_time(*d) <= slow.decode_time(*d)
    small, big = roofline("opt-6.7b"), roofline("opt-13b")
    for c in cases:
        assert big.prefill_time(*c) > small.prefill_time(*c)
    for d in decodes:
        assert big.decode_time(*d) > small.decode_time(*d)


def test_hardware_slopes_match_distserve_fit_on_a100_80gb():
    """The efficiencies come from DistServe's OPT-13B/A100-80GB fit: its slopes are reproduced.

    The engine overheads come from the paper's vLLM 0.2.1 fork instead, so totals differ more.
    """
    pm = roofline("opt-13b", "a100-80gb")
    per_token = (pm.prefill_time(1, 2048, 2048**2) - pm.prefill_time(1, 1024, 1024**2)) / 1024
    assert per_token * 1e3 == pytest.approx(0.1405 + 8.08e-6 * 3072, rel=0.05)
    per_ctx = (pm.decode_time(16, 20000) - pm.decode_time(16, 10000)) / 10000
    assert per_ctx * 1e3 == pytest.approx(5.93e-4, rel=0.05)
    for L in [128, 512, 2048]:
        ref = (22.05 + 0.1405 * L + 8.08e-6 * L * L) / 1e3
        assert pm.prefill_time(1, L, L * L) == pytest.approx(ref, rel=0.4)
    for b, c in [(1, 500), (32, 10000), (80, 40000), (200, 80000)]:
        ref = 23.48 + 5.93e-4 * c + 0.0607 * b if b < 95 else 20.21 + 4.91e-4 * c + 0.12 * b
        assert pm.decode_time(b, c) == pytest.approx(ref / 1e3, rel=0.25)


@pytest.mark.parametrize(
    "batch,ctx,steps",
    [(1, 10, 1), (50, 1000, 300), (300, 500, 1000), (2000, 0, 50), (7, 90000, 17)],
)
def test_decode_run_time_equals_the_sum_of_steps(batch, ctx, steps):
    pm = roofline()
    expect = sum(pm.decode_time(batch, ctx + k * batch) for k in range(steps))
    assert pm.decode_run_time(batch, ctx, steps) == pytest.approx(expect, rel=1e-9)
    assert pm.decode_run_time(batch, ctx, 0) == 0.0


def _write_profile(tmp_path, coef_pre, coef_dec, with_mixed=True):
    a0, a1, a2, a3 = coef_pre
    b0, b1, b2 = coef_dec
    prefill = []
    for s in [1, 2, 4, 8]:
        for L in [32, 128, 512]:
            tokens, sq = s * L, s * L * L
            prefill.append(
                {
                    "num_seqs": s,
                    "tokens": tokens,
                    "sum_sq_tokens": sq,
                    "time_s": a0 + a1 * s + a2 * tokens + a3 * sq,
                }
            )
    decode = [
        {"batch_size": b, "context_tokens": c, "time_s": b0 + b1 * b + b2 * c}
        for b in [1, 4, 16, 64]
        for c in [b * 16, b * 256, b * 1024]
    ]
    mixed = [
        {
            "prefill_tokens": p,
            "prefill_sum_sq": p * p,
            "decode_seqs": d,
            "decode_context_tokens": d * 300,
            "time_s": 0.01 + 2e-5 * p + 1e-9 * p * p + 3e-5 * d + 2e-7 * d * 300,
        }
        for p in [64, 256, 1024]
        for d in [1, 8, 32]
    ]
    doc = {
        "format": "workload-eval-perf-profile/1",
        "model": "opt-125m",
        "device": "cpu",
        "engine": "vllm 0.32.0",
        "block_size": 32,
        "prefill": prefill,
        "decode": decode,
    }
    if with_mixed:
        doc["mixed"] = mixed
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(doc))
    return path


def test_profile_model_recovers_a_known_linear_model(tmp_path):
    pre, dec = (0.012, 0.0005, 2e-5, 3e-9), (0.005, 1e-4, 4e-7)
    pm = build_perf_model(OPT13, A100, profile=_write_profile(tmp_path, pre, dec))
    assert isinstance(pm, ProfilePerfModel)
    assert pm.prefill_coef == pytest.approx(pre, rel=1e-6)
    assert pm.decode_break is None
    assert pm.decode_coef[0] == pytest.approx(dec, rel=1e-6)
    assert pm.prefill_time(3, 300, 30000) == pytest.approx(
        0.012 + 0.0015 + 2e-5 * 300 + 3e-9 * 30000
    )
    assert pm.mixed_time(100, 10000, 4, 1200) == pytest.approx(
        0.01 + 2e-5 * 100 + 1e-9 * 1e4 + 3e-5 * 4 + 2e-7 * 1200, rel=1e-6
    )
    expect = sum(pm.decode_time(8, 100 + 8 * k) for k in range(40))
    assert pm.decode_run_time(8, 100, 40) == pytest.approx(expect)


def test_profile_without_mixed_points_composes_prefill_and_decode(tmp_path):
    pm = ProfilePerfModel.from_file(
        _write_profile(tmp_path, (0.01, 0, 1e-5, 0), (0.004, 1e-4, 0), with_mixed=False)
    )
    t = pm.mixed_time(200, 40000, 10, 5000)
    assert t == pytest.approx(0.01 + 1e-5 * 200 + 1e-4 * 10)
    assert t > pm.prefill_time(1, 200, 40000)


def test_bad_profiles_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        ProfilePerfModel.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "workload-eval-perf-profile/1", "prefill": [], "decode": []}')
    with pytest.raises(UserError, match=r"bad\.json: field prefill"):
        ProfilePerfModel.from_file(bad)
    bad.write_text("{not json")
    with pytest.raises(UserError, match="line 1"):
        ProfilePerfModel.from_file(bad)


def test_step_times_are_finite_and_positive_everywhere():
    for gpu in ["a100-40gb", "h200", "l40s"]:
        pm = roofline("llama-3-8b", gpu)
        for v in [pm.prefill_time(1, 1, 1), pm.decode_time(1, 0), pm.mixed_time(0, 0, 1, 0)]:
            assert math.isfinite(v) and v > 0


# ---- current vLLM (V0/V1): per-kernel roofline over the deployment ---------------------------


def modern(model: str, gpu: str = "h100-sxm", *, generation: str = "vllm-v1", **opts):
    from workload_eval.engines.sim.deployment import physics_options, resolve_deployment

    dep = resolve_deployment(model, gpu, "vllm-v1", physics_options(opts))
    return build_perf_model(
        dep.model,
        dep.gpu,
        generation=generation,
        precision=dep.precision,
        parallelism=dep.parallelism,
    )


def test_measured_h100_decode_intervals_are_reproduced():
    """H100 SXM, calib: Llama-2-7B 8.2 ms/token at ~16 running requests of ~700 tokens
    (vLLM 0.15.1); Llama-3.1-8B 7.1 ms/token alone (vLLM 0.11, no async scheduling)."""
    assert modern("llama-2-7b").decode_time(16, 16 * 700) == pytest.approx(8.2e-3, rel=0.15)
    pm = modern("llama-3.1-8b", generation="vllm-v1-sync")
    assert pm.decode_time(1, 230) == pytest.approx(7.1e-3, rel=0.15)


def test_moe_reads_only_the_experts_a_batch_touches():
    pm = modern("mixtral-8x7b", tensor_parallel_size=2)
    expert_w = pm._expert_w  # all 8 experts of every layer, this GPU's slices
    # T tokens, top-2 of 8 uniformly: 8 (1 - (6/8)^T) distinct experts expected
    for t in (1, 4, 64):
        touched = 1 - (1 - 2 / 8) ** t
        assert pm._untouched**t == pytest.approx(1 - touched)
    assert pm.decode_time(64, 0) - pm.decode_time(1, 0) > 0.6 * expert_w
    dense = modern("llama-2-70b", tensor_parallel_size=4)
    assert dense.decode_time(64, 0) - dense.decode_time(1, 0) < 0.2 * dense._w


def test_fp8_weights_tensor_parallelism_and_bigger_gpus_are_faster():
    base = modern("llama-3.1-70b", tensor_parallel_size=4)
    fp8 = modern("llama-3.1-70b", tensor_parallel_size=4, quantization="fp8")
    assert fp8.decode_time(8, 8000) < 0.75 * base.decode_time(8, 8000)
    assert fp8.prefill_time(1, 2048, 2048**2) < base.prefill_time(1, 2048, 2048**2)
    tp8 = modern("llama-3.1-70b", tensor_parallel_size=8)
    assert tp8.decode_time(8, 8000) < base.decode_time(8, 8000)
    for gpu_small, gpu_big in [("a100-80gb", "h100-sxm"), ("h100-sxm", "h200"), ("h200", "b200")]:
        small, big = modern("llama-3.1-8b", gpu_small), modern("llama-3.1-8b", gpu_big)
        assert big.decode_time(32, 32000) < small.decode_time(32, 32000)
        assert big.prefill_time(1, 2048, 2048**2) <= small.prefill_time(1, 2048, 2048**2)


def test_pcie_all_reduce_costs_more_than_nvlink():
    nv = modern("llama-3.1-70b", "h100-sxm", tensor_parallel_size=4)
    pcie = modern("llama-3.1-70b", "h100-pcie", tensor_parallel_size=4)
    assert pcie.comm_time(2048) > 5 * nv.comm_time(2048)


def test_async_scheduling_overlaps_cpu_with_gpu():
    sync = modern("llama-3.1-8b", "b200", generation="vllm-v1-sync")
    asyn = modern("llama-3.1-8b", "b200", generation="vllm-v1")
    for b in (1, 64, 512):
        assert asyn.decode_time(b, b * 300) < sync.decode_time(b, b * 300) + 1e-12
    # a big CPU-bound batch: the step lasts as long as the CPU needs
    cpu = asyn._dec0 + 4000 * asyn._dec_seq
    assert asyn.decode_time(4000, 4000) == pytest.approx(max(cpu, asyn._gpu(4000, 4000, 0, 4000)))


@pytest.mark.parametrize("generation", ["vllm-v1", "vllm-v1-sync", "vllm-v0"])
@pytest.mark.parametrize("batch,ctx,steps", [(1, 10, 1), (50, 1000, 300), (2000, 0, 50)])
def test_modern_decode_run_time_equals_the_sum_of_steps(generation, batch, ctx, steps):
    pm = modern("mixtral-8x7b", tensor_parallel_size=2, generation=generation)
    expect = sum(pm.decode_time(batch, ctx + k * batch) for k in range(steps))
    assert pm.decode_run_time(batch, ctx, steps) == pytest.approx(expect, rel=1e-9)


def test_a_chunk_after_cached_tokens_costs_its_causal_pairs():
    """c new tokens after o computed: c (2o + c) / 2 pairs, c^2 / 2 for a whole prompt."""
    pm = modern("llama-3.1-8b")
    c, o = 512, 3584
    fresh = pm.mixed_time(c, c * c, 8, 8000)
    after = pm.mixed_time(c, c * (2 * o + c), 8, 8000)
    assert after > fresh
    whole = pm.prefill_time(1, o + c, (o + c) ** 2)
    assert pm.prefill_time(1, c, c * (2 * o + c)) < whole


def test_mla_decode_run_time_equals_the_sum_of_steps():
    """DeepSeek's latent attention is costed by its own roofline in both forms."""
    pm = modern("deepseek-v3", "h200", tensor_parallel_size=8)
    assert pm._dec_attn > 0
    expect = sum(pm.decode_time(32, 64000 + k * 32) for k in range(40))
    assert pm.decode_run_time(32, 64000, 40) == pytest.approx(expect, rel=1e-9)


@pytest.mark.parametrize("generation", ["vllm-v1", "vllm-v1-sync"])
@pytest.mark.parametrize(
    "model,batch,ctx",
    [
        ("llama-3.1-8b", 1, 10),
        ("llama-3.1-8b", 64, 20000),
        ("llama-3.1-8b", 900, 400000),
        ("opt-125m", 200, 2000),
    ],
)
def test_decode_run_reaches_a_time_in_the_step_a_search_finds(generation, model, batch, ctx):
    """DecodeRun's O(1) answer (the arithmetic series solved) is the binary search's answer:
    the smallest j whose first j steps end at or after the time, for spans inside and past
    the run; also where the CPU bounds the first steps (asynchronous scheduling, batch 1)."""
    pm = modern(model, generation=generation)
    run = DecodeRun(pm, batch, ctx)
    n = 2000
    total = pm.decode_run_time(batch, ctx, n)
    for frac in (0.0, 1e-9, 0.001, 0.37, 0.5, 0.999, 1.0, 1.5):
        at = 10.0 + total * frac
        expect = next(
            (j for j in range(1, n + 1) if 10.0 + pm.decode_run_time(batch, ctx, j) >= at), n + 1
        )
        assert run.steps_to_reach(n, 10.0, at) == expect
        assert run.time(n) == pm.decode_run_time(batch, ctx, n)
    if model == "opt-125m" and generation == "vllm-v1":  # the CPU bounds the first steps
        g0, g1, cpu = pm.decode_run_coefficients(batch, ctx)
        assert g0 < cpu < g0 + g1 * n
