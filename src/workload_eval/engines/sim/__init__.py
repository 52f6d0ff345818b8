"""The embedded simulator engine: a discrete-event simulation of a vLLM-style server."""

from workload_eval.engines.sim.engine import SimEngine

__all__ = ["SimEngine"]
