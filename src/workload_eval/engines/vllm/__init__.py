"""The ``vllm`` engine: vLLM in-process, driven step by step; also its step profiler."""

from workload_eval.engines.vllm.engine import VllmEngine
from workload_eval.engines.vllm.loader import load_engine, shutdown_engines

__all__ = ["VllmEngine", "load_engine", "shutdown_engines"]
