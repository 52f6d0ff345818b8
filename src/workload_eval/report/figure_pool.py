"""Drawing a report's figures on several cores: this process and ``jobs - 1`` workers.

Workers are spawned (no state shared with the driver) when the report starts, so they
import matplotlib while the driver reads the results. The jobs are queued biggest first;
the driver draws too, taking each time the biggest job no worker has started (a queued
job it cancels). A job a worker could not draw (an error, a killed worker) is drawn again
here, so a figure that fails fails exactly as it does in one process, and a lost worker
loses no figure. Workers ignore Ctrl-C: the driver stops them and cancels the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from workload_eval.report.figure_jobs import COST, FigureJob, render_shipped, ship, warm_up

# A job's tables are written once and read straight back: memory-backed /dev/shm when the
# machine has a writable one, else the system's temp folder.
_SHM = Path("/dev/shm")


def _scratch_dir() -> str | None:
    return str(_SHM) if _SHM.is_dir() and os.access(_SHM, os.W_OK | os.X_OK) else None


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the driver, which cancels them cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class TableFiles:
    """Each table written once as an Arrow file, and only when it reads back exactly."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._paths: dict[int, str | None] = {}
        self._kept: list[pd.DataFrame] = []  # ids stay unique while the tables live

    def __call__(self, table: pd.DataFrame) -> str | None:
        key = id(table)
        if key not in self._paths:
            self._kept.append(table)
            self._paths[key] = self._write(table, self._folder / f"t{len(self._kept)}.arrow")
        return self._paths[key]

    @staticmethod
    def _write(table: pd.DataFrame, path: Path) -> str | None:
        try:
            table.to_feather(path)
            back = pd.read_feather(path)
        except (ValueError, TypeError, NotImplementedError, ImportError, OSError, KeyError):
            return None  # a column Arrow cannot hold (mixed types): drawn here instead
        except Exception as e:  # pyarrow's own errors (ArrowInvalid, ArrowTypeError)
            if type(e).__module__.startswith("pyarrow"):
                return None
            raise
        same = (
            back.shape == table.shape
            and back.index.equals(table.index)
            and list(back.columns) == list(table.columns)
            and back.dtypes.equals(table.dtypes)
            and back.equals(table)
        )
        return str(path) if same else None


class FigurePool:
    """Draws figure jobs here and in ``jobs - 1`` spawned workers (none for one job)."""

    def __init__(self, jobs: int = 1) -> None:
        self._workers = max(0, int(jobs) - 1)
        self._pool: cf.ProcessPoolExecutor | None = None
        if self._workers:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_sigint,
            )
            for _ in range(self._workers):  # each submit starts one more worker
                self._pool.submit(warm_up)

    def render(self, jobs: list[FigureJob]) -> list[list[Path]]:
        """Each job's paths, in the order of ``jobs``."""
        if self._pool is None or len(jobs) < 2:
            return [job.render_here() for job in jobs]
        with tempfile.TemporaryDirectory(prefix="we-report-", dir=_scratch_dir()) as tmp:
            return self._render(jobs, TableFiles(Path(tmp)))

    def _render(self, jobs: list[FigureJob], store: TableFiles) -> list[list[Path]]:
        assert self._pool is not None
        out: list[list[Path] | None] = [None] * len(jobs)
        order = sorted(range(len(jobs)), key=lambda i: -COST.get(jobs[i].kind, 1.0))
        queued: list[tuple[int, cf.Future[dict[str, Any]]]] = []
        for i in order:
            text = ship(jobs[i], store)
            try:
                if text is not None:
                    queued.append((i, self._pool.submit(render_shipped, text)))
                    continue
            except RuntimeError:  # the pool broke (a worker died at start): drawn here
                pass
            out[i] = jobs[i].render_here()
        for i, fut in queued:  # the biggest job no worker has started yet
            if fut.cancel():
                out[i] = jobs[i].render_here()
        for i, fut in queued:
            if out[i] is None:
                out[i] = self._collect(jobs[i], fut)
        return [paths or [] for paths in out]

    @staticmethod
    def _collect(job: FigureJob, fut: cf.Future[dict[str, Any]]) -> list[Path]:
        try:
            payload = fut.result()
        except Exception:  # a worker died (killed, out of memory): draw it here
            return job.render_here()
        if "error" in payload:  # drawn here again: fails as it does in one process
            return job.render_here()
        for message in payload.get("warnings", []):
            warnings.warn(message, stacklevel=1)
        return [Path(p) for p in payload["paths"]]

    def close(self, *, cancel: bool = False) -> None:
        if self._pool is None:
            return
        if cancel:  # our own workers: stop them now rather than wait for unwanted figures
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._pool = None

    def __enter__(self) -> FigurePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(cancel=exc_type is not None)
