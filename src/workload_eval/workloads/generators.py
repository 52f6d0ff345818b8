"""Turn a workload spec into its request table (lengths and sharing columns, no token ids).

Every generator is exact for a seed: the same spec, count and seed give the same table.
Each drawn quantity has its own random stream (``default_rng([seed, salt])``), so changing
one distribution leaves the others' draws unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.errors import UserError
from workload_eval.workloads.distributions import sample_lengths
from workload_eval.workloads.shared_prefix import SharedPrefixWorkload, shared_prefix_table
from workload_eval.workloads.specs import GeneratedSpec, SessionsWorkload, SyntheticWorkload

# one stream per drawn quantity (arbitrary distinct constants)
SALT_PROMPT, SALT_OUTPUT, SALT_TURNS, SALT_THINK = 101, 102, 103, 104


def _checked(values: np.ndarray, field: str, where: str) -> np.ndarray:
    if len(values) and values.min() < 1:
        raise UserError(f"{where}: {field}: drew a length of {values.min()} (expected >= 1)")
    return values


def synthetic_table(
    spec: SyntheticWorkload, n: int, seed: int, base: Path | None, where: str
) -> pd.DataFrame:
    """``n`` independent requests, lengths drawn from the two distributions."""
    return pd.DataFrame(
        {
            "prompt_len": _checked(
                sample_lengths(spec.prompt_tokens, n, seed, SALT_PROMPT, base),
                "prompt_tokens",
                where,
            ),
            "output_len": _checked(
                sample_lengths(spec.output_tokens, n, seed, SALT_OUTPUT, base),
                "output_tokens",
                where,
            ),
        }
    )


def _session_turns(
    spec: SessionsWorkload, n: int | None, seed: int, base: Path | None
) -> np.ndarray:
    """Turns per session: ``num_sessions`` sessions, or as many as ``n`` turns need (last cut)."""
    if n is None:
        return sample_lengths(spec.turns, spec.num_sessions, seed, SALT_TURNS, base)
    # draw in the same stream until the total reaches n; a longer draw extends a shorter one
    size = max(16, n)
    while True:
        turns = sample_lengths(spec.turns, size, seed, SALT_TURNS, base)
        total = np.cumsum(turns)
        if total[-1] >= n:
            k = int(np.searchsorted(total, n)) + 1
            turns = turns[:k].copy()
            turns[-1] -= int(total[k - 1]) - n
            return turns
        size *= 2


def sessions_table(
    spec: SessionsWorkload, n: int | None, seed: int, base: Path | None, where: str
) -> pd.DataFrame:
    """Sessions in order, turns in order; a turn's prompt includes the session's history."""
    turns = _checked(_session_turns(spec, n, seed, base), "turns", where)
    total = int(turns.sum())
    session = np.repeat(np.arange(len(turns)), turns)
    starts = np.r_[0, np.cumsum(turns)[:-1]]
    turn = np.arange(total) - np.repeat(starts, turns)
    own = _checked(
        sample_lengths(spec.prompt_tokens, total, seed, SALT_PROMPT, base), "prompt_tokens", where
    )
    out = _checked(
        sample_lengths(spec.output_tokens, total, seed, SALT_OUTPUT, base), "output_tokens", where
    )
    step = own + out
    before = np.cumsum(step) - step  # tokens of all earlier turns, across sessions
    history = before - np.repeat(before[starts], turns)
    table = pd.DataFrame(
        {
            "session_id": session,
            "turn": turn,
            "prompt_len": spec.system_prompt_tokens + history + own,
            "output_len": out,
        }
    )
    if spec.system_prompt_tokens > 0:
        table["prefix_group"] = 0
        table["prefix_len"] = spec.system_prompt_tokens
    think = np.full(total, spec.think_time)
    if spec.think_time_dist == "exponential" and spec.think_time > 0:
        think = np.random.default_rng([seed, SALT_THINK]).exponential(spec.think_time, total)
    table["think_time"] = np.where(turn == 0, 0.0, think)
    return table


def generate(
    spec: GeneratedSpec,
    num_requests: int | None,
    seed: int,
    *,
    base: Path | None = None,
    where: str = "workload",
) -> pd.DataFrame:
    """The request table of a generated workload; ``spec.seed``, when set, replaces ``seed``."""
    seed = spec.seed if getattr(spec, "seed", None) is not None else seed
    if isinstance(spec, SyntheticWorkload):
        return synthetic_table(spec, num_requests or spec.num_requests, seed, base, where)
    if isinstance(spec, SessionsWorkload):
        return sessions_table(spec, num_requests, seed, base, where)
    if isinstance(spec, SharedPrefixWorkload):
        table = shared_prefix_table(spec, [num_requests or spec.num_prompts], seed)
        table = table.drop(columns=["stage", "index"])
        # a user's next turn waits for its previous one (E2 user_session.py), see schedules
        table.attrs["serialize_turns"] = spec.multi_turn
        return table
    raise TypeError(f"not a generated workload: {spec.kind}")
