"""Workload table rows -> ``contracts.Request`` objects (the hand-over to schedules)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workload_eval.contracts import Request
from workload_eval.workloads.segments import STRUCTURE_COLUMNS, prefix_segments


def to_requests(df: pd.DataFrame, *, first_id: int = 0) -> list[Request]:
    """contracts.Request objects, one per row, ids in row order from ``first_id``.

    Shared prompt parts come from the table's structural columns (:mod:`.segments`).
    """
    cols = set(df.columns)
    n = len(df)

    def column(name: str) -> list[object] | None:
        if name not in cols:
            return None
        s = df[name]
        return s.astype(object).where(s.notna(), None).tolist() if s.hasnans else s.tolist()

    ids = column("prompt_token_ids")
    sess = column("session_id")
    turns = column("turn")
    hashes = column("hash_ids")
    texts = column("prompt_text")
    wl = column("workload") or [df.attrs.get("workload", "")] * n
    shared = (
        prefix_segments(df, where=f"workload {df.attrs.get('workload', '')!r}".strip())
        if cols & set(STRUCTURE_COLUMNS)
        else [()] * n
    )
    prompts = df["prompt_len"].to_numpy(dtype=np.int64).tolist()
    outputs = df["output_len"].to_numpy(dtype=np.int64).tolist()
    if all(c is None for c in (ids, sess, turns, hashes, texts)) and not any(shared):
        # lengths only (the common dataset case): positional construction, a third the cost
        name = str(wl[0]) if wl and wl.count(wl[0]) == n else None
        if name is not None:
            return [
                Request(first_id + i, p, o, None, name)
                for i, (p, o) in enumerate(zip(prompts, outputs, strict=True))
            ]
    return [
        Request(
            request_id=first_id + i,
            prompt_len=prompts[i],
            output_len=outputs[i],
            prompt_token_ids=None
            if ids is None or ids[i] is None
            else np.asarray(ids[i], dtype=np.int64).tolist(),
            workload=str(wl[i]),
            session_id=None if sess is None or sess[i] is None else int(sess[i]),  # type: ignore[call-overload]
            turn=0 if turns is None or turns[i] is None else int(turns[i]),  # type: ignore[call-overload]
            prefix_hash_ids=()
            if hashes is None or hashes[i] is None
            else tuple(int(h) for h in hashes[i]),  # type: ignore[union-attr]
            prompt_text=None if texts is None else texts[i],  # type: ignore[arg-type]
            prefix_segments=shared[i],
        )
        for i in range(n)
    ]
