"""Which requests a run gets: the seed's filter, first-N-then-shuffle, or uniform sampling.

The seed (benchmarks/trace.py of its vLLM fork) kept pairs with ``input + output <
max_seq_len``, repeated the kept list until it had N, cut it at N and then called
``random.shuffle`` after ``random.seed(seed)``; ``random.Random(seed).shuffle`` on the
indices gives the same permutation.

A workload whose local copy holds its categories in other proportions than the dataset the
seed ran (``WorkloadSpec.category_mix``: our Dolly copy is a quality-filtered subset) is
selected in the source's proportions: ``first`` interleaves the categories, each in file
order, always taking the one furthest below its share (and starting a category's list over
when it runs out, as the seed repeats a dataset shorter than N); ``random`` weights each row
by its category's share over its count.
"""

from __future__ import annotations

import functools
import random
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from workload_eval.errors import UserError

Sampling = Literal["first", "random"]
CATEGORY = "category"  # the column a category mix selects on (dropped after selection)
CategoryMix = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Selection:
    """How a run's requests are taken from a workload's rows (every table layout alike)."""

    num_requests: int | None  # None: every row that passes the filter
    max_model_len: int
    seed: int
    sampling: Sampling
    min_output_len: int  # an output must be longer (1 when a tokenized output holds a BOS)
    where: str  # names the workload in errors


def keep_mask(df: pd.DataFrame, max_model_len: int, min_output_len: int) -> np.ndarray:
    """Pairs that fit the context window and have a non-empty output."""
    p = df["prompt_len"].to_numpy()
    o = df["output_len"].to_numpy()
    return (p + o < max_model_len) & (o > min_output_len)


def _repeat_first(n_avail: int, n: int) -> np.ndarray:
    reps = -(-n // n_avail)
    return np.tile(np.arange(n_avail), reps)[:n]


def _empty(where: str, max_model_len: int, total: int) -> UserError:
    return UserError(
        f"{where}: no request left after dropping pairs with prompt + output >= "
        f"max_model_len={max_model_len} or an empty output ({total} records before; "
        "raise --max-model-len)"
    )


def _kept(df: pd.DataFrame, rule: Selection) -> tuple[pd.DataFrame, int]:
    """The rows that pass the seed's length filter, and how many requests to take."""
    kept = df[keep_mask(df, rule.max_model_len, rule.min_output_len)].reset_index(drop=True)
    if kept.empty:
        raise _empty(rule.where, rule.max_model_len, len(df))
    return kept, len(kept) if rule.num_requests is None else rule.num_requests


def _uniform(seed: int, population: int, n: int, p: np.ndarray | None = None) -> np.ndarray:
    """Uniform random sampling, with replacement only when more are asked than exist; or
    ``p``-weighted, always with replacement (so the weights hold for any n)."""
    replace = n > population or p is not None
    return np.random.default_rng(seed).choice(population, size=n, replace=replace, p=p)


def _shares(categories: np.ndarray, mix: CategoryMix) -> dict[str, float]:
    """The mix's share of every category present (categories the mix does not name: none)."""
    found = set(categories.tolist())
    present = {c: w for c, w in mix if w > 0 and c in found}
    total = sum(present.values())
    if not total:
        raise UserError(
            f"category mix {dict(mix)}: none of its categories is in the data "
            f"(found {sorted(found)[:5]})"
        )
    unnamed = sorted(found - dict(mix).keys())
    if unnamed:
        warnings.warn(
            f"categories {unnamed[:5]} are not in the mix {dict(mix)}: their rows are not drawn",
            stacklevel=4,
        )
    return {c: w / total for c, w in present.items()}


def mixed_first(categories: np.ndarray, mix: CategoryMix, n: int) -> np.ndarray:
    """The first ``n`` rows in the mix's proportions: the j-th row of a category with share s
    goes to position (j + 1/2) / s (Sainte-Lague's interleave; ties in the mix's order), each
    category in row order and started over when it runs out."""
    shares = _shares(categories, mix)
    keys, cats, rows = [], [], []
    for k, (c, share) in enumerate(shares.items()):
        j = np.arange(int(np.ceil(n * share)) + len(shares) + 1)  # more than the n take
        mine = np.flatnonzero(categories == c)
        keys.append((j + 0.5) / share)
        cats.append(np.full(len(j), k))
        rows.append(mine[j % len(mine)])
    order = np.lexsort((np.concatenate(cats), np.concatenate(keys)))[:n]
    return np.concatenate(rows)[order].astype(np.int64)


def _mix_weights(categories: np.ndarray, mix: CategoryMix) -> np.ndarray:
    cats = pd.Series(categories)
    weights = cats.map(_shares(categories, mix)).fillna(0.0) / cats.map(cats.value_counts())
    return weights.to_numpy(dtype=float)


def select_pairs(
    df: pd.DataFrame, rule: Selection, *, category_mix: CategoryMix | None = None
) -> pd.DataFrame:
    """Independent requests (text pairs or lengths without arrival times); with
    ``category_mix`` and a category column, in the mix's proportions (module docstring)."""
    kept, n = _kept(df, rule)
    mixed = category_mix is not None and CATEGORY in kept.columns
    cats = kept[CATEGORY].astype(str).to_numpy() if mixed else None
    if rule.sampling == "random":
        p = _mix_weights(cats, category_mix) if cats is not None and category_mix else None
        idx = _uniform(rule.seed, len(kept), n, p)
    else:
        first = (
            mixed_first(cats, category_mix, n)
            if cats is not None and category_mix
            else _repeat_first(len(kept), n)
        )
        idx = np.asarray(first, dtype=np.int64)[seed_permutation(len(first), rule.seed)]
    out = kept.iloc[idx].reset_index(drop=True)
    return out.drop(columns=[CATEGORY]) if CATEGORY in out.columns else out


@functools.lru_cache(maxsize=8)  # a few MB at most: one int64 per request
def seed_permutation(length: int, seed: int) -> np.ndarray:
    """The positions ``random.Random(seed).shuffle`` puts a list of ``length`` items in (it
    depends on the length and seed only); kept per process, as a sweep asks for the same
    ones for every point (the shuffle was a tenth of a simulated run's cost). Read-only."""
    order = list(range(length))
    random.Random(seed).shuffle(order)
    out = np.asarray(order, dtype=np.int64)
    out.flags.writeable = False
    return out


def select_trace(df: pd.DataFrame, rule: Selection) -> pd.DataFrame:
    """Trace requests stay in arrival order; repeating a trace shifts it by its span."""
    kept, n = _kept(df, rule)
    if rule.sampling == "random":
        idx = np.sort(_uniform(rule.seed, len(kept), n))
        return kept.iloc[idx].reset_index(drop=True)
    idx = _repeat_first(len(kept), n)
    out = kept.iloc[idx].reset_index(drop=True)
    if n > len(kept) and "arrival_time" in out:
        t = kept["arrival_time"].to_numpy()
        gap = float(np.mean(np.diff(t))) if len(t) > 1 else 1.0
        span = float(t[-1] - t[0]) + gap
        out["arrival_time"] = out["arrival_time"].to_numpy() + (np.arange(n) // len(kept)) * span
    return out


def select_sessions(df: pd.DataFrame, rule: Selection) -> pd.DataFrame:
    """Whole sessions (cut at their first turn that does not fit) until N turns.

    Sessions keep their turn order; the order of sessions is shuffled with the seed
    (``first``) or drawn uniformly (``random``). Repeats get new session ids.
    """
    ok = keep_mask(df, rule.max_model_len, rule.min_output_len)
    # a session ends at its first bad turn: later turns carry a longer history anyway
    bad_before = pd.Series(~ok).groupby(df["session_id"].to_numpy()).cumsum().to_numpy()
    kept = df[bad_before == 0].reset_index(drop=True)
    if kept.empty:
        raise _empty(rule.where, rule.max_model_len, len(df))
    starts = np.flatnonzero(
        np.r_[True, kept["session_id"].to_numpy()[1:] != kept["session_id"].to_numpy()[:-1]]
    )
    bounds = list(zip(starts, np.r_[starts[1:], len(kept)], strict=True))
    n = len(kept) if rule.num_requests is None else rule.num_requests
    if rule.sampling == "random":
        rng = np.random.default_rng(rule.seed)
        order: list[int] = []
        total = 0
        while total < n:
            for s in rng.permutation(len(bounds)).tolist():
                order.append(s)
                total += bounds[s][1] - bounds[s][0]
                if total >= n:
                    break
    else:
        order, total, s = [], 0, 0
        while total < n:
            order.append(s % len(bounds))
            total += bounds[s % len(bounds)][1] - bounds[s % len(bounds)][0]
            s += 1
        random.Random(rule.seed).shuffle(order)
    pieces, sess_ids, remaining = [], [], n
    for new_id, s in enumerate(order):
        a, b = bounds[s]
        take = min(b - a, remaining)
        pieces.append(np.arange(a, a + take))
        sess_ids.append(np.full(take, new_id))
        remaining -= take
        if remaining == 0:
            break
    out = kept.iloc[np.concatenate(pieces)].reset_index(drop=True)
    out["session_id"] = np.concatenate(sess_ids)
    return out
