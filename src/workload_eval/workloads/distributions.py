"""Length distributions of synthetic workloads: fixed, uniform, normal, lognormal, empirical.

Written as an integer (fixed), a call-like string (``uniform(100,200)``,
``normal(512,128,1,2048)``, ``lognormal(512,256)``, ``empirical(lengths.csv,prompt_len)``) or
a mapping with ``type`` and the same fields. Samples are rounded to integers and clamped to
``[min, max]``; a seed makes them exact (numpy's PCG64 via ``default_rng``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from workload_eval.errors import UserError
from workload_eval.strict import NoBoolNumbers

MAX_TOKENS = 10_000_000  # upper bound on any one length (tokens): larger is a typo
FORMS = (
    "an integer, uniform(min,max), normal(mean,stdev[,min,max]), "
    "lognormal(mean,stdev[,min,max]) or empirical(file,column)"
)
_Len = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
_Pos = Annotated[float, Field(gt=0, le=MAX_TOKENS, allow_inf_nan=False)]
_NonNeg = Annotated[float, Field(ge=0, le=MAX_TOKENS, allow_inf_nan=False)]


class _Dist(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixed(_Dist):
    """Every request the same length."""

    type: Literal["fixed"] = "fixed"
    value: _Len

    def sample(self, n: int, rng: np.random.Generator, base: Path | None) -> np.ndarray:
        return np.full(n, self.value, dtype=np.int64)

    @property
    def lowest(self) -> int:
        return self.value


class _Bounded(_Dist):
    min: _Len = 1
    max: _Len = MAX_TOKENS

    @model_validator(mode="after")
    def _ordered(self) -> _Bounded:
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self

    def _clamp(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), self.min, self.max).astype(np.int64)

    @property
    def lowest(self) -> int:
        return self.min


class Uniform(_Bounded):
    """Integers drawn uniformly from [min, max], both included."""

    type: Literal["uniform"] = "uniform"
    min: _Len
    max: _Len

    def sample(self, n: int, rng: np.random.Generator, base: Path | None) -> np.ndarray:
        return rng.integers(self.min, self.max, size=n, endpoint=True, dtype=np.int64)


class Normal(_Bounded):
    """Gaussian lengths, rounded, clamped to [min, max]."""

    type: Literal["normal"] = "normal"
    mean: _NonNeg
    stdev: _NonNeg

    def sample(self, n: int, rng: np.random.Generator, base: Path | None) -> np.ndarray:
        return self._clamp(rng.normal(self.mean, self.stdev, size=n))


class LogNormal(_Bounded):
    """Lognormal lengths with this mean and standard deviation (of the lengths themselves)."""

    type: Literal["lognormal"] = "lognormal"
    mean: _Pos
    stdev: _NonNeg

    def sample(self, n: int, rng: np.random.Generator, base: Path | None) -> np.ndarray:
        sigma2 = np.log1p((self.stdev / self.mean) ** 2)
        mu = np.log(self.mean) - sigma2 / 2
        return self._clamp(rng.lognormal(mu, np.sqrt(sigma2), size=n))


class Empirical(_Dist):
    """Lengths drawn uniformly, with replacement, from a column of a data file."""

    type: Literal["empirical"] = "empirical"
    file: str
    column: str

    def sample(self, n: int, rng: np.random.Generator, base: Path | None) -> np.ndarray:
        values = _column(str(resolve_path(self.file, base)), self.column)
        return values[rng.integers(0, len(values), size=n)]

    @property
    def lowest(self) -> int:
        return 0  # known only once the file is read


LengthDist = Fixed | Uniform | Normal | LogNormal | Empirical
_KINDS: dict[str, type[_Dist]] = {
    "fixed": Fixed,
    "uniform": Uniform,
    "normal": Normal,
    "lognormal": LogNormal,
    "empirical": Empirical,
}
DIST_ARGS = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "normal": ("mean", "stdev", "min", "max"),
    "lognormal": ("mean", "stdev", "min", "max"),
    "empirical": ("file", "column"),
}
_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.S)


def resolve_path(file: str, base: Path | None) -> Path:
    """A file named by a workload spec: relative to the spec file's folder, if any."""
    p = Path(file).expanduser()
    return p if p.is_absolute() or base is None else base / p


@lru_cache(maxsize=16)
def _column(path: str, column: str) -> np.ndarray:
    from workload_eval.workloads.lengths_files import shown
    from workload_eval.workloads.readers import read_table

    table = read_table(path)
    if column not in table.columns:
        found = ", ".join(map(str, table.columns[:12])) or "none"
        raise UserError(f"{path}: no column {column!r} (found: {found})")
    v = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(v) | (v < 0) | (v != np.floor(v)) | (v > MAX_TOKENS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{path}: record {row}: column {column!r} = {shown(table[column].iloc[row])} "
            f"(expected a token count, an integer in 0..{MAX_TOKENS})"
        )
    if len(v) == 0:
        raise UserError(f"{path}: column {column!r} is empty (expected token counts)")
    return v.astype(np.int64)


def parse_number(text: str) -> int | float | str:
    """An int if the text is one, else a float, else the text (validation says what is wrong)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def parse_length(value: Any) -> Any:
    """Integers and call-like strings become mappings; mappings pass through to validation."""
    if isinstance(value, bool):
        raise ValueError(f"expected {FORMS} (got {value!r})")
    if isinstance(value, int | np.integer):
        return {"type": "fixed", "value": int(value)}
    if isinstance(value, float) and value.is_integer():
        return {"type": "fixed", "value": int(value)}
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return {"type": "fixed", "value": int(text)}
        m = _CALL.match(text)
        if m is None or m.group(1) not in DIST_ARGS:
            raise ValueError(f"expected {FORMS} (got {value!r})")
        kind, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        names = DIST_ARGS[kind]
        need = 2 if kind in ("normal", "lognormal") else len(names)
        if not need <= len(args) <= len(names) or any(a == "" for a in args):
            raise ValueError(f"{kind}(...) takes {', '.join(names)} (got {value!r})")
        values = args if kind == "empirical" else [parse_number(a) for a in args]
        return {"type": kind, **dict(zip(names, values, strict=False))}
    if isinstance(value, dict) and value.get("type") not in _KINDS:
        raise ValueError(
            f"type {value.get('type')!r}: expected one of {', '.join(_KINDS)} (or {FORMS})"
        )
    return value


Length = Annotated[LengthDist, Field(discriminator="type"), BeforeValidator(parse_length)]


def sample_lengths(
    dist: LengthDist, n: int, seed: int, salt: int, base: Path | None = None
) -> np.ndarray:
    """``n`` integer lengths; ``salt`` gives each field its own stream of the seed."""
    return dist.sample(n, np.random.default_rng([seed, salt]), base)
