"""vLLM's engine in-process, driven step by step as the seed did: arrivals injected on time.

Per-step state comes from a stat logger fed with vLLM's scheduler stats and iteration details
(steps.py); the run loop is driver.py, engine construction loader.py.
"""

from __future__ import annotations

from workload_eval.contracts import RunRecords, Schedule
from workload_eval.engines.base import Engine, EngineConfig
from workload_eval.engines.vllm.driver import Driver
from workload_eval.engines.vllm.loader import load_engine


class VllmEngine(Engine):
    """Drives ``vllm.LLMEngine``: add_request at each arrival, step, record."""

    name = "vllm"

    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        loaded = load_engine(config)
        driver = Driver(loaded, config, schedule, progress)
        return driver.run()
