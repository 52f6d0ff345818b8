"""Measured step-time profiles (``workload-eval profile`` writes them) and the model fitted on one.

A profile is a list of timed steps (prefill, decode, mixed) of one engine on one machine;
``ProfilePerfModel`` fits linear step-time models to it so the simulator reproduces that
machine. Both the vLLM profiler (whole engine steps) and the torch profiler (the model's own
GEMMs and attention, ``engines/sim/torch_profile.py``) write this format.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import ConfigDict, Field, ValidationError

from workload_eval.errors import UserError
from workload_eval.inputs import read_json
from workload_eval.limits import MAX_ID, MAX_INT
from workload_eval.strict import NoBoolNumbers

PROFILE_FORMAT = "workload-eval-perf-profile/1"
MAX_STEP_TIME_S = 3600.0  # a measured engine step over an hour is not a measurement

# A measured step takes more than nothing and less than an hour; counts fit int32 and
# sums of squares int64 (limits), so a fitted model stays finite.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
_StepTime = Annotated[float, Field(gt=0, le=MAX_STEP_TIME_S)]


class _PrefillPoint(NoBoolNumbers):
    model_config = _STRICT
    num_seqs: int = Field(ge=1, le=MAX_INT)
    tokens: int = Field(ge=1, le=MAX_INT)
    sum_sq_tokens: int = Field(ge=1, le=MAX_ID)
    time_s: _StepTime


class _DecodePoint(NoBoolNumbers):
    model_config = _STRICT
    batch_size: int = Field(ge=1, le=MAX_INT)
    context_tokens: int = Field(ge=0, le=MAX_INT)
    time_s: _StepTime


class _MixedPoint(NoBoolNumbers):
    model_config = _STRICT
    prefill_tokens: int = Field(ge=0, le=MAX_INT)
    prefill_sum_sq: int = Field(ge=0, le=MAX_ID)
    decode_seqs: int = Field(ge=0, le=MAX_INT)
    decode_context_tokens: int = Field(ge=0, le=MAX_INT)
    time_s: _StepTime


class PerfProfile(NoBoolNumbers):
    """A measured step-time profile (``workload-eval profile`` writes it)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    format: Literal["workload-eval-perf-profile/1"]
    model: str = ""
    device: str = ""
    engine: str = ""
    block_size: int | None = None
    # False: GPU kernels only (``profile --engine torch``); the simulator adds CPU time.
    includes_engine_overheads: bool = True
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
