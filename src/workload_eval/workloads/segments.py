"""Which prompt parts requests share, derived from a workload table's structural columns.

A workload table says what is shared with plain columns (so it can be cached, exported as
a trace and read back): ``prefix_group`` + ``prefix_len`` (rows of a group share their first
``prefix_len`` tokens, e.g. a system prompt), ``prompt_id`` (rows with the same id have the
same prompt), and ``session_id`` + ``turn`` (a turn's prompt is the session's history, i.e.
every earlier turn's prompt and output, plus its own new text). This module turns them into
``contracts.PromptSegment`` tuples, the one form the synthesizer and the simulator's prefix
cache read. Keys are plain strings; every segment with the same key gets the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workload_eval.contracts import PromptSegment
from workload_eval.errors import UserError

STRUCTURE_COLUMNS = ("prefix_group", "prefix_len", "prompt_id", "session_id", "turn")


def prefix_key(group: object) -> str:
    return f"prefix:{group}"


def prompt_key(prompt_id: object) -> str:
    return f"prompt:{prompt_id}"


def turn_keys(session: object, turn: int) -> tuple[str, str]:
    """Keys of a session turn's own new text and of its output (history of later turns)."""
    return f"session:{session}:{turn}:in", f"session:{session}:{turn}:out"


def _seg(key: str, length: int) -> tuple[PromptSegment, ...]:
    return (PromptSegment(key, int(length)),) if length > 0 else ()


def _present(df: pd.DataFrame, col: str) -> np.ndarray | None:
    """A column's values with missing cells as None, or None when the column is absent."""
    if col not in df.columns:
        return None
    s = df[col]
    return s.astype(object).where(s.notna(), None).to_numpy()


class _Table:
    """The structural columns of one workload table, read once."""

    def __init__(self, df: pd.DataFrame, where: str) -> None:
        self.where = where
        self.p_len = df["prompt_len"].to_numpy(dtype=np.int64)
        self.o_len = df["output_len"].to_numpy(dtype=np.int64)
        self.groups = _present(df, "prefix_group")
        self.plens = _present(df, "prefix_len")
        self.pids = _present(df, "prompt_id")
        self.sessions = _present(df, "session_id")
        n = len(df)
        self.turns = (
            df["turn"].to_numpy(dtype=np.int64) if "turn" in df.columns else np.zeros(n, np.int64)
        )
        if self.groups is not None and self.plens is None:
            raise UserError(f"{where}: column 'prefix_group' needs a 'prefix_len' column too")

    def head(self, i: int) -> tuple[tuple[PromptSegment, ...], int]:
        """The row's group prefix segment and its length (none: ``((), 0)``)."""
        if self.groups is None or self.groups[i] is None:
            return (), 0
        assert self.plens is not None
        length = int(self.plens[i]) if self.plens[i] is not None else 0
        if not 0 <= length <= self.p_len[i]:
            raise UserError(
                f"{self.where}: record {i}: prefix_len {length} is not within 0..prompt_len "
                f"({self.p_len[i]})"
            )
        return _seg(prefix_key(self.groups[i]), length), length

    def single(self, i: int) -> tuple[PromptSegment, ...]:
        """A request outside any session: its group prefix, then its prompt id's text."""
        segs, used = self.head(i)
        if self.pids is not None and self.pids[i] is not None:
            segs += _seg(prompt_key(self.pids[i]), int(self.p_len[i]) - used)
        return segs


def prefix_segments(
    df: pd.DataFrame, *, where: str = "workload"
) -> list[tuple[PromptSegment, ...]]:
    """One segment tuple per row (empty where a row shares nothing); rows in table order.

    Session turns are chained in ``turn`` order within a session whatever the row order, so
    a turn's segments are the previous turn's segments, that turn's output, and its own text.
    A turn whose ``prompt_len`` is shorter than the previous turn's prompt + output does not
    include its history: that is a user error (the sessions contract of ``sharegpt_chat``).
    """
    t = _Table(df, where)
    if t.sessions is None:
        return [t.single(i) for i in range(len(df))]
    out: list[tuple[PromptSegment, ...]] = [()] * len(df)
    keys = pd.DataFrame({"s": [str(s) for s in t.sessions], "t": t.turns})
    order = keys.sort_values(["s", "t"], kind="stable").index.to_numpy()
    prev_session: object = None
    hist: tuple[PromptSegment, ...] = ()
    hist_len = 0
    for i in order.tolist():
        sid = t.sessions[i]
        if sid is None:
            out[i] = t.single(i)
            continue
        if sid != prev_session:
            hist, hist_len = t.head(i)
            prev_session = sid
        own = int(t.p_len[i]) - hist_len
        if own < 0:
            raise UserError(
                f"{where}: record {i}: session {sid} turn {t.turns[i]}: prompt_len {t.p_len[i]} "
                f"is shorter than the history before it ({hist_len} tokens of earlier prompts "
                "and outputs); expected each turn's prompt_len to include its session's history"
            )
        k_in, k_out = turn_keys(sid, int(t.turns[i]))
        out[i] = hist + _seg(k_in, own)
        hist = out[i] + _seg(k_out, int(t.o_len[i]))
        hist_len = int(t.p_len[i]) + int(t.o_len[i])
    return out


def shared_tokens(segments: Sequence[PromptSegment]) -> int:
    return sum(s.length for s in segments)
