"""Prefix-cache hygiene for a real server: empty its cache before a run, count hits during it.

vLLM keeps its prefix cache between requests, so a second run of the same seed reuses blocks
the first one computed and is silently faster (``vllm bench serve`` has this problem). vLLM
serves ``POST /reset_prefix_cache`` (``entrypoints/serve/dev/cache/api_router.py``, answering
``{"success": bool}``; success is false while running requests hold blocks) only when the
server was started with ``VLLM_SERVER_DEV_MODE=1``; elsewhere the route does not exist (404)
and the run record says that the cache could not be emptied. The hits and queries come from
the server's Prometheus counters (``prometheus.PREFIX_QUERIES`` / ``PREFIX_HITS``), read
just before the first request and after the last one.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from workload_eval.contracts import CacheReset, PrefixCacheReport, Request
from workload_eval.engines.openai.prometheus import MetricsSample, parse_metrics
from workload_eval.prefix_reuse import Reuse, cache_report, implied_reuse

RESET_PATH = "/reset_prefix_cache"
# vLLM refuses a reset while blocks are held (requests of an earlier run still finishing):
# a few tries, this far apart, before the run record says it failed.
RESET_TRIES = 5
RESET_RETRY_S = 0.5
MAX_ANSWER_BYTES = 4096  # the reset's answer is {"success": bool}; more is not read
DEV_MODE_NOTE = (
    "the server has no POST /reset_prefix_cache (vLLM serves it only when started with "
    "VLLM_SERVER_DEV_MODE=1); blocks cached by earlier runs can make this run faster"
)


async def reset_prefix_cache(
    session: aiohttp.ClientSession, root: str, headers: dict[str, str] | None = None
) -> tuple[CacheReset, str]:
    """Ask the server at ``root`` to empty its prefix cache: (outcome, note for the record)."""
    last = ""
    for attempt in range(RESET_TRIES):
        if attempt:
            await asyncio.sleep(RESET_RETRY_S)
        try:
            async with session.post(root + RESET_PATH, headers=headers) as resp:
                if resp.status in (404, 405):
                    return "refused", DEV_MODE_NOTE
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:200]
                    return "failed", f"POST {RESET_PATH}: HTTP {resp.status}: {text}"
                body = await resp.content.read(MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, TimeoutError) as e:
            return "failed", f"POST {RESET_PATH}: {type(e).__name__}: {e}"[:300]
        if _succeeded(body):
            return "done", ""
        last = f"the server refused the reset {RESET_TRIES} times (blocks still in use)"
    return "failed", last


def _succeeded(body: bytes) -> bool:
    """``{"success": true}``, or an older vLLM's empty 200; only ``false`` is a refusal."""
    try:
        answer = json.loads(body)
    except ValueError:
        return not body.strip()
    return not isinstance(answer, dict) or answer.get("success") is not False


async def scrape(session: aiohttp.ClientSession, url: str) -> MetricsSample | None:
    """One read of ``/metrics``; None when the server does not answer it."""
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                return None
            return parse_metrics(await resp.read())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


def counted(before: MetricsSample | None, after: MetricsSample | None) -> Reuse | None:
    """The server's prefix-cache queries and hits between two scrapes (None: not exported)."""
    if before is None or after is None:
        return None
    q = after.prefix_cache_queries - before.prefix_cache_queries
    h = after.prefix_cache_hits - before.prefix_cache_hits
    if q != q or h != h or q < 0 or h < 0:  # NaN: no such counters; negative: a restart
        return None
    return Reuse(int(q), int(h))


@dataclass
class CacheWatch:
    """One run's prefix-cache hygiene: the reset's outcome and the counters around the run."""

    reset: CacheReset = "off"
    note: str = ""
    before: MetricsSample | None = None
    after: MetricsSample | None = None

    async def start(
        self,
        session: aiohttp.ClientSession,
        root: str,
        metrics_url: str | None,
        headers: dict[str, str] | None,
        *,
        reset: bool,
    ) -> None:
        """Reset (when asked), then read the counters the run's hits are counted from."""
        if reset:
            self.reset, self.note = await reset_prefix_cache(session, root, headers)
        if metrics_url is not None:
            self.before = await scrape(session, metrics_url)

    async def finish(self, session: aiohttp.ClientSession, metrics_url: str | None) -> None:
        if metrics_url is not None and self.before is not None:
            self.after = await scrape(session, metrics_url)

    def report(self, requests: Sequence[Request], block_size: int) -> PrefixCacheReport:
        """Measured (server counters) beside implied (the workload, the server's block size
        when its /metrics says it)."""
        server_bs = self.before.block_size if self.before is not None else math.nan
        bs = int(server_bs) if server_bs == server_bs and server_bs >= 1 else block_size
        return cache_report(
            implied_reuse(requests, bs),
            bs,
            measured=counted(self.before, self.after),
            measured_by="server /metrics (vllm:prefix_cache_queries / _hits)",
            reset=self.reset,
            reset_note=self.note,
        )


__all__ = ["DEV_MODE_NOTE", "CacheWatch", "counted", "reset_prefix_cache", "scrape"]
