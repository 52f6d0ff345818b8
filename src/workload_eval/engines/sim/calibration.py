"""Every fitted constant of the simulator's performance and memory models, with its source.

The constants are hardware-efficiency-like (achieved fractions of datasheet bandwidth and
FLOP/s) or engine-overhead-like (fixed time per step, time per sequence per step). None is
per-workload or per-point: the same numbers serve every model, GPU and workload.
``scripts/fit_perf_model.py`` re-fits the overheads on the simulator itself;
``docs/simulator-accuracy.md`` explains the fit and where a refit lands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActivationConstants:
    """Peak activation memory of vLLM 0.2's profiling pass (hardware.profile_activation_bytes)."""

    # Bytes per (dummy sequence x vocabulary entry) held by the sampler at its peak: fp32
    # logits, probabilities, log-probabilities, sorted copies and int64 sort indices.
    sampler_bytes_per_logit: float = 55.43


@dataclass(frozen=True)
class PerfConstants:
    """Roofline efficiencies and engine overheads (seconds, fractions of datasheet peaks)."""

    # Achieved fraction of HBM bandwidth for weight and KV-cache reads.
    bw_efficiency: float = 0.68
    # Achieved fraction of dense fp16 tensor FLOP/s for the linear layers (GEMMs).
    gemm_efficiency: float = 0.574
    # Achieved fraction of tensor FLOP/s for prefill attention (4 * layers * hidden * L^2 FLOPs).
    attn_efficiency: float = 0.325
    # Fraction of the smaller of (memory time, compute time) not hidden under the larger one.
    overlap_loss: float = 0.43
    # Fixed engine time per step (scheduling, input preparation, launch overheads).
    prefill_step_overhead: float = 1.25e-4
    decode_step_overhead: float = 1.125e-3
    # Engine time per sequence in a step (vLLM 0.2's per-sequence Python work: scheduling,
    # block tables, input preparation, sampling). One value for both step kinds.
    prefill_seq_overhead: float = 1.0625e-4
    decode_seq_overhead: float = 1.0625e-4


ACTIVATION = ActivationConstants()
PERF = PerfConstants()

# Where each constant comes from (docs/simulator-accuracy.md renders them as a table).
SOURCES: dict[str, str] = {
    "sampler_bytes_per_logit": (
        "solved from the calibration's five (kv_blocks, gpu_memory_utilization) pairs of "
        "OPT-13B on A100-40GB (643@0.95, 600@0.9367, 450@0.8902, 300@0.8437, 150@0.7972) with "
        "the A100-40GB runtime total of 39.39 GiB: all five pairs are reproduced exactly for "
        "55.37..55.48 bytes; the midpoint is used"
    ),
    "bw_efficiency": (
        "DistServe's fit of vLLM decode on OPT-13B/A100-80GB: 5.93e-4 ms per context token = "
        "819200 KV bytes/token at 2039 GB/s x 0.68"
    ),
    "gemm_efficiency": (
        "DistServe's prefill fit on OPT-13B/A100-80GB: 0.1405 ms per token = 2 x 12.58e9 "
        "linear-layer FLOPs at 312 TFLOP/s x 0.574"
    ),
    "attn_efficiency": (
        "DistServe's prefill fit: 8.08e-6 ms per L^2 = 4 x 40 layers x 5120 FLOPs at "
        "312 TFLOP/s x 0.325"
    ),
    "overlap_loss": (
        "DistServe's decode fit, B < 95: 0.0607 ms per sequence = 0.43 x the GEMM time of one "
        "token (0.1405 ms) while decode is bandwidth-bound"
    ),
    "prefill_step_overhead": (
        "fitted (scripts/fit_perf_model.py, efficiencies above held fixed) to the paper's "
        "offline request throughput of alpaca and cnn_dailymail, N=1000, all five KV sizes, "
        "EOS-matched output lengths; dolly and sharegpt held out"
    ),
    "decode_step_overhead": "fitted with prefill_step_overhead (same points)",
    "prefill_seq_overhead": "set equal to decode_seq_overhead (the same per-sequence work)",
    "decode_seq_overhead": "fitted with prefill_step_overhead (same points)",
}
