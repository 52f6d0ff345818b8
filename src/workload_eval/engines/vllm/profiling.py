"""Measure a real engine's step times so the simulator can model this very machine.

The engine core runs in this thread (no multiprocessing), so one ``step()`` runs exactly one
engine iteration (scheduling, the forward pass, sampling, the scheduler's update), which is
what is timed; the client's output handling is not, as it overlaps in real runs. Each point
is the median of a few repeats; the output is the ``workload-eval-perf-profile/1`` JSON
that ``ProfilePerfModel`` fits.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, JsonValue

from workload_eval.contracts import Request
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim.perf_profile import PROFILE_FORMAT  # the format it fits
from workload_eval.errors import UserError
from workload_eval.storage import atomic_write_json
from workload_eval.strict import NoBoolNumbers
from workload_eval.workloads.synthesizer import PromptSynthesizer

if TYPE_CHECKING:
    from vllm.outputs import RequestOutput
    from vllm.v1.engine import EngineCoreOutputs


class ProfileGrid(NoBoolNumbers):
    """Which step shapes to time; the defaults take about a minute for the tiny model on CPU."""

    model_config = ConfigDict(extra="forbid")

    prefill_seqs: list[int] = Field(default=[1, 2, 4, 8])
    prefill_lens: list[int] = Field(default=[16, 64, 128, 256, 512, 1024])
    decode_batches: list[int] = Field(default=[1, 4, 16, 32, 64, 128, 256])
    decode_contexts: list[int] = Field(default=[32, 256, 768])  # per sequence
    decode_steps: int = Field(default=5, ge=2)
    mixed_prefill: list[int] = Field(default=[64, 256, 768])
    mixed_batches: list[int] = Field(default=[4, 32, 128])
    mixed_context: int = Field(default=256, ge=1)
    repeats: int = Field(default=3, ge=1)


QUICK_GRID = ProfileGrid(
    prefill_seqs=[1, 2],
    prefill_lens=[32, 128],
    decode_batches=[1, 8],
    decode_contexts=[32, 128],
    decode_steps=3,
    mixed_prefill=[64],
    mixed_batches=[4],
    mixed_context=64,
    repeats=1,
)


class _Profiler:
    """Drives one in-process vLLM engine through controlled batches and times its steps."""

    def __init__(self, config: EngineConfig) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        from workload_eval.engines.vllm.loader import load_engine

        self.config = config
        self.loaded = load_engine(config, multiprocess=False)
        self.engine = self.loaded.engine
        self.budget = int(self.engine.vllm_config.scheduler_config.max_num_batched_tokens)
        self.max_len = int(self.engine.model_config.max_model_len)
        self.block = self.loaded.block_size
        self.usable_blocks = self.loaded.num_blocks - 1
        self.max_seqs = int(self.engine.vllm_config.scheduler_config.max_num_seqs)
        self._ids = itertools.count(1_000_000)
        self._prompts = PromptSynthesizer(self.loaded.vocab, config.seed)  # unique per id
        # Time the engine core's iteration only (schedule, forward, sample, update), as it
        # runs in a run, where the client's output handling overlaps in another process.
        core = self.engine.engine_core
        if not hasattr(core, "_untimed_get_output"):
            core._untimed_get_output = core.get_output
        untimed = core._untimed_get_output
        self._core_dt = 0.0

        def timed_get_output() -> EngineCoreOutputs:
            t = time.perf_counter()
            out = untimed()
            self._core_dt = time.perf_counter() - t
            return out

        core.get_output = timed_get_output
        self._params = lambda n: SamplingParams(
            max_tokens=n,
            ignore_eos=True,
            detokenize=False,
            temperature=1.0,
            output_kind=RequestOutputKind.DELTA,
        )

    def _add(self, count: int, length: int, max_tokens: int) -> list[str]:
        ids = []
        for _ in range(count):
            rid = next(self._ids)
            prompt = self._prompts.prompt_ids(Request(rid, length, max_tokens))
            self.engine.add_request(
                str(rid), {"prompt_token_ids": prompt}, self._params(max_tokens)
            )
            ids.append(str(rid))
        return ids

    def _step(self) -> tuple[float, list[RequestOutput]]:
        outs = self.engine.step()
        return self._core_dt, outs

    def _drain(self, abort: list[str] | None = None) -> None:
        if abort:
            self.engine.abort_request(abort)
        while self.engine.has_unfinished_requests():
            self.engine.step()

    def _fits(self, seqs: int, tokens_each: int) -> bool:
        return seqs * math.ceil(tokens_each / self.block) <= self.usable_blocks

    def _prefill_steps(self, tokens: int) -> int:
        return math.ceil(tokens / self.budget) + 1

    def _prefill_until_decoding(self, ids: list[str]) -> dict[str, int]:
        """Step until every request has its first token; returns tokens generated so far."""
        generated = dict.fromkeys(ids, 0)
        while min(generated.values()) == 0:
            for out in self._step()[1]:
                if out.request_id in generated:
                    generated[out.request_id] += len(out.outputs[0].token_ids)
        return generated

    def prefill(self, seqs: int, length: int) -> float | None:
        """One step prefilling ``seqs`` prompts of ``length`` tokens (each samples one token)."""
        if seqs * length > self.budget or length >= self.max_len or not self._fits(seqs, length):
            return None
        ids = self._add(seqs, length, 1)
        dt, outs = self._step()
        done = sum(1 for o in outs if o.finished)
        self._drain()
        return dt if done == len(ids) else None

    def decode(self, batch: int, context: int, steps: int) -> tuple[float, int] | None:
        """Median decode step at ``batch`` sequences of about ``context`` tokens each."""
        total = context + self._prefill_steps(batch * context) + steps + 2
        if total >= self.max_len or batch > self.max_seqs or not self._fits(batch, total):
            return None
        # Generous max_tokens: with a chunked prefill the first sequences keep decoding while
        # the last ones prefill; every sequence must still run when the timed steps start.
        ids = self._add(batch, context, self.max_len - context - 1)
        generated = self._prefill_until_decoding(ids)
        self._step()  # the first pure decode step can carry leftovers; not timed
        times, contexts = [], []
        for _ in range(steps):
            ctx = batch * context + sum(generated.values()) + batch
            dt, outs = self._step()
            for out in outs:
                if out.request_id in generated:
                    generated[out.request_id] += len(out.outputs[0].token_ids)
            times.append(dt)
            contexts.append(ctx)
        self._drain(ids)
        mid = len(times) // 2
        return statistics.median(times), sorted(contexts)[mid]

    def mixed(self, prompt: int, batch: int, context: int) -> tuple[float, int] | None:
        """A step with one ``prompt``-token prefill riding on ``batch`` running decodes."""
        total = context + self._prefill_steps(batch * context) + 2
        if (
            prompt + batch > self.budget
            or total >= self.max_len
            or not self._fits(batch, total)
            or not self._fits(batch + 1, prompt + total)
        ):
            return None
        ids = self._add(batch, context, self.max_len - context - 1)
        generated = self._prefill_until_decoding(ids)
        self._step()
        ctx = batch * context + sum(generated.values()) + batch
        new = self._add(1, prompt, 1)
        dt, outs = self._step()
        ok = any(o.request_id == new[0] and o.finished for o in outs)
        self._drain(ids)
        return (dt, ctx) if ok else None


def _median(fn: Callable[[], float | None], repeats: int) -> float | None:
    """Median time over repeats of fn() (None: not measurable)."""
    results = [r for r in (fn() for _ in range(repeats)) if r is not None]
    return statistics.median(results) if results else None


def _median_pair(
    fn: Callable[[], tuple[float, int] | None], repeats: int
) -> tuple[float, int] | None:
    """The (time, context) run with the median time over repeats of fn()."""
    results = sorted(
        (r for r in (fn() for _ in range(repeats)) if r is not None), key=lambda r: r[0]
    )
    return results[len(results) // 2] if results else None


def profile_vllm(
    config: EngineConfig, grid: ProfileGrid | None = None, *, progress: bool = False
) -> dict[str, JsonValue]:
    """Time prefill, decode and mixed steps of vLLM for ``config``; returns the profile dict."""
    grid = grid or ProfileGrid()
    prof = _Profiler(config)
    tasks: list[tuple[str, tuple[int, ...]]] = (
        [("prefill", (s, n)) for s in grid.prefill_seqs for n in grid.prefill_lens]
        + [("decode", (b, c)) for b in grid.decode_batches for c in grid.decode_contexts]
        + [("mixed", (p, b)) for p in grid.mixed_prefill for b in grid.mixed_batches]
    )
    # Warm-up: first calls pay allocation and kernel selection.
    prof.prefill(1, min(128, prof.budget))
    prof.decode(4, 32, 3)
    out: dict[str, list[JsonValue]] = {"prefill": [], "decode": [], "mixed": []}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="profile", unit="point")
    started = time.perf_counter()
    for kind, args in tasks:
        if kind == "prefill":
            s, n = args
            t = _median(lambda s=s, n=n: prof.prefill(s, n), grid.repeats)
            if t is not None:
                out["prefill"].append(
                    {"num_seqs": s, "tokens": s * n, "sum_sq_tokens": s * n * n, "time_s": t}
                )
        elif kind == "decode":
            b, c = args
            r = _median_pair(lambda b=b, c=c: prof.decode(b, c, grid.decode_steps), grid.repeats)
            if r is not None:
                out["decode"].append({"batch_size": b, "context_tokens": r[1], "time_s": r[0]})
        else:
            p, b = args
            r = _median_pair(lambda p=p, b=b: prof.mixed(p, b, grid.mixed_context), grid.repeats)
            if r is not None:
                out["mixed"].append(
                    {
                        "prefill_tokens": p,
                        "prefill_sum_sq": p * p,
                        "decode_seqs": b,
                        "decode_context_tokens": r[1],
                        "time_s": r[0],
                    }
                )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not out["prefill"] or not out["decode"]:
        raise UserError(
            "profile: no measurable prefill or decode point (raise --max-model-len, "
            "--max-num-batched-tokens or --kv-blocks)"
        )
    info = prof.loaded.report
    return {
        "format": PROFILE_FORMAT,
        "model": config.model,
        "device": f"{info.device} ({_device_name(info.device)})",
        "engine": f"vllm {info.vllm_version}",
        "block_size": prof.block,
        "max_model_len": prof.max_len,
        "max_num_batched_tokens": prof.budget,
        "dtype": info.dtype,
        "num_gpu_blocks": prof.loaded.num_blocks,
        "measured_s": round(time.perf_counter() - started, 2),
        "grid": grid.model_dump(),
        **out,
    }


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return str(torch.cuda.get_device_name(0))
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_profile(profile: dict[str, JsonValue], path: str | Path) -> Path:
    """Atomically write the profile JSON (what ``--perf-profile`` reads)."""
    p = Path(path)
    atomic_write_json(p, profile)
    return p
