"""One run of the in-process engine: arrivals injected on time, vLLM stepped, records kept.

Timings come from vLLM's own per-request stats (engine-core monotonic clock, the same clock
as ours on Linux), so client-side bookkeeping never inflates latencies.
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workload_eval.contracts import (
    REQUEST_COLUMNS,
    CacheReset,
    PrefixCacheReport,
    RunRecords,
    Schedule,
    ScheduledRequest,
)
from workload_eval.dispatch import Dispatcher
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.vllm import loader
from workload_eval.engines.vllm.args import vllm_options
from workload_eval.engines.vllm.loader import LoadedEngine
from workload_eval.prefix_reuse import Reuse, cache_report, implied_reuse
from workload_eval.workloads.synthesizer import PromptSynthesizer, prompt_digest

if TYPE_CHECKING:
    from vllm.outputs import RequestOutput

log = logging.getLogger(__name__)


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
    prompt_digest: str = ""

    def as_tuple(self) -> tuple[object, ...]:
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
            self.prompt_digest,
        )


class Driver:
    """One run: the arrival heap (roots of the schedule's graph, then released follow-ups),
    the in-flight set and the records. vLLM request ids are schedule positions."""

    def __init__(
        self, loaded: LoadedEngine, config: EngineConfig, schedule: Schedule, progress: bool
    ) -> None:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        self.rejected = (ValueError, TypeError, VLLMClientError)

        self.loaded, self.config, self.schedule = loaded, config, schedule
        self.engine = loaded.engine
        self.prompts = PromptSynthesizer(loaded.vocab, config.seed)
        opts = vllm_options(config)
        self.stream = opts.token_times
        # Arrivals wait (counted as send lag) while this many requests are in the engine.
        self.max_in_flight = opts.max_concurrency or len(schedule.items) or 1
        self.base_params = SamplingParams(
            n=config.n,
            temperature=opts.temperature,
            top_p=1.0,
            ignore_eos=opts.ignore_eos,
            max_tokens=1,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA if self.stream else RequestOutputKind.FINAL_ONLY,
        )
        items = schedule.items
        self.rows: list[_Row | None] = [None] * len(items)
        self.heap: list[tuple[float, int, int]] = []  # (arrival, order, item)
        self.order = 0
        self.dispatch = Dispatcher(schedule)
        self._release(self.dispatch.begin())
        self.in_flight: set[int] = set()
        self.cache_reset: CacheReset = "off"
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=len(items), desc="vllm", unit="req")

    def _row(self, i: int) -> _Row:
        row = self.rows[i]
        assert row is not None  # rows exist from release on
        return row

    def _send(self, i: int, now: float) -> None:
        row = self._row(i)
        req = row.item.request
        params = self.base_params.clone()
        params.max_tokens = max(int(req.output_len), 1)
        row.send = now
        try:
            ids = self.prompts.prompt_ids(req)
            row.prompt_tokens = len(ids)
            row.prompt_digest = prompt_digest(ids)
            self.engine.add_request(str(i), {"prompt_token_ids": ids}, params)
        except self.rejected as e:  # too long for max_model_len, bad ids, ...
            row.status, row.error = "ignored", str(e).splitlines()[0]
            self._done(i, now)
            return
        row.error = ""
        self.in_flight.add(i)

    def _release(self, due: list[tuple[float, int]]) -> None:
        for at, i in due:
            self.rows[i] = _Row(self.schedule.items[i], at)
            heapq.heappush(self.heap, (at, self.order, i))
            self.order += 1

    def _done(self, i: int, now: float) -> None:
        """A request left the engine: release what waits on it (follow-ups, the next stage)."""
        if self.bar is not None:
            self.bar.update(1)
        row = self._row(i)
        ok = row.status == "ok"
        due, failed = self.dispatch.finished(i, float(row.finish) if ok else now, ok=ok)
        self._release(due)
        rid = row.item.request.request_id
        for c in failed:
            item = self.schedule.items[c]
            self.rows[c] = _Row(item, np.nan, status="failed", error=f"previous turn {rid} failed")
            self._done(c, now)

    def _collect(self, out: RequestOutput, t0: float) -> None:
        i = int(out.request_id)
        row = self._row(i)
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
        if out.prompt_token_ids:  # what vLLM itself processed
            row.prompt_tokens = len(out.prompt_token_ids)
            row.prompt_digest = prompt_digest(out.prompt_token_ids)
        row.status, row.error = "ok", ""
        self.in_flight.discard(i)
        self._done(i, row.finish)

    def run(self) -> RunRecords:
        engine = self.engine
        self.cache_reset = self._reset_prefix_cache()
        t0 = time.monotonic()
        self.loaded.recorder.reset(t0)
        error: BaseException | None = None
        try:
            while self.heap or self.in_flight:
                now = time.monotonic() - t0
                while (
                    self.heap
                    and self.heap[0][0] <= now
                    and len(self.in_flight) < self.max_in_flight
                ):
                    _, _, i = heapq.heappop(self.heap)
                    self._send(i, now)
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

    def _reset_prefix_cache(self) -> CacheReset:
        """Empty the engine's prefix cache: a cached engine is reused across runs, and a rerun
        must not hit what the previous run computed."""
        if not self.config.enable_prefix_caching:
            return "off"
        return "done" if self.engine.reset_prefix_cache() else "failed"

    def _cache_report(self) -> PrefixCacheReport:
        rec, bs = self.loaded.recorder, self.loaded.block_size
        return cache_report(
            implied_reuse([it.request for it in self.schedule.items], bs),
            bs,
            measured=Reuse(rec.cache_queries, rec.cache_hits),
            measured_by="vLLM scheduler stats (PrefixCacheStats)",
            reset=self.cache_reset,
            reset_note="vLLM refused: blocks in use" if self.cache_reset == "failed" else "",
        )

    def _abort(self, e: BaseException) -> None:
        """Record what is unfinished as failed; drop the engine, whose state is now unknown."""
        msg = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        for i, item in enumerate(self.schedule.items):
            row = self.rows[i]
            if row is None:
                self.rows[i] = _Row(item, np.nan, error=msg)
            elif row.status != "ok" and (i in self.in_flight or row.error == "not sent"):
                row.status, row.error = "failed", msg
        self.in_flight.clear()
        self.heap.clear()
        log.warning("vLLM run stopped early (%s); returning partial records", msg)
        loader.forget(self.loaded)

    def _records(self, error: BaseException | None) -> RunRecords:
        rows = [row.as_tuple() for row in self.rows if row is not None]
        requests = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
        requests["session_id"] = requests["session_id"].astype("Int64")
        steps = self.loaded.recorder.frame()
        report = self.loaded.report.model_copy()
        if self.config.enable_prefix_caching:
            report.prefix_cache = self._cache_report()
        if error is not None:
            interrupted = isinstance(error, KeyboardInterrupt)
            report.error = "interrupted" if interrupted else repr(error)
            report.interrupted = interrupted
        return RunRecords(requests=requests, steps=steps, report=report)
