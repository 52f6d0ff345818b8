"""Shipped token-length profiles (input/output counts only) for runs with no data at all.

Written by ``scripts/build_profiles.py``; one Parquet file per workload and tokenizer family.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from workload_eval.errors import UserError

FAMILIES = ("opt", "llama-2")
MANIFEST = "manifest.json"


def profiles_dir() -> Path:
    return Path(str(resources.files("workload_eval").joinpath("data", "profiles")))


def profile_path(workload: str, family: str) -> Path:
    return profiles_dir() / f"{workload}.{family}.parquet"


def has_profile(workload: str, family: str) -> bool:
    return profile_path(workload, family).is_file()


def load_profile(workload: str, family: str) -> pd.DataFrame:
    """Lengths in dataset order, before any filtering (selection applies as for real data)."""
    path = profile_path(workload, family)
    if not path.is_file():
        raise UserError(
            f"no shipped length profile for workload {workload!r} and tokenizer family "
            f"{family!r} (profiles exist for: {', '.join(sorted(available_profiles()))})"
        )
    return pd.read_parquet(path)


def profile_family_for(workload: str, family: str) -> str:
    """``family`` when a profile exists for it, else the one family that has a profile
    (lengths derived with another tokenizer, e.g. Llama-2-only data), else ``family``."""
    if has_profile(workload, family):
        return family
    others = [f for f in FAMILIES if has_profile(workload, f)]
    return others[0] if others else family


def available_profiles() -> set[str]:
    return {p.name.split(".")[0] for p in profiles_dir().glob("*.parquet")}
