"""The paged KV cache as counts: a fixed pool of blocks, vLLM 0.2's watermark and block arithmetic.

Blocks are never named: a sequence group's block count is a closed-form function of its
prompt length, tokens generated and sample count, so the scheduler only moves integers.
"""

from __future__ import annotations

from dataclasses import dataclass

WATERMARK = 0.01  # vLLM 0.2 CacheConfig default: keep 1% of blocks free on admission


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def group_blocks(prompt_len: int, generated: int, n: int, block_size: int) -> int:
    """Blocks a group holds while its decode step with ``generated`` tokens runs.

    The full prompt blocks are shared by the ``n`` samples (vLLM forks the block table after
    the prompt step); the partial last prompt block is copied on write at the first decode
    step, so each sample owns every block from there on.
    """
    shared = prompt_len // block_size
    return shared + n * (cdiv(prompt_len + generated, block_size) - shared)


def prefill_blocks(prompt_len: int, generated: int, n: int, block_size: int) -> int:
    """Blocks allocated when a waiting group is admitted (vLLM's ``can_allocate`` size).

    A fresh group holds its prompt once. A group recomputed after preemption holds its
    prompt plus the tokens generated so far (for n > 1: every sample's tokens).
    """
    if generated == 0:
        return cdiv(prompt_len, block_size)
    return group_blocks(prompt_len, generated, n, block_size)


@dataclass(slots=True)
class KvPool:
    """Free-block count of the GPU cache and the admission watermark."""

    total: int
    block_size: int
    free: int = -1
    watermark_blocks: int = -1

    def __post_init__(self) -> None:
        if self.free < 0:
            self.free = self.total
        if self.watermark_blocks < 0:
            self.watermark_blocks = int(WATERMARK * self.total)

    @property
    def used(self) -> int:
        return self.total - self.free

    def fits_ever(self, blocks: int) -> bool:
        """Whether an empty cache could ever admit ``blocks`` (else the request would hang)."""
        return self.total - blocks >= self.watermark_blocks
