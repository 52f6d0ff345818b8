"""The ``openai`` engine: an open-loop client for any OpenAI-compatible server."""

from workload_eval.engines.openai.engine import OpenAIEngine
from workload_eval.engines.openai.options import OpenAIOptions

__all__ = ["OpenAIEngine", "OpenAIOptions"]
