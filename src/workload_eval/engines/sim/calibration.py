"""Every fitted constant of the simulator's performance and memory models, with its source.

The constants are hardware-efficiency-like (achieved fractions of datasheet bandwidth and
FLOP/s, a per-layer kernel floor, a per-hop link latency) or engine-overhead-like (CPU time
per step and per sequence of one vLLM generation). None is per-model, per-workload or
per-point: the same numbers serve every model, GPU and workload of an engine generation.

Two calibrations live here:
- the seed paper's vLLM 0.2.1 on A100 (``PERF``, ``ACTIVATION.sampler_bytes_per_logit``):
  ``scripts/fit_perf_model.py`` re-fits the overheads on the simulator itself against the
  paper's tables (``engines/sim/fitting.py``);
- current vLLM (V0 0.3-0.10, V1 0.8+) on H100 (``MODERN_KERNELS``, ``V0``, ``V1_SYNC``,
  ``V1_ASYNC``, ``INTERCONNECT``, ``MEMORY``): ``scripts/fit_real_gpu.py`` fits them to
  ``../shared/real-gpu/calib`` by simulating every experiment with the shipped simulator;
  ``CALIBRATION_RECORD`` (``calibration_record.json``) keeps the per-experiment errors that
  say which deployments are backed by measurements (``engines/sim/backing.py``).
``docs/simulator-accuracy.md`` explains both fits.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ActivationConstants:
    """Peak activation memory of vLLM's profiling pass (engines/sim/memory.py)."""

    # vLLM 0.2: bytes per (dummy sequence x vocabulary entry) held by the sampler at its
    # peak: fp32 logits, probabilities, log-probabilities, sorted copies and int64 indices.
    sampler_bytes_per_logit: float = 55.43
    # vLLM 0.3+: hidden-wide buffers per token alive at the FFN's peak (residual, norm
    # output, attention output, FFN input/output, QKV), at the activation dtype.
    hidden_buffers: float = 6.0
    # vLLM 0.3+: the dummy sampler's fp32 logits and probabilities per row x vocabulary entry.
    v1_sampler_bytes_per_logit: float = 8.0


@dataclass(frozen=True)
class MemoryConstants:
    """Memory vLLM 0.3+ charges outside torch's allocator, per GPU."""

    non_torch_bytes_tp1: float = 0.09 * 1024**3
    non_torch_bytes_multi_gpu: float = 0.50 * 1024**3  # + NCCL and custom all-reduce buffers
    cudagraph_pool_bytes: float = 0.5 * 1024**3  # vLLM >= 0.21 reserves the graph pool


@dataclass(frozen=True)
class PerfConstants:
    """The paper's vLLM 0.2.1 on A100: roofline efficiencies and engine overheads."""

    # Achieved fraction of HBM bandwidth for weight and KV-cache reads.
    bw_efficiency: float = 0.68
    # Achieved fraction of dense fp16 tensor FLOP/s for the linear layers (GEMMs).
    gemm_efficiency: float = 0.574
    # Achieved fraction of tensor FLOP/s for prefill attention, over the causal FLOPs
    # (2 x layers x hidden x L^2 for a prompt of L tokens).
    attn_efficiency: float = 0.1625
    # Fraction of the smaller of (memory time, compute time) not hidden under the larger one.
    overlap_loss: float = 0.43
    # Fixed engine time per step (scheduling, input preparation, launch overheads).
    prefill_step_overhead: float = 1.25e-4
    decode_step_overhead: float = 1.125e-3
    # Engine time per sequence in a step (vLLM 0.2's per-sequence Python work: scheduling,
    # block tables, input preparation, sampling). One value for both step kinds.
    prefill_seq_overhead: float = 1.0625e-4
    decode_seq_overhead: float = 1.0625e-4

    def step_costs(self) -> StepCosts:
        """The same constants in the generation-independent form the roofline consumes."""
        return StepCosts(
            kernels=KernelConstants(
                bw_efficiency=self.bw_efficiency,
                gemm_efficiency=self.gemm_efficiency,
                attn_efficiency=self.attn_efficiency,
                overlap_loss=self.overlap_loss,
                layer_floor_s=0.0,
                one_roofline=True,
            ),
            cpu=CpuOverheads(
                prefill_step_s=self.prefill_step_overhead,
                decode_step_s=self.decode_step_overhead,
                prefill_seq_s=self.prefill_seq_overhead,
                decode_seq_s=self.decode_seq_overhead,
                async_scheduling=False,
            ),
        )


@dataclass(frozen=True)
class KernelConstants:
    """How close one era's kernels come to the GPU's datasheet peaks."""

    bw_efficiency: float  # achieved fraction of HBM bandwidth (weights, KV cache)
    gemm_efficiency: float  # achieved fraction of dense tensor FLOP/s in GEMMs
    attn_efficiency: float  # achieved fraction of tensor FLOP/s in prefill attention
    overlap_loss: float  # share of min(memory, compute) time of a GEMM not overlapped
    layer_floor_s: float  # GPU time per layer per step no batch shrinks (kernel floors)
    # True: a step's memory and compute (attention included) form ONE roofline, the form
    # DistServe fitted vLLM 0.2 on A100 with (its large-batch decode is cheaper than separate
    # attention and GEMM kernels would add up to); False: each kind of kernel is its own.
    one_roofline: bool = False


@dataclass(frozen=True)
class CpuOverheads:
    """An engine generation's CPU time per step: scheduling, input preparation, sampling."""

    prefill_step_s: float
    decode_step_s: float
    prefill_seq_s: float
    decode_seq_s: float
    # True: the CPU prepares step N+1 while the GPU runs step N (vLLM >= 0.14 default), so
    # a step lasts max(GPU, CPU); False: GPU + CPU.
    async_scheduling: bool


@dataclass(frozen=True)
class StepCosts:
    kernels: KernelConstants
    cpu: CpuOverheads


@dataclass(frozen=True)
class InterconnectConstants:
    """Collective costs: per-hop latency by link kind, achieved fraction of link bandwidth."""

    nvlink_hop_latency_s: float = 2.0e-6
    xgmi_hop_latency_s: float = 3.0e-6
    pcie_hop_latency_s: float = 8.0e-6
    link_efficiency: float = 0.8

    def hop_latency(self, kind: str) -> float:
        return {
            "nvlink": self.nvlink_hop_latency_s,
            "xgmi": self.xgmi_hop_latency_s,
        }.get(kind, self.pcie_hop_latency_s)


ACTIVATION = ActivationConstants()
MEMORY = MemoryConstants()
PERF = PerfConstants()
INTERCONNECT = InterconnectConstants(nvlink_hop_latency_s=1.03e-6)

# Kernels of vLLM 0.3+ (FlashAttention, CUDA graphs, cuBLAS/CUTLASS GEMMs, fused MoE).
# Fitted by scripts/fit_real_gpu.py on ../shared/real-gpu/calib (see SOURCES).
MODERN_KERNELS = KernelConstants(
    bw_efficiency=0.87,
    gemm_efficiency=0.6435,
    attn_efficiency=0.5,
    overlap_loss=0.387,
    layer_floor_s=45e-6,
)
V0 = CpuOverheads(
    prefill_step_s=1.295e-3,
    decode_step_s=1.295e-3,
    prefill_seq_s=34.7e-6,
    decode_seq_s=34.7e-6,
    async_scheduling=False,
)
V1_SYNC = CpuOverheads(
    prefill_step_s=0.471e-3,
    decode_step_s=0.471e-3,
    prefill_seq_s=15e-6,
    decode_seq_s=15e-6,
    async_scheduling=False,
)
# The same CPU work as V1_SYNC, overlapped with the GPU (vLLM >= 0.14).
V1_ASYNC = dataclasses.replace(V1_SYNC, async_scheduling=True)
# Engine generation -> step costs. Keys are what engines/sim/generations.py resolves to.
GENERATIONS: dict[str, StepCosts] = {
    "vllm-0.2": PERF.step_costs(),
    "vllm-v0": StepCosts(MODERN_KERNELS, V0),
    "vllm-v1-sync": StepCosts(MODERN_KERNELS, V1_SYNC),
    "vllm-v1": StepCosts(MODERN_KERNELS, V1_ASYNC),
}

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
        "DistServe's prefill fit: 8.08e-6 ms per L^2 = 2 x 40 layers x 5120 causal FLOPs at "
        "312 TFLOP/s x 0.1625"
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
    "MODERN_KERNELS": (
        "bw/gemm efficiency, overlap loss and layer floor fitted by scripts/fit_real_gpu.py "
        "(validate on ../shared/real-gpu/calib: 17 H100 experiments, 369 scored cells; a first "
        "pass with a compact harness, then one sweep on validate itself); attn_efficiency is "
        "a prior (FlashAttention ~50% of peak on causal prefill): the calib's prompts are "
        "prefix-cached or short"
    ),
    "V0": "fitted by scripts/fit_real_gpu.py on the calib's vLLM 0.9 V0 run (3 stages)",
    "V1_SYNC": "fitted by scripts/fit_real_gpu.py on the calib's vLLM 0.11 V1 runs (4 files)",
    "V1_ASYNC": (
        "the same CPU work as V1_SYNC, overlapped (vLLM >= 0.14); hidden under the GPU in "
        "every calib run (vLLM 0.15.1), so not separately identifiable"
    ),
    "nvlink_hop_latency_s": "fitted by scripts/fit_real_gpu.py on the calib's TP2/TP4 runs",
    "xgmi_hop_latency_s": "not measured: 1.5x NVLink's (no switch, one hop per peer)",
    "pcie_hop_latency_s": "not measured: PCIe peer round trip of a few microseconds x ~2",
    "link_efficiency": "not fitted: NCCL bus bandwidth is ~80% of the link's on NVLink",
    "non_torch_bytes_tp1": (
        "solved from the calib's num_gpu_blocks (Llama-2-7B TP1 on H100, 7463 blocks at 0.9)"
    ),
    "non_torch_bytes_multi_gpu": (
        "solved from the calib's num_gpu_blocks of Llama-2-70B TP4, Mixtral TP2, CodeLlama-34B "
        "TP2 (0.45-0.55 GiB; the midpoint)"
    ),
    "cudagraph_pool_bytes": "not measured: a typical 'Estimated CUDA graph memory' line",
}

RECORD_PATH = Path(__file__).with_name("calibration_record.json")


def load_calibration_record() -> dict:
    """Per-experiment results of the last fit (scripts/fit_real_gpu.py writes the file)."""
    try:
        return json.loads(RECORD_PATH.read_text())
    except FileNotFoundError:
        return {"experiments": []}
