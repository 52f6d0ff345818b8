"""Which prompt parts requests share, derived from a workload table's structural columns.

A workload table says what is shared with plain columns (so it can be cached, exported as
a trace and read back): ``prefix_group`` + ``prefix_len`` (rows of a group share their first
``prefix_len`` tokens, e.g. a system prompt), ``prompt_id`` (rows with the same id have the
same prompt), and ``session_id`` + ``turn`` (a turn's prompt is the session's history, i.e.
every earlier turn's prompt and output, plus its own new text). This module turns them into
``contracts.PromptSegment`` tuples, the one form the synthesizer and the simulator's prefix
cache read: at most two segments per request, so a table of any size converts in linear time.

Keys: ``prefix:<group>`` (the group's shared prefix), then ``prompt:<id>`` (the rest of a
recurring prompt) or ``session:<id>`` (the rest of a session turn: the conversation so far).
A session's segment grows turn by turn under one key, so segments are *prefix-stable*: the
ids of a key at length L are the first L ids of that key at any greater length (turn r's
prompt extends turn r-1's prompt and output). A prefix cache that hashes (key, block index)
sees exactly this sharing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workload_eval.contracts import PromptSegment
from workload_eval.errors import UserError

STRUCTURE_COLUMNS = ("prefix_group", "prefix_len", "prompt_id", "session_id", "turn")


def prefix_key(group: object) -> str:
    return f"prefix:{group}"


def prompt_key(prompt_id: object) -> str:
    return f"prompt:{prompt_id}"


def session_key(session: object) -> str:
    return f"session:{session}"


def _present(df: pd.DataFrame, col: str) -> list[object] | None:
    """A column's values with missing cells as None, or None when the column is absent."""
    if col not in df.columns:
        return None
    s = df[col]
    if pd.api.types.is_float_dtype(s):  # ids read as floats (a column with gaps): 3.0 -> 3
        return [None if pd.isna(v) else int(v) if float(v).is_integer() else v for v in s]
    return s.astype(object).where(s.notna(), None).tolist() if s.hasnans else s.tolist()


def _check_histories(
    df: pd.DataFrame, p_len: np.ndarray, o_len: np.ndarray, head: np.ndarray, where: str
) -> None:
    """Each turn's prompt includes the previous turn's prompt and output (same session)."""
    present = df["session_id"].notna().to_numpy()
    codes = pd.factorize(df["session_id"])[0]  # -1 for missing
    turns = df["turn"].to_numpy(dtype=np.int64) if "turn" in df.columns else np.zeros(len(df))
    order = np.lexsort((turns, codes))
    order = order[present[order]]
    if len(order) < 2:
        return
    same = codes[order[1:]] == codes[order[:-1]]
    prev, cur = order[:-1], order[1:]
    need = p_len[prev] + o_len[prev] - head[prev] + head[cur]
    bad = same & (p_len[cur] < need)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        i, j = int(cur[k]), int(prev[k])
        turn = df["turn"].iloc[i] if "turn" in df.columns else "?"
        raise UserError(
            f"{where}: record {i}: session {df['session_id'].iloc[i]} turn {turn}: prompt_len "
            f"{p_len[i]} is shorter than the history before it ({p_len[j] + o_len[j]} tokens "
            "of the previous turn's prompt and output); expected each turn's prompt_len to "
            "include its session's history"
        )


def prefix_segments(
    df: pd.DataFrame, *, where: str = "workload"
) -> list[tuple[PromptSegment, ...]]:
    """One segment tuple per row (empty where a row shares nothing); rows in table order.

    A turn whose ``prompt_len`` is shorter than the previous turn's prompt + output does not
    include its history: that is a user error (the sessions contract of ``sharegpt_chat``).
    """
    n = len(df)
    p_len = df["prompt_len"].to_numpy(dtype=np.int64)
    o_len = df["output_len"].to_numpy(dtype=np.int64)
    groups = _present(df, "prefix_group")
    plens = _present(df, "prefix_len")
    pids = _present(df, "prompt_id")
    sessions = _present(df, "session_id")
    if groups is not None and plens is None:
        raise UserError(f"{where}: column 'prefix_group' needs a 'prefix_len' column too")
    head = np.zeros(n, np.int64)
    if groups is not None and plens is not None:
        head = np.asarray(
            [
                int(x) if g is not None and x is not None else 0
                for g, x in zip(groups, plens, strict=True)
            ],
            dtype=np.int64,
        )
        bad = (head < 0) | (head > p_len)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"{where}: record {i}: prefix_len {head[i]} is not within 0..prompt_len "
                f"({p_len[i]})"
            )
    if sessions is not None:
        _check_histories(df, p_len, o_len, head, where)
    heads: dict[tuple[object, int], PromptSegment] = {}
    tails: dict[tuple[str, object, int], PromptSegment] = {}
    rest = (p_len - head).tolist()
    hl = head.tolist()
    out: list[tuple[PromptSegment, ...]] = []
    for i in range(n):
        segs: tuple[PromptSegment, ...] = ()
        if hl[i] > 0:
            assert groups is not None
            k = (groups[i], hl[i])
            seg = heads.get(k)
            if seg is None:
                seg = heads[k] = PromptSegment(prefix_key(groups[i]), hl[i])
            segs = (seg,)
        tail_of: object = None
        kind = ""
        if sessions is not None and sessions[i] is not None:
            tail_of, kind = sessions[i], "session"
        elif pids is not None and pids[i] is not None:
            tail_of, kind = pids[i], "prompt"
        if kind and rest[i] > 0:
            k2 = (kind, tail_of, rest[i])
            seg = tails.get(k2)
            if seg is None:
                key = session_key(tail_of) if kind == "session" else prompt_key(tail_of)
                seg = tails[k2] = PromptSegment(key, rest[i])
            segs += (seg,)
        out.append(segs)
    return out
