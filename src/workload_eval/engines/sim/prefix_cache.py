"""vLLM V1's block pool with automatic prefix caching, as counts and small integer block ids.

vLLM (``v1/core/block_pool.py``, ``kv_cache_manager.py``): every full block is hashed from its
parent block's hash and its tokens; a new request reuses the longest chain of cached blocks
(at most ``num_tokens - 1`` tokens, so the last token is always computed); a block held by
several requests exists once with a reference count; a freed block stays cached in the free
queue (a freed request's blocks are appended last block first) and is evicted only when the
queue's head is handed out for a new block, i.e. least recently freed first.

Here a block's identity is the chain of the prompt segments it covers
(``contracts.PromptSegment`` keys and offsets), interned to an int, so no token ids are
needed. The free queue holds runs: plain blocks (no hash), one cached block, or a preempted
request's own blocks (its prompt remainder and generated tokens, reusable by itself when it is
scheduled again; a run loses its last blocks first). A finished request's own blocks can be
hit by no one (their content is unique to it) unless a later prompt repeats its answer
(``contracts.output_segment_key``): then they are cached block by block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

PLAIN, CACHED, OWN = 0, 1, 2


class BlockHasher:
    """Block ids of segment chains: block j's id = intern((id of block j-1, its pieces))."""

    def __init__(self, block_size: int) -> None:
        self.bs = block_size
        self._intern: dict[tuple, int] = {}
        # segments -> (ids of full blocks, (parent id, pieces, tokens) of the partial block)
        self._memo: dict[tuple, tuple[list[int], tuple[int, tuple, int]]] = {}

    def block_ids(self, segments: Sequence[tuple[str, int]]) -> list[int]:
        """Ids of the blocks that lie entirely inside the segments, in order."""
        key = tuple(segments)
        hit = self._memo.get(key)
        if hit is not None:
            return hit[0]
        start = 0
        ids: list[int] = []
        state: tuple[int, tuple, int] = (-1, (), 0)
        for cut in (len(key) - 2, len(key) - 1):  # a follow-up turn extends its parent's list
            if cut > 0:
                prev = self._memo.get(key[:cut])
                if prev is not None:
                    ids, state = list(prev[0]), prev[1]
                    start = cut
        parent, pieces, filled = state
        pieces_list = list(pieces)
        bs, intern = self.bs, self._intern
        for seg_key, length in key[start:]:
            offset = 0
            while offset < length:
                take = min(bs - filled, length - offset)
                pieces_list.append((seg_key, offset, offset + take))
                offset += take
                filled += take
                if filled == bs:
                    ident = (parent, tuple(pieces_list))
                    parent = intern.setdefault(ident, len(intern))
                    ids.append(parent)
                    pieces_list, filled = [], 0
        self._memo[key] = (ids, (parent, tuple(pieces_list), filled))
        return ids


class BlockPool:
    """Free-block count plus the free queue's cached blocks, evicted least recently freed first."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total  # blocks in the free queue (plain + cached, evictable)
        self.queue: deque[list] = deque([[PLAIN, 0, total]] if total else [])
        self.ref: dict[int, int] = {}  # cached block id -> requests holding it (0 = in queue)
        self.where: dict[int, list] = {}  # cached block id with ref 0 -> its queue entry
        self.own: dict[int, list] = {}  # gid -> queue entry of its preempted own blocks
        self.evicted_cached = 0  # cached blocks evicted (a CPU offload tier would hold them)

    # -- allocation -----------------------------------------------------------------------
    def allocate(self, n: int) -> None:
        """Hand out ``n`` blocks from the queue's head, evicting cached ones (caller checked)."""
        self.free -= n
        queue = self.queue
        if n <= 0:
            return
        head = queue[0]
        if head[0] == PLAIN and head[2] > n:  # the common case: plain blocks at the head
            head[2] -= n
            return
        while n > 0:
            entry = queue[0]
            count = entry[2]
            take = count if count < n else n
            kind = entry[0]
            if kind == CACHED and take:
                del self.ref[entry[1]]
                del self.where[entry[1]]
                self.evicted_cached += 1
            elif kind == OWN and take:
                self.evicted_cached += take
                if count == take:
                    del self.own[entry[1]]
            entry[2] = count - take
            n -= take
            if entry[2] == 0:
                queue.popleft()
        while queue and queue[0][2] == 0:
            queue.popleft()

    # -- cached blocks --------------------------------------------------------------------
    def cached(self, block: int) -> bool:
        return block in self.ref

    def touch(self, block: int) -> None:
        """A request starts using a cached block."""
        r = self.ref[block]
        if r == 0:
            self.where.pop(block)[2] = 0  # leave the dead entry; allocate() skips it
            self.free -= 1
        self.ref[block] = r + 1

    def touch_all(self, blocks: Sequence[int]) -> None:
        """``touch`` for each block (a new request's hit chain)."""
        ref, where = self.ref, self.where
        taken = 0
        for block in blocks:
            r = ref[block]
            if r == 0:
                where.pop(block)[2] = 0
                taken += 1
            ref[block] = r + 1
        self.free -= taken

    def release_all(self, blocks: Sequence[int]) -> None:
        """``release`` for each block, in the order given (a freed request: last block first)."""
        ref, where, queue = self.ref, self.where, self.queue
        freed = 0
        for block in blocks:
            r = ref[block] - 1
            ref[block] = r
            if r == 0:
                entry = [CACHED, block, 1]
                where[block] = entry
                queue.append(entry)
                freed += 1
        self.free += freed

    def register(self, block: int) -> None:
        """A request computed a block nobody has cached: it holds it."""
        self.ref[block] = 1

    def release(self, block: int) -> None:
        r = self.ref[block] - 1
        self.ref[block] = r
        if r == 0:
            entry = [CACHED, block, 1]
            self.where[block] = entry
            self.queue.append(entry)
            self.free += 1

    def add_cached_free(self, block: int) -> None:
        """A freed block that becomes cached now (a finished request's repeated answer)."""
        if block in self.ref:  # someone cached the same content: this copy is plain
            self.free_plain(1)
            return
        self.ref[block] = 1
        self.release(block)

    # -- plain and own blocks -------------------------------------------------------------
    def free_plain(self, n: int) -> None:
        if n <= 0:
            return
        queue = self.queue
        if queue and queue[-1][0] == PLAIN:
            queue[-1][2] += n
        else:
            queue.append([PLAIN, 0, n])
        self.free += n

    def free_own(self, gid: int, n: int) -> None:
        """A preempted request's own full blocks: reusable by it while they stay cached."""
        if n <= 0:
            return
        entry = [OWN, gid, n]
        self.own[gid] = entry
        self.queue.append(entry)
        self.free += n

    def own_cached(self, gid: int) -> int:
        entry = self.own.get(gid)
        return entry[2] if entry is not None else 0

    def take_own(self, gid: int, hit: int) -> None:
        """The request is scheduled again and reuses its first ``hit`` own blocks."""
        entry = self.own.pop(gid, None)
        if entry is None:
            return
        self.free -= hit
        entry[2] -= hit
        entry[0] = PLAIN  # the rest of the run is recomputed: its hashes no longer matter
