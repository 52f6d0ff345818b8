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
    ids = df["prompt_token_ids"].tolist() if "prompt_token_ids" in cols else None
    sess = df["session_id"].tolist() if "session_id" in cols else None
    turns = df["turn"].tolist() if "turn" in cols else None
    hashes = df["hash_ids"].tolist() if "hash_ids" in cols else None
    texts = df["prompt_text"].tolist() if "prompt_text" in cols else None
    wl = df["workload"].tolist() if "workload" in cols else [df.attrs.get("workload", "")] * n
    shared = (
        prefix_segments(df, where=f"workload {df.attrs.get('workload', '')!r}".strip())
        if cols & set(STRUCTURE_COLUMNS)
        else None
    )
    out = []
    for i, (p, o) in enumerate(
        zip(df["prompt_len"].tolist(), df["output_len"].tolist(), strict=True)
    ):
        out.append(
            Request(
                request_id=first_id + i,
                prompt_len=int(p),
                output_len=int(o),
                prompt_token_ids=None
                if ids is None
                else np.asarray(ids[i], dtype=np.int64).tolist(),
                workload=str(wl[i]),
                session_id=None if sess is None or pd.isna(sess[i]) else int(sess[i]),
                turn=int(turns[i]) if turns is not None and not pd.isna(turns[i]) else 0,
                prefix_hash_ids=tuple(int(h) for h in hashes[i]) if hashes is not None else (),
                prompt_text=texts[i] if texts is not None else None,
                prefix_segments=shared[i] if shared is not None else (),
            )
        )
    return out
