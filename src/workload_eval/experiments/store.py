"""The crash-safe result store of a sweep: one folder per completed point, plus an index.

A point is written into a hidden temp folder, its marker ``point.json`` last, then the
folder is renamed to ``points/<key>``: a point folder either is complete or does not
exist. Leftovers of a killed run (the store's own ``.tmp-<key>-*`` and ``.old-<key>-*``
folders) are removed on open; anything else under ``points/`` is the user's and is left
alone (and ignored). The index is rebuilt from the completed points only, sorted by
key, so a resumed sweep and an uninterrupted one write byte-identical index files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from workload_eval.contracts import Cell
from workload_eval.errors import UserError
from workload_eval.experiments.grid import point_key, run_spec_json
from workload_eval.metrics import Summary
from workload_eval.redaction import scrub_frame
from workload_eval.results import CONFIG_JSON, point_row, points
from workload_eval.runner import RunResult, RunSpec, load_run
from workload_eval.storage import (
    atomic_write_bytes,
    atomic_write_text,
    parquet_bytes,
    strict_json,
    write_new_file,
)

MARKER = "point.json"
POINT_FORMAT = "workload-eval-point/1"
# The names this store gives its folders: points/<key>, and the temp folders of a write.
KEY_RE = re.compile(r"^[0-9a-f]{16}$")
OWN_TEMP_RE = re.compile(r"^\.(tmp|old)-[0-9a-f]{16}-[A-Za-z0-9_]+$")


class ResultStore:
    """``OUT/points/<key>/`` folders and ``OUT/index.{parquet,csv}`` over them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.points_dir = self.root / "points"
        self.points_dir.mkdir(parents=True, exist_ok=True)

    # -- points ------------------------------------------------------------------------
    def point_dir(self, key: str) -> Path:
        return self.points_dir / key

    def has(self, key: str) -> bool:
        return (self.point_dir(key) / MARKER).is_file()

    def completed_keys(self) -> list[str]:
        return sorted(
            p.name
            for p in self.points_dir.iterdir()
            if KEY_RE.match(p.name) and (p / MARKER).is_file()
        )

    def cleanup(self) -> list[str]:
        """Remove the temp folders a killed write left (only names this store creates);
        returns the removed names. A user's own files under points/ are never touched."""
        removed = []
        for p in sorted(self.points_dir.iterdir()):
            if OWN_TEMP_RE.match(p.name) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        return removed

    def foreign(self) -> list[str]:
        """Entries under points/ this store did not write (left alone, never read)."""
        return sorted(
            p.name
            for p in self.points_dir.iterdir()
            if not (KEY_RE.match(p.name) and (p / MARKER).is_file())
            and not OWN_TEMP_RE.match(p.name)
        )

    def write_point(
        self,
        spec: RunSpec,
        files: Mapping[str, bytes],
        *,
        wall_s: float | None = None,
        key: str | None = None,
    ) -> str:
        """Store one finished run atomically; returns its key (``key``: point_key(spec)
        when the caller has it already). The files go into a hidden temp folder, each
        synced, the marker last; renaming the folder is what makes the point exist."""
        spec_json = run_spec_json(spec)
        key = key or point_key(spec_json)
        tmp = Path(tempfile.mkdtemp(dir=self.points_dir, prefix=f".tmp-{key}-"))
        try:
            for name, data in files.items():
                write_new_file(tmp / name, data)
            marker = {
                "format": POINT_FORMAT,
                "key": key,
                "spec": spec_json,
                "files": sorted(files),
                "wall_s": wall_s,
                "finished_at": time.time(),
            }
            write_new_file(tmp / MARKER, strict_json(marker).encode("utf-8"))
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700; results are meant to be shared
            final = self.point_dir(key)
            if final.exists() and not (final / MARKER).is_file():
                raise UserError(
                    f"{final}: exists and was not written by workload-eval (move it away)"
                )
            if final.exists():  # a duplicate copy: move it aside atomically, then drop it
                old = Path(tempfile.mkdtemp(dir=self.points_dir, prefix=f".old-{key}-"))
                os.replace(final, old / key)
                shutil.rmtree(old, ignore_errors=True)
            os.rename(tmp, final)
            _fsync_dir(self.points_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return key

    def summary(self, key: str) -> Summary:
        return json.loads((self.point_dir(key) / "summary.json").read_text())

    def load_run(self, key: str) -> RunResult:
        return load_run(self.point_dir(key))

    # -- index -------------------------------------------------------------------------
    def index_row(self, key: str, summary: Summary | None = None) -> dict[str, Cell]:
        """The point's row of the points table (results.point_row); key = its folder name;
        ``summary``: its summary.json already parsed (a sweep has it in memory)."""
        path = self.point_dir(key) / "summary.json"
        return point_row(self.summary(key) if summary is None else summary, key, where=path)

    def rebuild_index(self, rows: dict[str, dict[str, Cell]] | None = None) -> pd.DataFrame:
        """Write index.parquet and index.csv from every completed point, sorted by key: the
        points table without the run records (each point's summary.json has its own).

        ``rows`` caches rows already read (key -> row); missing ones are read from disk and
        added to it, so a sweep that rebuilds its index as it goes reads each point once.
        """
        keys = self.completed_keys()
        cache = rows if rows is not None else {}
        for k in keys:
            if k not in cache:
                cache[k] = self.index_row(k)
        table = [cache[k] for k in keys]
        df = points(table, by_key=True).drop(columns=[CONFIG_JSON])
        write_table(df, self.root / "index")
        return df


def write_table(df: pd.DataFrame, stem: Path) -> None:
    """Atomic ``stem.parquet`` + ``stem.csv`` (deterministic bytes for the same frame)."""
    df = scrub_frame(df)
    atomic_write_bytes(stem.with_suffix(".parquet"), parquet_bytes(df, redact=False))
    atomic_write_text(stem.with_suffix(".csv"), df.to_csv(index=False, lineterminator="\n"))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
