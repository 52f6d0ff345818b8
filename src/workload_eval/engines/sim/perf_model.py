"""How long one engine step takes: a roofline over the model and the GPU, or a measured profile.

The simulator's hot loop calls these tens of thousands of times per run, so every model
precomputes its coefficients at construction and a call is a handful of float operations.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workload_eval.engines.sim.calibration import PERF, PerfConstants
from workload_eval.engines.sim.hardware import GpuSpec
from workload_eval.errors import UserError
from workload_eval.inputs import read_json
from workload_eval.limits import MAX_ID, MAX_INT
from workload_eval.models import ModelSpec

MAX_STEP_TIME_S = 3600.0  # a measured engine step over an hour is not a measurement


class PerfModel(Protocol):
    """Step durations in seconds; the simulator depends on nothing else."""

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float: ...

    def decode_time(self, batch_size: int, context_tokens: int) -> float: ...

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float: ...

    def mixed_time(
        self, prefill_tokens: int, prefill_sum_sq: int, decode_seqs: int, decode_context_tokens: int
    ) -> float: ...


def linear_params(model: ModelSpec) -> int:
    """Parameters multiplied per token in the transformer blocks (embeddings excluded)."""
    h = model.hidden_size
    kv_dim = model.kv_heads * model.head_dim
    attn = 2 * h * h + 2 * h * kv_dim
    mlp = (3 if model.gated_ffn else 2) * h * model.ffn_size
    return model.num_layers * (attn + mlp)


class RooflinePerfModel:
    """Step time = overheads + max(memory, compute) + overlap_loss * min(memory, compute).

    Memory: weights, plus KV-cache reads (decode) or writes (prefill), at achieved HBM
    bandwidth. Compute: linear-layer GEMMs for every computed token, the LM head for every
    sampled sequence, and prefill attention (proportional to the sum of squared prompt lengths).
    Decode attention is bandwidth-bound and is costed by its KV reads.
    """

    def __init__(self, model: ModelSpec, gpu: GpuSpec, constants: PerfConstants = PERF) -> None:
        self.model, self.gpu, self.constants = model, gpu, constants
        c = constants
        bw = gpu.hbm_bandwidth * c.bw_efficiency
        gemm = gpu.peak_flops * c.gemm_efficiency
        attn = gpu.peak_flops * c.attn_efficiency
        # Seconds per unit: weights once per step, one KV token, one computed token,
        # one sampled sequence (LM head), one squared prompt token.
        self._t_weights = model.weight_bytes / bw
        self._t_kv = model.kv_bytes_per_token / bw
        self._t_tok = 2 * linear_params(model) / gemm
        self._t_head = 2 * model.hidden_size * model.vocab_size / gemm
        self._t_sq = 4 * model.num_layers * model.hidden_size / attn
        self._loss = c.overlap_loss
        self._pre0, self._pre_seq = c.prefill_step_overhead, c.prefill_seq_overhead
        self._dec0, self._dec_seq = c.decode_step_overhead, c.decode_seq_overhead

    def _combine(self, mem: float, comp: float) -> float:
        if mem >= comp:
            return mem + self._loss * comp
        return comp + self._loss * mem

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        mem = self._t_weights + tokens * self._t_kv
        comp = tokens * self._t_tok + num_seqs * self._t_head + sum_sq_tokens * self._t_sq
        return self._pre0 + num_seqs * self._pre_seq + self._combine(mem, comp)

    def decode_time(self, batch_size: int, context_tokens: int) -> float:
        mem = self._t_weights + context_tokens * self._t_kv
        comp = batch_size * (self._t_tok + self._t_head)
        return self._dec0 + batch_size * self._dec_seq + self._combine(mem, comp)

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float:
        """Sum of ``num_steps`` decode steps, context growing by ``batch_size`` each step."""
        n = num_steps
        if n <= 0:
            return 0.0
        b = batch_size
        comp = b * (self._t_tok + self._t_head)
        m0 = self._t_weights + context_tokens * self._t_kv
        m1 = b * self._t_kv
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
        mem = self._t_weights + (decode_context_tokens + prefill_tokens) * self._t_kv
        sampled = decode_seqs + (1 if prefill_tokens else 0)
        comp = (
            (prefill_tokens + decode_seqs) * self._t_tok
            + sampled * self._t_head
            + prefill_sum_sq * self._t_sq
        )
        overhead = self._dec0 if decode_seqs else self._pre0
        return overhead + decode_seqs * self._dec_seq + self._combine(mem, comp)


# ---------------------------------------------------------------------------------------------
# Measured profiles

PROFILE_FORMAT = "workload-eval-perf-profile/1"


# A measured step takes more than nothing and less than an hour; counts fit int32 and
# sums of squares int64 (limits), so a fitted model stays finite.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
_StepTime = Annotated[float, Field(gt=0, le=MAX_STEP_TIME_S)]


class _PrefillPoint(BaseModel):
    model_config = _STRICT
    num_seqs: int = Field(ge=1, le=MAX_INT)
    tokens: int = Field(ge=1, le=MAX_INT)
    sum_sq_tokens: int = Field(ge=1, le=MAX_ID)
    time_s: _StepTime


class _DecodePoint(BaseModel):
    model_config = _STRICT
    batch_size: int = Field(ge=1, le=MAX_INT)
    context_tokens: int = Field(ge=0, le=MAX_INT)
    time_s: _StepTime


class _MixedPoint(BaseModel):
    model_config = _STRICT
    prefill_tokens: int = Field(ge=0, le=MAX_INT)
    prefill_sum_sq: int = Field(ge=0, le=MAX_ID)
    decode_seqs: int = Field(ge=0, le=MAX_INT)
    decode_context_tokens: int = Field(ge=0, le=MAX_INT)
    time_s: _StepTime


class PerfProfile(BaseModel):
    """A measured step-time profile (``workload-eval profile`` writes it)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    format: Literal["workload-eval-perf-profile/1"]
    model: str = ""
    device: str = ""
    engine: str = ""
    block_size: int | None = None
    prefill: list[_PrefillPoint] = Field(min_length=1)
    decode: list[_DecodePoint] = Field(min_length=1)
    mixed: list[_MixedPoint] = Field(default_factory=list)


def fit_nonnegative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0 (drop the most negative one and refit)."""
    active = list(range(x.shape[1]))
    coef = np.zeros(x.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(x[:, active], y, rcond=None)
        if (sol >= 0).all():
            coef[active] = sol
            return coef
        active.pop(int(np.argmin(sol)))
    return coef


class ProfilePerfModel:
    """Linear step-time models fitted by least squares on a measured profile.

    prefill = a0 + a1 num_seqs + a2 tokens + a3 sum_sq;  decode = b0 + b1 batch + b2 context,
    with a second decode segment above a fitted batch-size breakpoint when that fits better
    (as DistServe's two-piece fit); mixed = c0 + c1 tokens + c2 sum_sq + c3 seqs + c4 context,
    or, without mixed points, the prefill fit plus the decode fit's marginal terms.
    """

    def __init__(self, profile: PerfProfile, source: str = "") -> None:
        self.profile, self.source = profile, source
        pre = profile.prefill
        xp = np.array([[1, p.num_seqs, p.tokens, p.sum_sq_tokens] for p in pre], dtype=float)
        self.prefill_coef = fit_nonnegative(xp, np.array([p.time_s for p in pre]))
        self.decode_break, self.decode_coef = self._fit_decode(profile.decode)
        if profile.mixed:
            mx = profile.mixed
            xm = np.array(
                [
                    [1, m.prefill_tokens, m.prefill_sum_sq, m.decode_seqs, m.decode_context_tokens]
                    for m in mx
                ],
                dtype=float,
            )
            self.mixed_coef = fit_nonnegative(xm, np.array([m.time_s for m in mx]))
        else:
            a0, _, a2, a3 = self.prefill_coef
            b1, b2 = self.decode_coef[-1][1:]
            self.mixed_coef = np.array([a0, a2, a3, b1, b2])
        self._pre = tuple(float(v) for v in self.prefill_coef)
        self._dec = [tuple(float(v) for v in c) for c in self.decode_coef]
        self._mix = tuple(float(v) for v in self.mixed_coef)

    @staticmethod
    def _fit_decode(points: list[_DecodePoint]) -> tuple[int | None, list[np.ndarray]]:
        x = np.array([[1, p.batch_size, p.context_tokens] for p in points], dtype=float)
        y = np.array([p.time_s for p in points])
        one = fit_nonnegative(x, y)
        best_sse = float(((x @ one - y) ** 2).sum())
        best: tuple[int | None, list[np.ndarray]] = (None, [one])
        batches = sorted({p.batch_size for p in points})
        for brk in batches[1:]:
            lo, hi = x[:, 1] < brk, x[:, 1] >= brk
            if lo.sum() < 4 or hi.sum() < 4:
                continue
            c_lo, c_hi = fit_nonnegative(x[lo], y[lo]), fit_nonnegative(x[hi], y[hi])
            sse = float(((x[lo] @ c_lo - y[lo]) ** 2).sum() + ((x[hi] @ c_hi - y[hi]) ** 2).sum())
            if sse < 0.8 * best_sse:  # a second segment must earn its parameters
                best_sse, best = sse, (brk, [c_lo, c_hi])
        return best

    @classmethod
    def from_file(cls, path: str | Path) -> ProfilePerfModel:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"--perf-profile {p}: no such file")
        raw = read_json(p)  # bounded, UTF-8, strict (no NaN/Infinity)
        try:
            profile = PerfProfile.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(v) for v in err["loc"])
            raise UserError(
                f"{p}: field {loc or '(top level)'}: {err['msg']} (expected a "
                f"{PROFILE_FORMAT} profile)"
            ) from None
        model = cls(profile, source=str(p))
        model.check_fit()
        return model

    def check_fit(self) -> None:
        """A fit that predicts no time for a step would give infinite throughput silently."""
        coefs = [*self._pre, *(c for seg in self._dec for c in seg), *self._mix]
        first_pre, first_dec = self.profile.prefill[0], self.profile.decode[0]
        times = (
            self.prefill_time(first_pre.num_seqs, first_pre.tokens, first_pre.sum_sq_tokens),
            self.decode_time(first_dec.batch_size, first_dec.context_tokens),
        )
        if not all(math.isfinite(c) for c in coefs) or not min(times) > 0:
            raise UserError(
                f"{self.source}: the measured step times fit to a model that predicts no "
                "time for a step (check the profile's time_s values)"
            )

    def _decode_coef(self, batch_size: int) -> tuple[float, ...]:
        if self.decode_break is not None and batch_size >= self.decode_break:
            return self._dec[1]
        return self._dec[0]

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        a0, a1, a2, a3 = self._pre
        return a0 + a1 * num_seqs + a2 * tokens + a3 * sum_sq_tokens

    def decode_time(self, batch_size: int, context_tokens: int) -> float:
        b0, b1, b2 = self._decode_coef(batch_size)
        return b0 + b1 * batch_size + b2 * context_tokens

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float:
        if num_steps <= 0:
            return 0.0
        b0, b1, b2 = self._decode_coef(batch_size)
        n = num_steps
        return n * (b0 + b1 * batch_size + b2 * context_tokens) + b2 * batch_size * n * (n - 1) / 2

    def mixed_time(
        self, prefill_tokens: int, prefill_sum_sq: int, decode_seqs: int, decode_context_tokens: int
    ) -> float:
        c0, c1, c2, c3, c4 = self._mix
        return (
            c0
            + c1 * prefill_tokens
            + c2 * prefill_sum_sq
            + c3 * decode_seqs
            + c4 * decode_context_tokens
        )


def build_perf_model(
    model: ModelSpec, gpu: GpuSpec, *, profile: str | Path | None = None
) -> PerfModel:
    """The measured profile when one is given, else the calibrated roofline for (model, gpu)."""
    if profile is not None:
        return ProfilePerfModel.from_file(profile)
    return RooflinePerfModel(model, gpu)
