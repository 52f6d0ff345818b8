"""On-disk cache of prepared (built + tokenized) workloads: Parquet + a JSON sidecar.

Keyed by the source's identity (path, size, mtime; or the hub fingerprint), the
tokenizer's identity, the workload definition and field mapping. Selection (length
filter, N, seed) runs on top of the cached table, so it never needs a key of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd

from workload_eval.storage import atomic_write_json, atomic_write_parquet

CACHE_DIR_ENV = "WORKLOAD_EVAL_CACHE_DIR"
PREP_VERSION = 1  # bump when building or tokenizing changes


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "workload-eval")


def file_identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def cache_key(**parts: Any) -> str:
    blob = json.dumps({"v": PREP_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _paths(key: str) -> tuple[Path, Path]:
    d = cache_dir() / "prepared"
    return d / f"{key}.parquet", d / f"{key}.json"


# Tables read in this process, by file identity: a sweep worker runs hundreds of points on
# the same few workloads, and reading a tokenized table (token ids included) costs ~30 ms.
_MEMO: OrderedDict[tuple[str, str], tuple[pd.DataFrame, dict[str, Any]]] = OrderedDict()
MEMO_ENTRIES = 8  # the paper's study: 4 workloads x 2 tokenizer families


def read_cached(key: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The cached table and its metadata, or None (a damaged entry counts as a miss).

    The table is shared with later calls in this process: callers select from it (new
    frames) and never modify it in place.
    """
    data, meta = _paths(key)
    if not (data.is_file() and meta.is_file()):
        return None
    ident = (file_identity(data), file_identity(meta))
    if (hit := _MEMO.get(ident)) is not None:
        _MEMO.move_to_end(ident)
        return hit[0], dict(hit[1])
    try:
        table, info = pd.read_parquet(data), json.loads(meta.read_text())
    except Exception:
        return None
    _MEMO[ident] = (table, info)
    while len(_MEMO) > MEMO_ENTRIES:
        _MEMO.popitem(last=False)
    return table, dict(info)


def write_cached(key: str, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Best effort: a read-only home must not stop a run."""
    data, meta_path = _paths(key)
    try:
        atomic_write_parquet(data, df, redact=False)  # the dataset as prepared, byte-exact
        atomic_write_json(meta_path, meta, redact=False)
    except OSError:
        pass
