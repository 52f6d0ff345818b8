"""Shared helpers for the simulator tests: an exact linear step-time model and schedule builders."""

from __future__ import annotations

import numpy as np

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine

U = 1 / 1024  # step times are integers of 1/1024 s, so float sums are exact


class LinearPerf:
    """A PerfModel with dyadic constants: skip-ahead sums equal step-by-step sums bit for bit."""

    def prefill_time(self, num_seqs: int, tokens: int, sum_sq_tokens: int) -> float:
        return (16 + tokens) * U

    def decode_time(self, batch_size: int, context_tokens: int) -> float:
        return (8 + batch_size + context_tokens) * U

    def decode_run_time(self, batch_size: int, context_tokens: int, num_steps: int) -> float:
        k, b = num_steps, batch_size
        return (k * (8 + b + context_tokens) + b * k * (k - 1) // 2) * U

    def mixed_time(
        self, prefill_tokens: int, prefill_sum_sq: int, decode_seqs: int, decode_context_tokens: int
    ) -> float:
        return (16 + prefill_tokens + decode_seqs + decode_context_tokens) * U


def schedule(
    prompts: list[int], outputs: list[int], arrivals: list[float] | None = None, **extra: list
) -> Schedule:
    arrivals = arrivals or [0.0] * len(prompts)
    items = []
    for i, (p, o, a) in enumerate(zip(prompts, outputs, arrivals, strict=True)):
        items.append(ScheduledRequest(Request(i, p, o), a))
    for key, values in extra.items():
        for it, v in zip(items, values, strict=True):
            setattr(it, key, v)
    return Schedule("test", items)


def random_schedule(n: int, seed: int, rate: float = 20.0) -> Schedule:
    """Random lengths and arrivals on the 1/1024 s grid (exact comparisons)."""
    rng = np.random.default_rng(seed)
    prompts = rng.integers(1, 300, n).tolist()
    outputs = rng.integers(1, 200, n).tolist()
    gaps = np.round(rng.exponential(1 / rate, n) * 1024) / 1024
    return schedule(prompts, outputs, np.cumsum(gaps).tolist())


class AsyncLinearPerf(LinearPerf):
    """The same step times for an engine that schedules step N+1 while step N runs."""

    async_scheduling = True


def run(sched: Schedule, *, perf: LinearPerf | None = None, **cfg):
    options = cfg.pop("options", {})
    config = EngineConfig(model="opt-13b", gpu="a100-40gb", options=options, **cfg)
    return SimEngine(perf=perf or LinearPerf()).run(sched, config)
