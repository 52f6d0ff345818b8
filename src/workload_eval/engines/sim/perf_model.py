"""How long one engine step takes: a roofline over the model and the GPU, or a measured profile.

The roofline costs each kind of kernel of a step on one GPU (the deployment's per-GPU shard,
``parallelism.py``) and adds them, because they run one after another:
- linear layers (attention projections, dense FFN, shared experts, LM head): weights read
  once per step vs 2 x tokens x parameters FLOPs, combined as a roofline with a partial
  overlap of the smaller side;
- routed experts: only the experts the batch touches are read; with T tokens each routed to
  k of E experts uniformly, E (1 - (1 - k/E)^T) distinct experts are expected;
- attention: decode reads the KV cache of every context token (bandwidth); prefill chunks
  compute c (2o + c) / 2 causal (query, key) pairs for c new tokens after o computed ones;
- tensor-parallel all-reduces (ring: per-hop latency plus message / link bandwidth), expert
  all-to-alls and pipeline-stage transfers;
- a per-layer kernel floor (launch and tail time no batch size removes);
- the engine's CPU time per step and per sequence: added to the GPU time, or overlapped with
  it (``max``) when the engine schedules asynchronously (vLLM >= 0.14).

The simulator's hot loop calls these tens of thousands of times per run, so every model
precomputes its coefficients at construction and a call is a handful of float operations.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

from workload_eval.engines.sim import calibration
from workload_eval.engines.sim.calibration import (
    PERF,
    InterconnectConstants,
    PerfConstants,
    StepCosts,
)
from workload_eval.engines.sim.hardware import GpuSpec
from workload_eval.engines.sim.parallelism import (
    Parallelism,
    allreduce_coefficients,
    shard_model,
)
from workload_eval.engines.sim.perf_profile import (  # noqa: F401  (re-exported)
    PROFILE_FORMAT,
    PerfProfile,
    ProfilePerfModel,
    fit_nonnegative,
)
from workload_eval.engines.sim.precision import Precision, resolve_precision
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec

# vLLM made asynchronous scheduling the default in 0.14.0 (January 2026, vllm PR #27614).
ASYNC_SCHEDULING_SINCE = (0, 14)


class PerfModel(Protocol):
    """Step durations in seconds; the simulator depends on nothing else."""

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float: ...

    def decode_time(self, batch_size: int, context_tokens: int) -> float: ...

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float: ...

    def mixed_time(
        self, prefill_tokens: int, prefill_sum_sq: int, decode_seqs: int, decode_context_tokens: int
    ) -> float: ...


def parse_version(version: str | None) -> tuple[int, int] | None:
    """'0.15.1' -> (0, 15); None or unparsable -> None."""
    if not version:
        return None
    parts = version.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def engine_generation(
    policy: str, vllm_version: str | None = None, async_scheduling: bool | None = None
) -> str:
    """Which ``calibration.GENERATIONS`` entry a policy and a vLLM version run with."""
    if policy == "vllm-0.2":
        return "vllm-0.2"
    if policy in ("vllm-v0", "vllm-0.x", "v0"):
        return "vllm-v0"
    if async_scheduling is None:
        v = parse_version(vllm_version)
        async_scheduling = v is None or v >= ASYNC_SCHEDULING_SINCE
    return "vllm-v1" if async_scheduling else "vllm-v1-sync"


def linear_params(model: ModelSpec) -> int:
    """Parameters multiplied per token in the transformer blocks (embeddings excluded)."""
    return model.active_linear_params


class RooflinePerfModel:
    """Step time from the deployment's per-GPU bytes and FLOPs (see the module docstring)."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        constants: PerfConstants | StepCosts = PERF,
        *,
        precision: Precision | None = None,
        parallelism: Parallelism | None = None,
        interconnect: InterconnectConstants | None = None,
    ) -> None:
        costs = constants.step_costs() if isinstance(constants, PerfConstants) else constants
        self.model, self.gpu, self.costs = model, gpu, costs
        self.precision = precision or resolve_precision(model, gpu)
        self.parallelism = parallelism or Parallelism()
        shard = shard_model(model, self.precision, self.parallelism)
        self.shard = shard
        k = costs.kernels
        bw = gpu.hbm_bandwidth * k.bw_efficiency
        gemm = gpu.tensor_flops(self.precision.compute) * k.gemm_efficiency
        attn = gpu.peak_flops * k.attn_efficiency  # attention runs in 16-bit
        dp = float(shard.data)
        self._dp = dp
        # Linear layers: weight-read time per step; GEMM time per token and per sampled seq.
        self._w = shard.static_weight_read / bw
        self._tok = shard.dense_flops_per_token / gemm
        self._head = shard.head_flops_per_seq / gemm
        self._loss = k.overlap_loss
        self._one_roofline = k.one_roofline
        self._w_all = model.weight_bytes / bw  # the paper-era form reads every parameter
        # Routed experts.
        self._moe = shard.num_experts > 0
        self._expert_w = shard.num_moe_layers * shard.local_experts * shard.expert_bytes / bw
        self._expert_tok = shard.expert_flops_per_token / gemm
        self._untouched = 1.0 - shard.experts_per_token / shard.num_experts if self._moe else 0.0
        self._expert_tokens_scale = 1.0 if self.parallelism.expert else 1.0 / dp
        # Attention: KV bytes per context token, FLOP time per sum_sq unit (causal pairs / 2).
        self._kv = shard.kv_read_per_token / bw
        # Decode attention is bandwidth-bound (GQA: heads/KV-heads FLOPs per byte) unless the
        # cache is a latent many heads attend to (MLA): its own roofline.
        self._dec_attn = shard.decode_attn_flops_per_pair / attn
        self._sq = shard.attn_flops_per_pair / 2 / attn
        # Collectives, kernel floor.
        link = gpu.link
        interconnect = interconnect or calibration.INTERCONNECT  # read now: fits patch it
        fixed, per_tok = allreduce_coefficients(
            shard, link, interconnect.hop_latency(link.kind), interconnect.link_efficiency
        )
        self._comm0, self._comm_tok = fixed, per_tok
        self._floor = k.layer_floor_s * shard.num_layers
        c = costs.cpu
        self._async = c.async_scheduling
        self._pre0, self._pre_seq = c.prefill_step_s, c.prefill_seq_s
        self._dec0, self._dec_seq = c.decode_step_s, c.decode_seq_s
        # Hot-path coefficients: per token of the whole batch (DP ranks split it).
        self._fixed = self._floor + fixed
        self._tok_dp, self._head_dp = self._tok / dp, self._head / dp
        self._ctx_dp = max(self._kv, self._dec_attn) / dp
        self._sq_dp = self._sq / dp
        self._comm_dp = per_tok / dp

    # ---- pieces ---------------------------------------------------------------------------
    def _roof(self, mem: float, comp: float) -> float:
        if mem >= comp:
            return mem + self._loss * comp
        return comp + self._loss * mem

    def _gpu(self, tokens: int, sampled: int, sum_sq: int, context: int) -> float:
        """GPU time of a forward pass over ``tokens`` tokens (all DP ranks together)."""
        if self._one_roofline:  # vLLM 0.2's form: one GPU, dense, no collectives
            mem = self._w_all + context * self._kv
            comp = tokens * self._tok + sampled * self._head + sum_sq * self._sq
            return mem + self._loss * comp if mem >= comp else comp + self._loss * mem
        w, comp = self._w, tokens * self._tok_dp + sampled * self._head_dp
        gpu = self._fixed + (w + self._loss * comp if w >= comp else comp + self._loss * w)
        if self._moe and tokens:
            touched = 1.0 - self._untouched ** (tokens * self._expert_tokens_scale)
            gpu += self._roof(self._expert_w * touched, tokens * self._expert_tok)
        return gpu + context * self._ctx_dp + sum_sq * self._sq_dp + tokens * self._comm_dp

    def _total(self, gpu: float, cpu: float) -> float:
        return max(gpu, cpu) if self._async else gpu + cpu

    # ---- PerfModel ------------------------------------------------------------------------
    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        gpu = self._gpu(tokens, num_seqs, sum_sq_tokens, tokens)
        return self._total(gpu, self._pre0 + num_seqs * self._pre_seq)

    def decode_time(self, batch_size: int, context_tokens: int) -> float:
        gpu = self._gpu(batch_size, batch_size, 0, context_tokens)
        cpu = self._dec0 + batch_size * self._dec_seq
        if self._async:
            return gpu if gpu > cpu else cpu
        return gpu + cpu

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float:
        """Sum of ``num_steps`` decode steps, context growing by ``batch_size`` each step."""
        if num_steps <= 0:
            return 0.0
        if self._one_roofline:
            return self._one_roofline_decode_run(batch_size, context_tokens, num_steps)
        return self.decode_series_time(
            self.decode_run_coefficients(batch_size, context_tokens), num_steps
        )

    def decode_run_coefficients(
        self, batch_size: int, context_tokens: int
    ) -> tuple[float, float, float] | None:
        """(g0, g1, cpu): step k of a decode run takes g0 + g1 k on the GPU and cpu on the CPU,
        added, or overlapped with asynchronous scheduling. A scheduler computes them once per
        run and gets any prefix of the run in O(1) (``decode_series_time``); None for the
        one-roofline (vLLM 0.2) form."""
        if self._one_roofline:
            return None
        b = batch_size
        return self._gpu(b, b, 0, context_tokens), b * self._ctx_dp, self._dec0 + b * self._dec_seq

    def decode_series_time(self, series: tuple[float, float, float], num_steps: int) -> float:
        """The first ``num_steps`` steps of a run given its ``decode_run_coefficients``."""
        n = num_steps
        if n <= 0:
            return 0.0
        g0, g1, cpu = series
        gpu_sum = n * g0 + g1 * n * (n - 1) / 2
        if not self._async:
            return gpu_sum + n * cpu
        if g0 >= cpu:
            j = 0
        elif g1 <= 0:
            j = n
        else:  # steps k < j are CPU-bound
            j = min(n, math.ceil((cpu - g0) / g1))
        return j * cpu + gpu_sum - (j * g0 + g1 * j * (j - 1) / 2)

    def _one_roofline_decode_run(self, b: int, context_tokens: int, n: int) -> float:
        """Closed form of ``decode_run_time`` for the one-roofline (vLLM 0.2) form."""
        comp = b * (self._tok + self._head)
        m0 = self._w_all + context_tokens * self._kv
        m1 = b * self._kv
        # step k: mem_k = m0 + m1 k; time = mem_k + comp - (1 - loss) * min(mem_k, comp)
        total = n * (self._dec0 + b * self._dec_seq + comp + m0) + m1 * n * (n - 1) / 2
        if m0 >= comp:
            j = 0
        elif m1 <= 0:
            j = n
        else:  # steps k < j are compute-bound (mem_k < comp)
            j = min(n, math.ceil((comp - m0) / m1))
        sum_min = j * m0 + m1 * j * (j - 1) / 2 + (n - j) * comp
        return total - (1 - self._loss) * sum_min

    def mixed_time(
        self, prefill_tokens: int, prefill_sum_sq: int, decode_seqs: int, decode_context_tokens: int
    ) -> float:
        """A chunked-prefill step: prompt chunks and decodes share one forward pass."""
        sampled = decode_seqs + (1 if prefill_tokens else 0)
        gpu = self._gpu(
            prefill_tokens + decode_seqs,
            sampled,
            prefill_sum_sq,
            decode_context_tokens + prefill_tokens,
        )
        cpu = (self._dec0 if decode_seqs else self._pre0) + decode_seqs * self._dec_seq
        if prefill_tokens:
            cpu += self._pre_seq
        return self._total(gpu, cpu)

    @property
    def async_scheduling(self) -> bool:
        """Whether the engine schedules step N+1 while step N runs (vLLM >= 0.14): a request
        arriving during step N then first runs in step N+2 (the policy applies that lag)."""
        return self._async

    # ---- parts a kernels-only profile borrows ----------------------------------------------
    def comm_time(self, tokens: int) -> float:
        """Collectives of a step over ``tokens`` tokens."""
        return self._comm0 + tokens * self._comm_dp

    def with_cpu(self, gpu: float, cpu: float) -> float:
        return self._total(gpu, cpu)

    def cpu_time(self, decode_seqs: int, prefill_seqs: int) -> float:
        if decode_seqs:
            return self._dec0 + decode_seqs * self._dec_seq + prefill_seqs * self._pre_seq
        return self._pre0 + prefill_seqs * self._pre_seq


class DecodeRun:
    """The decode steps of one batch from a context on (context growing by the batch each
    step): the duration of any prefix, and how many steps reach a time. With a model's
    ``decode_run_coefficients`` each query is O(1); otherwise ``decode_run_time`` and a
    binary search. The answers are exactly ``decode_run_time``'s either way."""

    __slots__ = ("_async", "_b", "_ctx", "_perf", "_series", "_series_time")

    def __init__(self, perf: PerfModel, batch_size: int, context_tokens: int) -> None:
        self._perf, self._b, self._ctx = perf, batch_size, context_tokens
        coefficients = getattr(perf, "decode_run_coefficients", None)
        self._series = coefficients(batch_size, context_tokens) if coefficients else None
        self._series_time = getattr(perf, "decode_series_time", None)
        self._async = bool(getattr(perf, "async_scheduling", False))

    def time(self, num_steps: int) -> float:
        """Duration of the first ``num_steps`` steps."""
        if self._series is not None:
            return self._series_time(self._series, num_steps)
        return self._perf.decode_run_time(self._b, self._ctx, num_steps)

    def steps_to_reach(self, num_steps: int, start: float, at: float) -> int:
        """Smallest j in 1..num_steps with ``start + time(j) >= at``; num_steps + 1 if none."""
        run = self.time
        if self._series is None:
            if start + run(num_steps) < at:
                return num_steps + 1
            lo, hi = 1, num_steps
            while lo < hi:
                mid = (lo + hi) // 2
                if start + run(mid) >= at:
                    hi = mid
                else:
                    lo = mid + 1
            return lo
        g0, g1, cpu = self._series
        guess = _series_steps(g0, g1, cpu, at - start) if self._async else None
        if guess is None:
            guess = _series_steps(g0 + cpu, g1, 0.0, at - start)
        j = min(max(guess, 1), num_steps)  # exact for the series; checked against rounding
        while j > 1 and start + run(j - 1) >= at:
            j -= 1
        while j <= num_steps and start + run(j) < at:
            j += 1
        return j


def _series_steps(a: float, slope: float, floor: float, span: float) -> int:
    """Smallest j whose steps max(a + slope k, floor), k < j, add up to at least ``span``."""
    if span <= 0:
        return 1
    if a >= floor:
        cpu_bound = 0
    elif slope <= 0:
        return math.ceil(span / floor)
    else:
        cpu_bound = math.ceil((floor - a) / slope)
    if span <= cpu_bound * floor:
        return math.ceil(span / floor)
    rest, a = span - cpu_bound * floor, a + slope * cpu_bound
    if slope <= 0:
        return cpu_bound + math.ceil(rest / a) if a > 0 else cpu_bound + 1
    half = a - slope / 2  # slope/2 m^2 + (a - slope/2) m >= rest
    return cpu_bound + math.ceil((math.sqrt(half * half + 2 * slope * rest) - half) / slope)


class KernelProfilePerfModel:
    """A kernels-only profile (``profile --engine torch``) plus the engine's CPU time and
    the deployment's collectives, taken from the roofline of the same deployment."""

    def __init__(self, profile: ProfilePerfModel, roofline: RooflinePerfModel) -> None:
        self.profile, self.roofline = profile, roofline
        self.async_scheduling = roofline.async_scheduling

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        r = self.roofline
        gpu = self.profile.prefill_time(num_seqs, tokens, sum_sq_tokens) + r.comm_time(tokens)
        return r.with_cpu(gpu, r.cpu_time(0, num_seqs))

    def decode_time(self, batch_size: int, context_tokens: int) -> float:
        r = self.roofline
        gpu = self.profile.decode_time(batch_size, context_tokens) + r.comm_time(batch_size)
        return r.with_cpu(gpu, r.cpu_time(batch_size, 0))

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float:
        b = batch_size
        return sum(self.decode_time(b, context_tokens + b * k) for k in range(num_steps))

    def mixed_time(
        self, prefill_tokens: int, prefill_sum_sq: int, decode_seqs: int, decode_context_tokens: int
    ) -> float:
        r = self.roofline
        gpu = self.profile.mixed_time(
            prefill_tokens, prefill_sum_sq, decode_seqs, decode_context_tokens
        ) + r.comm_time(prefill_tokens + decode_seqs)
        return r.with_cpu(gpu, r.cpu_time(decode_seqs, 1 if prefill_tokens else 0))


def build_perf_model(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    profile: str | Path | None = None,
    generation: str = "vllm-0.2",
    precision: Precision | None = None,
    parallelism: Parallelism | None = None,
) -> PerfModel:
    """The measured profile when one is given, else the calibrated roofline for the deployment."""
    costs = calibration.GENERATIONS.get(generation)
    if costs is None:
        known = ", ".join(calibration.GENERATIONS)
        raise UserError(f"unknown engine generation {generation!r}: expected one of {known}")
    measured = ProfilePerfModel.from_file(profile) if profile is not None else None
    if measured is not None and measured.profile.includes_engine_overheads:
        return measured
    roofline = RooflinePerfModel(model, gpu, costs, precision=precision, parallelism=parallelism)
    if measured is not None:
        return KernelProfilePerfModel(measured, roofline)
    return roofline
