"""Output-length models: how many tokens each request generates.

- ``reference`` (default): the workload's own output lengths, generated with ``ignore_eos``.
- ``eos:TOKENS[,early=F[,early_len=K]]``: generation stops at EOS. Each output is cut at
  ``min(reference, stop)``; ``stop`` is ``1 + Geometric(p)`` (a constant per-token EOS
  probability ``p``) for most requests, and for a share ``F`` of them (default 0) an early
  stop ``1 + Geometric(1/K)`` with mean about ``K`` tokens (default 4), which expresses a
  heavy mass of very short outputs (a model answering in a line where the reference wrote a
  paragraph). ``p`` is found by bisection so that the mean prompt + output tokens per request
  equals TOKENS. The model only shortens: a target at or above the mean after the early stops
  leaves the rest of the outputs as they are (with a warning; e.g. the paper's CNN/DailyMail
  articles were longer than our copy's, yet a quarter of its outputs stopped at once). With ``early=0`` it is exactly the stop model that
  ``benchmarks/sim_vs_paper.py`` used for the paper comparison (the paper ran without
  ``ignore_eos``).
- ``recorded:RUN_DIR``: the tokens each request really generated in a run folder written by
  ``workload-eval run`` (e.g. a real engine with ``--no-ignore-eos``), matched by request id;
  the run must have used the same workload, seed and request count (checked).

Session turns carry their history in ``prompt_len``: when outputs change, later turns'
prompts change with them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.errors import UserError

EOS_BISECTION_STEPS = 60
EARLY_LEN_DEFAULT = 4.0
_EARLY_SALT = 0xE05  # the early-stop draws have their own stream: early=0 keeps the old draws
FORMS = "reference, eos:TOKENS[,early=FRACTION[,early_len=TOKENS]] or recorded:RUN_DIR"


@dataclass(frozen=True)
class Reference:
    def __str__(self) -> str:
        return "reference"


@dataclass(frozen=True)
class Eos:
    tokens: float
    early: float = 0.0
    early_len: float = EARLY_LEN_DEFAULT

    def __str__(self) -> str:
        extra = f",early={self.early:g},early_len={self.early_len:g}" if self.early else ""
        return f"eos:{self.tokens:g}{extra}"


@dataclass(frozen=True)
class Recorded:
    run_dir: Path

    def __str__(self) -> str:
        return f"recorded:{self.run_dir}"


OutputLenModel = Reference | Eos | Recorded


def _float(text: str, what: str, lo: float, hi: float, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not lo <= v <= hi:
        raise UserError(f"{where}: {what} {text!r}: expected a number in [{lo:g}, {hi:g}]")
    return v


def parse_output_len_model(
    text: str | None, *, where: str = "--output-len-model"
) -> OutputLenModel:
    """``reference`` | ``eos:TOKENS[,early=F[,early_len=K]]`` | ``recorded:RUN_DIR``."""
    if text is None or text.strip() in ("", "reference"):
        return Reference()
    kind, sep, rest = text.strip().partition(":")
    if kind == "eos" and sep:
        head, *opts = rest.split(",")
        tokens = _float(head, "TOKENS", 1.0, 1e9, where)
        extra: dict[str, float] = {}
        for opt in opts:
            key, eq, value = opt.partition("=")
            key = key.strip()
            if not eq or key not in ("early", "early_len"):
                raise UserError(f"{where}: {opt!r}: expected early=FRACTION or early_len=TOKENS")
            lo, hi = (0.0, 1.0) if key == "early" else (1.0, 1e9)
            extra[key] = _float(value, key, lo, hi, where)
        return Eos(tokens, **extra)
    if kind == "recorded" and sep and rest.strip():
        return Recorded(Path(rest.strip()).expanduser())
    raise UserError(f"{where}: {text!r}: expected {FORMS}")


def with_history(df: pd.DataFrame, outputs: np.ndarray) -> np.ndarray:
    """Prompt lengths after outputs change: a turn's history holds its session's earlier outputs."""
    p = df["prompt_len"].to_numpy(dtype=np.int64)
    if "session_id" not in df.columns or "turn" not in df.columns:
        return p
    delta = pd.Series(outputs - df["output_len"].to_numpy(dtype=np.int64), index=df.index)
    order = df.sort_values(["session_id", "turn"], kind="stable").index
    shifted = (
        delta.loc[order].groupby(df.loc[order, "session_id"].to_numpy()).cumsum() - delta.loc[order]
    )
    return p + shifted.reindex(df.index).to_numpy(dtype=np.int64)


def eos_outputs(df: pd.DataFrame, model: Eos, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Output lengths (and prompt lengths, for sessions) that meet the target mean."""
    ref = df["output_len"].to_numpy(dtype=np.int64)
    prompts = df["prompt_len"].to_numpy(dtype=np.int64)
    if model.early == 0 and (prompts + ref).mean() <= model.tokens:
        warnings.warn(
            f"--output-len-model {model}: the reference mean prompt + output is "
            f"{(prompts + ref).mean():.1f} tokens, not above the target: outputs unchanged "
            "(the stop model only shortens)",
            stacklevel=3,
        )
        return ref, prompts
    n = len(ref)
    sessions = "session_id" in df.columns and "turn" in df.columns

    def history(outputs: np.ndarray) -> np.ndarray:  # fast path: no sessions, no history
        return with_history(df, outputs) if sessions else prompts

    u = np.random.default_rng(seed).random(n)
    cut_base = ref
    if model.early > 0:
        er = np.random.default_rng([seed, _EARLY_SALT])
        is_early = er.random(n) < model.early
        q = min(1.0, 1.0 / model.early_len)
        early_stop = 1 + np.floor(np.log1p(-er.random(n)) / np.log1p(-q)) if q < 1 else np.ones(n)
        cut_base = np.where(is_early, np.minimum(ref, early_stop.astype(np.int64)), ref)
    if model.early > 0:
        early_prompts = history(cut_base)
        floor = (early_prompts + cut_base).mean()
        if floor <= model.tokens:
            warnings.warn(
                f"--output-len-model {model}: the early stops alone bring the mean to "
                f"{floor:.1f} tokens per request, not above the target: only the early stops "
                "apply (the stop model only shortens)",
                stacklevel=3,
            )
            return cut_base, early_prompts
    ones = np.ones(n, dtype=np.int64)
    shortest = (history(ones) + ones).mean()
    if shortest > model.tokens:
        raise UserError(
            f"--output-len-model {model}: cannot reach a mean of {model.tokens:g} tokens per "
            f"request (one output token each already gives {shortest:.1f}); expected more"
        )
    lo, hi = 1e-7, 1.0
    best = (cut_base, history(cut_base))
    for _ in range(EOS_BISECTION_STEPS):
        p = (lo + hi) / 2
        with np.errstate(divide="ignore"):  # p -> 1: every output stops after one token
            stop = 1 + np.floor(np.log1p(-u) / np.log1p(-p)).astype(np.int64)
        cut = np.minimum(cut_base, stop)
        new_prompts = history(cut)
        if (new_prompts + cut).mean() > model.tokens:
            lo = p
        else:
            hi = p
        best = (cut, new_prompts)
    return best


def recorded_outputs(df: pd.DataFrame, model: Recorded) -> np.ndarray:
    """The generated token counts of a recorded run, matched by request id (row order)."""
    path = model.run_dir / "requests.parquet"
    if not path.is_file():
        raise UserError(f"--output-len-model {model}: {path} not found (expected a run folder)")
    try:
        rec = pd.read_parquet(
            path, columns=["request_id", "generated_tokens", "expected_output_tokens", "status"]
        )
    except Exception as e:
        raise UserError(f"{path}: not a run's requests table ({type(e).__name__})") from None
    rec = rec.drop_duplicates("request_id").set_index("request_id").sort_index()
    n = len(df)
    if len(rec) != n or not (rec.index.to_numpy() == np.arange(n)).all():
        raise UserError(
            f"{path}: the run recorded {len(rec)} requests, this workload has {n} (expected a run "
            "of the same workload, seed and request count)"
        )
    ref = df["output_len"].to_numpy(dtype=np.int64)
    exp = pd.to_numeric(rec["expected_output_tokens"], errors="coerce").to_numpy()
    mismatch = np.flatnonzero(exp != ref)
    if len(mismatch):
        i = int(mismatch[0])
        raise UserError(
            f"{path}: request {i} expected {exp[i]:g} output tokens there and {ref[i]} here "
            "(expected a run of the same workload, seed and request count)"
        )
    gen = pd.to_numeric(rec["generated_tokens"], errors="coerce").to_numpy()
    ok = (rec["status"].to_numpy() == "ok") & (gen >= 1)
    if not ok.all():
        warnings.warn(
            f"{path}: {int((~ok).sum())} requests did not complete there; they keep their "
            "reference output length",
            stacklevel=3,
        )
    return np.where(ok, gen, ref).astype(np.int64)


def apply_output_len_model(df: pd.DataFrame, model: OutputLenModel, seed: int) -> pd.DataFrame:
    """The table with outputs (and session histories) per the model; ``reference`` is a no-op."""
    if isinstance(model, Reference):
        return df
    if isinstance(model, Eos):
        outputs, prompts = eos_outputs(df, model, seed)
    else:
        outputs = recorded_outputs(df, model)
        prompts = with_history(df, outputs)
    out = df.copy()
    out["output_len"] = outputs
    if not np.array_equal(prompts, df["prompt_len"].to_numpy()):
        out["prompt_len"] = prompts
        out = out.drop(columns=[c for c in ("prompt_token_ids",) if c in out.columns])
    out.attrs = {**df.attrs, "output_len_model": str(model)}
    return out
