"""Output-length models: how many tokens each request generates.

- ``reference`` (default): the workload's own output lengths, generated with ``ignore_eos``.
- ``eos:TOKENS[,early=F[,early_len=K]][,prompts=stretch]``: generation stops at EOS. Each
  output is cut at ``min(reference, stop)``; ``stop`` is ``1 + Geometric(p)`` (a constant
  per-token EOS probability ``p``) for most requests, and for a share ``F`` of them (default
  0) an early stop ``1 + Geometric(1/K)`` with mean about ``K`` tokens (default 4), which
  expresses a heavy mass of very short outputs (a model answering in a line where the
  reference wrote a paragraph). ``p`` is found by bisection so that the mean prompt + output
  tokens per request equals TOKENS. The stop model only shortens: a target at or above the
  mean after the early stops leaves the other outputs as they are (with a warning), unless
  ``prompts=stretch``, which scales every prompt by one factor to reach it (a dataset whose
  prompts were longer than ours: the paper's CNN/DailyMail articles, from the train split,
  are longer than our copy's); it also shrinks them, outputs left to the early stops, when
  even one-token outputs would exceed the target (prompts shorter than ours). ``p=P`` and
  ``prompt_scale=S`` give solved parameters (no solving: every sample of a workload gets the
  same stop model). ``reproduce`` runs this model with the paper's tokens per request
  (``paper_eos``), since the paper ran without ``ignore_eos``.
- ``recorded:RUN_DIR``: the tokens each request really generated in a run folder written by
  ``workload-eval run`` (e.g. a real engine with ``--no-ignore-eos``), matched by request id;
  the run must have used the same workload, seed and request count (checked).

Session turns carry their history in ``prompt_len``: when outputs change, later turns'
prompts change with them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from workload_eval.errors import UserError

EOS_BISECTION_STEPS = 60
EARLY_LEN_DEFAULT = 4.0
_EARLY_SALT = 0xE05  # the early-stop draws have their own stream: early=0 keeps the old draws
FORMS = (
    "reference, eos:TOKENS[,early=FRACTION[,early_len=TOKENS]][,prompts=stretch]"
    "[,p=P][,prompt_scale=S] or recorded:RUN_DIR"
)


@dataclass(frozen=True)
class Reference:
    def __str__(self) -> str:
        return "reference"


@dataclass(frozen=True)
class Eos:
    tokens: float
    early: float = 0.0
    early_len: float = EARLY_LEN_DEFAULT
    stretch: bool = False  # prompts=stretch: a target above what shortening leaves fills prompts
    # Solved parameters, given: applied as they are (TOKENS names the mean they were solved
    # for on another sample), so every sample of a workload gets the same stop model.
    p: float | None = None  # per-token stop probability (None: no geometric cut)
    prompt_scale: float | None = None

    @property
    def fixed(self) -> bool:
        return self.p is not None or self.prompt_scale is not None

    def __str__(self) -> str:
        extra = f",early={self.early:g},early_len={self.early_len:g}" if self.early else ""
        if self.stretch:
            extra += ",prompts=stretch"
        if self.p is not None:
            extra += f",p={self.p:.6g}"
        if self.prompt_scale is not None:
            extra += f",prompt_scale={self.prompt_scale:.6g}"
        return f"eos:{self.tokens:g}{extra}"


@dataclass(frozen=True)
class Recorded:
    run_dir: Path

    def __str__(self) -> str:
        return f"recorded:{self.run_dir}"


OutputLenModel = Reference | Eos | Recorded


_EOS_RANGES = {"early": (0.0, 1.0), "early_len": (1.0, 1e9), "p": (1e-9, 1.0)}
_EOS_RANGES["prompt_scale"] = (0.01, 100.0)


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
    """``reference`` | ``eos:TOKENS[,early=F[,early_len=K]][,prompts=stretch]`` |
    ``recorded:RUN_DIR``."""
    if text is None or text.strip() in ("", "reference"):
        return Reference()
    kind, sep, rest = text.strip().partition(":")
    if kind == "eos" and sep:
        head, *opts = rest.split(",")
        tokens = _float(head, "TOKENS", 1.0, 1e9, where)
        extra: dict[str, float] = {}
        stretch = False
        for opt in opts:
            key, eq, value = opt.partition("=")
            key = key.strip()
            if eq and key == "prompts" and value.strip() in ("keep", "stretch"):
                stretch = value.strip() == "stretch"
                continue
            if not eq or key not in _EOS_RANGES:
                raise UserError(
                    f"{where}: {opt!r}: expected early=FRACTION, early_len=TOKENS, "
                    "prompts=keep|stretch, p=PROBABILITY or prompt_scale=FACTOR"
                )
            extra[key] = _float(value, key, *_EOS_RANGES[key], where)
        return Eos(tokens, **extra, stretch=stretch)
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


def _early_cut(ref: np.ndarray, model: Eos, seed: int) -> np.ndarray:
    """Outputs after the early stops alone (``ref`` when ``early`` is 0)."""
    if model.early <= 0:
        return ref
    n = len(ref)
    # one stream for who stops early, one for how long: a request's draws do not depend on
    # how many requests the sample holds
    is_early = np.random.default_rng([seed, _EARLY_SALT, 0]).random(n) < model.early
    u = np.random.default_rng([seed, _EARLY_SALT, 1]).random(n)
    q = min(1.0, 1.0 / model.early_len)
    early_stop = 1 + np.floor(np.log1p(-u) / np.log1p(-q)) if q < 1 else np.ones(n)
    return np.where(is_early, np.minimum(ref, early_stop.astype(np.int64)), ref)


def _geometric_cut(base: np.ndarray, p: float | None, seed: int) -> np.ndarray:
    """``min(base, 1 + Geometric(p))`` with one uniform per request (row order)."""
    if p is None:
        return base
    u = np.random.default_rng(seed).random(len(base))
    with np.errstate(divide="ignore"):  # p -> 1: every output stops after one token
        stop = 1 + np.floor(np.log1p(-u) / np.log1p(-p)).astype(np.int64)
    return np.minimum(base, stop)


def _scaled(prompts: np.ndarray, outputs: np.ndarray, f: float, limit: int | None) -> np.ndarray:
    """Prompts times ``f`` (at least one token), each kept below ``limit - output`` (the
    seed's length filter) unless it was already longer."""
    top = (limit - 1 - outputs) if limit else np.full(len(prompts), 2**62)
    scaled = np.maximum(np.round(prompts * f).astype(np.int64), 1)
    return np.minimum(scaled, np.maximum(top, prompts))


def _prompt_factor(
    prompts: np.ndarray, outputs: np.ndarray, model: Eos, limit: int | None
) -> float:
    """The one factor for every prompt that brings the mean prompt + output to TOKENS."""

    def mean(f: float) -> float:
        return float((_scaled(prompts, outputs, f, limit) + outputs).mean())

    lo, hi = -7.0, 7.0  # log2 of the factor: 1/128 .. 128
    for _ in range(EOS_BISECTION_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(2**mid) < model.tokens else (lo, mid)
    return min(2**lo, 2**hi, key=lambda f: abs(mean(f) - model.tokens))


def solve_eos(df: pd.DataFrame, model: Eos, seed: int) -> Eos:
    """The model with its parameters solved on ``df``: ``p`` (None: no cut) and
    ``prompt_scale`` (``prompts=stretch``), so that the mean prompt + output is TOKENS."""
    if model.fixed:
        return model
    ref = df["output_len"].to_numpy(dtype=np.int64)
    prompts = df["prompt_len"].to_numpy(dtype=np.int64)
    sessions = "session_id" in df.columns and "turn" in df.columns
    if model.stretch and sessions:
        raise UserError(
            f"--output-len-model {model}: prompts=stretch applies to single-turn workloads "
            "(expected no session_id/turn columns)"
        )

    def history(outputs: np.ndarray) -> np.ndarray:  # fast path: no sessions, no history
        return with_history(df, outputs) if sessions else prompts

    cut_base = _early_cut(ref, model, seed)
    floor = (history(cut_base) + cut_base).mean()
    limit = df.attrs.get("max_model_len")
    if floor <= model.tokens:
        if model.stretch:  # the data's prompts were longer than ours
            return replace(model, prompt_scale=_prompt_factor(prompts, cut_base, model, limit))
        what = "the early stops alone bring" if model.early else "the reference"
        warnings.warn(
            f"--output-len-model {model}: {what} mean prompt + output is {floor:.1f} tokens, "
            "not above the target: outputs unchanged"
            + (" after the early stops" if model.early else "")
            + " (the stop model only shortens; prompts=stretch fills the rest with prompt)",
            stacklevel=3,
        )
        return replace(model, prompt_scale=1.0)
    ones = np.ones(len(ref), dtype=np.int64)
    if (history(ones) + ones).mean() > model.tokens:
        if model.stretch:  # the data's prompts were shorter than ours: they take the gap
            return replace(model, prompt_scale=_prompt_factor(prompts, cut_base, model, limit))
        raise UserError(
            f"--output-len-model {model}: cannot reach a mean of {model.tokens:g} tokens per "
            f"request (one output token each already gives {(history(ones) + 1).mean():.1f}); "
            "expected more"
        )
    lo, hi = 1e-7, 1.0
    for _ in range(EOS_BISECTION_STEPS):
        p = (lo + hi) / 2
        cut = _geometric_cut(cut_base, p, seed)
        lo, hi = (p, hi) if (history(cut) + cut).mean() > model.tokens else (lo, p)
    return replace(model, p=hi)


def eos_outputs(df: pd.DataFrame, model: Eos, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Output lengths (and prompt lengths: sessions' histories, stretched prompts) of the
    model, its parameters solved on ``df`` unless given."""
    fit = solve_eos(df, model, seed)
    ref = df["output_len"].to_numpy(dtype=np.int64)
    outputs = _geometric_cut(_early_cut(ref, fit, seed), fit.p, seed)
    if fit.prompt_scale is not None and fit.prompt_scale != 1.0:
        if "session_id" in df.columns and "turn" in df.columns:
            raise UserError(
                f"--output-len-model {model}: scaled prompts apply to single-turn workloads "
                "(expected no session_id/turn columns)"
            )
        prompts = df["prompt_len"].to_numpy(dtype=np.int64)
        return outputs, _scaled(prompts, outputs, fit.prompt_scale, df.attrs.get("max_model_len"))
    return outputs, with_history(df, outputs)


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
