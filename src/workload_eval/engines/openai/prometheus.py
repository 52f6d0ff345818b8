"""Samples a server's Prometheus ``/metrics`` into step-timeline rows (vLLM's metric names).

Only the few lines we need are parsed, so a sample costs little CPU inside the load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from workload_eval.contracts import STEP_COLUMNS
from workload_eval.engines.openai.answers import read_at_most
from workload_eval.limits import MAX_BLOCK_SIZE, MAX_INT

# vLLM's /metrics is 50-200 KB; a larger page is read no further (that sample is a gap).
MAX_METRICS_BYTES = 16 << 20

# vLLM's names (v1 first, then the v0 spellings); other servers simply leave NaN.
RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREEMPTIONS = ("vllm:num_preemptions_total", "vllm:num_preemptions")
CACHE_INFO = ("vllm:cache_config_info",)
# Prefix-cache counters in prompt tokens (v1/metrics/loggers.py): vLLM 0.9+ spells them
# vllm:prefix_cache_*, 0.7-0.8's V1 vllm:gpu_prefix_cache_*; V0 exported only a hit-rate gauge.
PREFIX_QUERIES = (
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_queries",
    "vllm:gpu_prefix_cache_queries_total",
    "vllm:gpu_prefix_cache_queries",
)
PREFIX_HITS = (
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_hits_total",
    "vllm:gpu_prefix_cache_hits",
)
WANTED = RUNNING + WAITING + KV_USAGE + PREEMPTIONS + CACHE_INFO + PREFIX_QUERIES + PREFIX_HITS
_PREFIXES = tuple(n.encode() for n in WANTED)


@dataclass
class MetricsSample:
    """The values of one scrape; NaN where the server does not export them."""

    running: float = math.nan
    waiting: float = math.nan
    kv_usage: float = math.nan  # fraction 0..1
    preemptions_total: float = math.nan
    kv_blocks_total: float = math.nan
    block_size: float = math.nan
    prefix_cache_queries: float = math.nan  # counters since the server started (tokens)
    prefix_cache_hits: float = math.nan


def parse_metrics(text: bytes | str) -> MetricsSample:
    """Sum each wanted metric over its label sets (several engines/models add up)."""
    raw = text.encode() if isinstance(text, str) else text
    lines = [ln for ln in raw.splitlines() if ln.startswith(_PREFIXES)]
    sums: dict[str, float] = {}
    info: dict[str, str] = {}
    body = b"\n".join(lines).decode("utf-8", "replace") + "\n"
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name in CACHE_INFO:
                info = dict(s.labels)
            elif s.name in WANTED:
                sums[s.name] = sums.get(s.name, 0.0) + float(s.value)

    def first(names: tuple[str, ...], top: float = MAX_INT) -> float:
        return _bounded(next((sums[n] for n in names if n in sums), math.nan), top)

    out = MetricsSample(
        first(RUNNING), first(WAITING), first(KV_USAGE, top=1.0), first(PREEMPTIONS)
    )
    out.prefix_cache_queries, out.prefix_cache_hits = first(PREFIX_QUERIES), first(PREFIX_HITS)
    for key, attr, top in (
        ("num_gpu_blocks", "kv_blocks_total", MAX_INT),
        ("block_size", "block_size", MAX_BLOCK_SIZE),
    ):
        with contextlib.suppress(KeyError, ValueError):
            setattr(out, attr, _bounded(float(info[key]), top))
    return out


def _bounded(v: float, top: float) -> float:
    """A server's number kept only when it can be true: finite, in [0, top]; else NaN."""
    return v if 0 <= v <= top else math.nan


@dataclass
class Timeline:
    """Scrapes turned into STEP_COLUMNS rows; preemptions become per-interval deltas."""

    kv_blocks_total: float = math.nan  # from the run's config when the server does not say
    rows: list[dict[str, float | str]] = field(default_factory=list)
    _last_preempt: float = math.nan
    _first_preempt: float = math.nan

    def add(self, t: float, s: MetricsSample, duration: float = math.nan) -> None:
        total = s.kv_blocks_total if not math.isnan(s.kv_blocks_total) else self.kv_blocks_total
        preempted = math.nan
        if not math.isnan(s.preemptions_total):
            if math.isnan(self._first_preempt):
                self._first_preempt = s.preemptions_total
            prev = self._last_preempt
            preempted = 0.0 if math.isnan(prev) else max(0.0, s.preemptions_total - prev)
            self._last_preempt = s.preemptions_total
        used = round(s.kv_usage * total) if not math.isnan(total + s.kv_usage) else math.nan
        physical = used * s.block_size if not math.isnan(used + s.block_size) else math.nan
        row: dict[str, float | str] = dict.fromkeys(STEP_COLUMNS, math.nan)
        row.update(
            time=t,
            duration=duration,
            kind="sample",
            num_running=s.running,
            num_waiting=s.waiting,
            num_preempted=preempted,
            kv_blocks_used=used,
            kv_blocks_total=total,
            physical_tokens=physical,
        )
        self.rows.append(row)

    @property
    def preemptions(self) -> float:
        """Preemptions the server counted during the sampled window (NaN if not exported)."""
        return self._last_preempt - self._first_preempt


async def sample_metrics(
    url: str, interval: float, start: list[float], timeline: Timeline, stop: asyncio.Event
) -> None:
    """Scrape until stopped, then once more; an unreachable server only leaves gaps.

    ``start`` holds the run's start (perf_counter) once the load generator has one.
    """
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while True:
            last = stop.is_set()
            try:
                async with s.get(url) as resp:
                    if resp.status == 200:
                        raw = await read_at_most(resp.content, MAX_METRICS_BYTES + 1)
                        t = time.perf_counter()
                        if start and len(raw) <= MAX_METRICS_BYTES:  # else: a gap
                            timeline.add(t - start[0], parse_metrics(raw))
            except (aiohttp.ClientError, TimeoutError, ValueError, LookupError, TypeError):
                pass  # an unreachable or garbled /metrics only leaves a gap
            if last:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
