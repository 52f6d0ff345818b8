"""Per-iteration step rows from vLLM's own stats (a stat logger in StatLoggerBase's shape)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workload_eval.contracts import STEP_COLUMNS

if TYPE_CHECKING:
    from vllm.v1.metrics.stats import IterationStats, MultiModalCacheStats, SchedulerStats


class StepRecorder:
    """A vLLM stat logger that keeps one row per engine iteration (StatLoggerBase duck type)."""

    def __init__(self, block_size: int, num_blocks: int) -> None:
        self.block_size = block_size
        self.usable_blocks = max(num_blocks - 1, 1)  # vLLM reserves one null block
        self.t0 = time.monotonic()
        self.rows: list[tuple] = []
        # vLLM's prefix-cache counters over the run (prompt tokens of new requests)
        self.cache_queries = self.cache_hits = 0

    def reset(self, t0: float) -> None:
        self.t0, self.rows = t0, []
        self.cache_queries = self.cache_hits = 0

    def record(
        self,
        scheduler_stats: SchedulerStats | None,
        iteration_stats: IterationStats | None,
        mm_cache_stats: MultiModalCacheStats | None = None,
        engine_idx: int = 0,
    ) -> None:
        if scheduler_stats is None:
            return
        cache = getattr(scheduler_stats, "prefix_cache_stats", None)
        if cache is not None:
            self.cache_queries += int(cache.queries)
            self.cache_hits += int(cache.hits)
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
