"""The prefix-cache hit rate a workload implies, by vLLM's rules, beside what an engine measured.

vLLM's automatic prefix caching (``v1/core/kv_cache_manager.py``) names every full block of
``block_size`` prompt tokens by its content chained on the previous block's name; a new request
reuses the longest run of leading blocks already computed, at most ``num_tokens - 1`` tokens
(the last token is always recomputed for its logits), and its counters
``vllm:prefix_cache_queries`` / ``_hits`` add a new (not preempted) request's prompt tokens and
reused tokens at admission. The implied rate applies the same rules with an unbounded cache
that starts empty: what a run would measure if nothing were evicted and nothing were left
over from an earlier run. Block names come from the simulator's ``BlockHasher`` over the
prompt's segments (``workloads.synthesizer.prompt_segments``), so the simulator's prefix
cache, this count and the token ids every engine sends agree; a request that carries its own
token ids is named by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workload_eval.contracts import CacheReset, PrefixCacheReport, Request
from workload_eval.engines.sim.prefix_cache import BlockHasher
from workload_eval.workloads.synthesizer import prompt_segments


@dataclass(frozen=True)
class Reuse:
    """Prompt tokens looked up in the cache and found there (vLLM's counters' units)."""

    queries: int
    hits: int

    @property
    def rate(self) -> float:
        return self.hits / self.queries if self.queries else float("nan")


def _token_blocks(ids: Sequence[int], block_size: int) -> list[tuple[str, int]]:
    """Names of the full blocks of explicit token ids, each chained on its predecessor."""
    names: list[tuple[str, int]] = []
    parent = 0
    for start in range(0, len(ids) - block_size + 1, block_size):
        parent = hash((parent, tuple(ids[start : start + block_size])))
        names.append(("ids", parent))
    return names


def own_key(request: Request) -> str:
    """The segment key of the part of a synthesized prompt unique to the request."""
    return f"request:{request.request_id}"


def _may_share(request: Request) -> bool:
    """Whether any block of the request's prompt can be shared with another request's."""
    return bool(
        request.prompt_token_ids
        or request.prefix_segments
        or request.prefix_hash_ids
        or request.session_id is not None
    )


def implied_reuse(requests: Iterable[Request], block_size: int) -> Reuse:
    """Queries and hits of ``requests`` sent in the order given into an empty, unbounded
    vLLM prefix cache (see the module docstring)."""
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    hasher = BlockHasher(block_size)
    seen: set[object] = set()
    queries = hits = 0
    for req in requests:
        if not _may_share(req):  # the common case of a plain dataset prompt: nothing to name
            queries += max(int(req.prompt_len), 1)
            continue
        if req.prompt_token_ids:
            tokens = len(req.prompt_token_ids)
            blocks: list[object] = list(_token_blocks(req.prompt_token_ids, block_size))
        else:
            tokens = max(int(req.prompt_len), 1)
            # the request's own tail (``request:<id>``) is never shared: only the blocks
            # inside the shared segments can hit or be hit
            shared = [(s.key, s.length) for s in prompt_segments(req) if s.key != own_key(req)]
            blocks = list(hasher.block_ids(shared)) if shared else []
        limit = min(len(blocks), (tokens - 1) // block_size)
        h = 0
        while h < limit and blocks[h] in seen:
            h += 1
        seen.update(blocks)
        queries += tokens
        hits += h * block_size
    return Reuse(queries, hits)


def cache_report(
    implied: Reuse,
    block_size: int,
    *,
    measured: Reuse | None = None,
    measured_by: str = "",
    reset: CacheReset = "off",
    reset_note: str = "",
) -> PrefixCacheReport:
    """The run record's prefix-cache entry: measured beside implied, and the reset."""
    return PrefixCacheReport(
        block_size=block_size,
        implied_queries=implied.queries,
        implied_hits=implied.hits,
        implied_hit_rate=implied.rate,
        measured_queries=None if measured is None else measured.queries,
        measured_hits=None if measured is None else measured.hits,
        measured_hit_rate=None if measured is None else measured.rate,
        measured_by=measured_by if measured is not None else "",
        reset=reset,
        reset_note=reset_note,
    )


__all__ = ["Reuse", "cache_report", "implied_reuse"]
