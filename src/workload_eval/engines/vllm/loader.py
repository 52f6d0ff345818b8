"""Build (or reuse) the in-process vLLM engine for a configuration; one live engine per process."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workload_eval.engines.base import EngineConfig
from workload_eval.engines.vllm.args import build_engine_args, platform_device, vllm_options
from workload_eval.engines.vllm.report import VllmReport
from workload_eval.engines.vllm.setup import INSTALL_HINT, apply_env, check_setup
from workload_eval.engines.vllm.startup import quiet_startup
from workload_eval.engines.vllm.steps import StepRecorder
from workload_eval.errors import UserError
from workload_eval.workloads.synthesizer import Vocab

if TYPE_CHECKING:
    from pydantic import JsonValue
    from vllm import EngineArgs
    from vllm.v1.engine.llm_engine import LLMEngine
    from vllm.v1.executor import Executor

log = logging.getLogger(__name__)


@dataclass
class LoadedEngine:
    """A constructed vLLM engine and what the driver needs to know about it."""

    key: str
    engine: LLMEngine
    recorder: StepRecorder
    num_blocks: int
    block_size: int
    vocab: Vocab
    report: VllmReport  # what every run on this engine reports (copied per run)


_CACHE: dict[str, LoadedEngine] = {}


def forget(loaded: LoadedEngine) -> None:
    """Drop one engine from the cache and stop it (after an error its state is unknown)."""
    _CACHE.pop(loaded.key, None)
    try:
        loaded.engine.engine_core.shutdown()
    except Exception as e:  # already dead
        log.debug("vLLM engine shutdown: %s", e)


def shutdown_engines() -> None:
    """Stop every cached vLLM engine (frees its worker processes and KV cache)."""
    for loaded in list(_CACHE.values()):
        forget(loaded)


def load_engine(config: EngineConfig, *, multiprocess: bool = True) -> LoadedEngine:
    """Build (or reuse) the vLLM engine for ``config``; one live engine per process.

    ``multiprocess=False`` runs the engine core in this thread, so ``step()`` is exactly one
    engine iteration (the profiler times it); runs use vLLM's default, a separate process.
    """
    with quiet_startup(f"--model {config.model}"):  # vLLM's import chatter too
        args = build_engine_args(config)
        env = check_setup(config, vllm_options(config), platform_device()).env
        key = json.dumps({"args": args, "env": env, "mp": multiprocess}, sort_keys=True)
        if key in _CACHE:
            return _CACHE[key]
        shutdown_engines()
        apply_env(env)
        try:
            from vllm import EngineArgs
            from vllm.v1.engine.llm_engine import LLMEngine
            from vllm.v1.executor import Executor
        except ImportError as e:
            raise UserError(f"engine 'vllm': vLLM does not import ({e}; {INSTALL_HINT})") from None
        engine = _start(args, multiprocess, EngineArgs, LLMEngine, Executor)
    return _loaded(key, config, args, engine)


def _start(
    args: dict[str, JsonValue],
    multiprocess: bool,
    engine_args_cls: type[EngineArgs],
    engine_cls: type[LLMEngine],
    executor: type[Executor],
) -> LLMEngine:
    engine_args = engine_args_cls(
        **args,  # type: ignore[arg-type]
        disable_log_stats=False,
        enable_logging_iteration_details=True,
    )
    if multiprocess:
        return engine_cls.from_engine_args(engine_args)
    # from_engine_args cannot turn multiprocessing off when the env default is on
    vllm_config = engine_args.create_engine_config()
    return engine_cls(
        vllm_config=vllm_config,
        executor_class=executor.get_class(vllm_config),
        log_stats=True,
        multiprocess_mode=False,
    )


def _loaded(
    key: str, config: EngineConfig, args: dict[str, JsonValue], engine: LLMEngine
) -> LoadedEngine:
    """What the driver needs to know about a started engine; cached for the next run."""
    cache = engine.vllm_config.cache_config
    num_blocks = int(cache.num_gpu_blocks or 0)
    recorder = StepRecorder(int(cache.block_size), num_blocks)
    if engine.logger_manager is not None:
        # Keep only our recorder: no periodic log lines, no process-global Prometheus state.
        engine.logger_manager.stat_loggers = [recorder]
    vocab = Vocab.of(engine.get_tokenizer(), int(engine.model_config.get_vocab_size()))
    import vllm

    loaded = LoadedEngine(
        key=key,
        engine=engine,
        recorder=recorder,
        num_blocks=num_blocks,
        block_size=int(cache.block_size),
        vocab=vocab,
        report=VllmReport(
            options=vllm_options(config),
            kv_blocks=num_blocks,
            vllm_version=vllm.__version__,
            device=platform_device(),
            dtype=str(engine.model_config.dtype),
            block_size=int(cache.block_size),
            enable_chunked_prefill=bool(engine.vllm_config.scheduler_config.enable_chunked_prefill),
            engine_args=args,
        ),
    )
    _CACHE[key] = loaded
    return loaded
