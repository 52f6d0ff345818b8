"""Engines behind one interface: the simulator (default), vLLM in-process, OpenAI HTTP."""

from workload_eval.engines.base import Engine, EngineConfig, get_engine, known_engines

__all__ = ["Engine", "EngineConfig", "get_engine", "known_engines"]
