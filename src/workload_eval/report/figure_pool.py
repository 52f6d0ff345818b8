"""Drawing a report's figures on several cores: this process and ``jobs - 1`` workers.

Workers are spawned (no state shared with the driver) when the report starts, so they
import matplotlib while the driver reads the results. Jobs wait in one queue, biggest
first: a worker takes the next as soon as it is free, and the driver, once its own tables
are written, draws the rest itself. A job a worker could not draw (an error, a killed
worker) is drawn again here, so a figure that fails fails exactly as it does in one
process and a lost worker loses no figure. Workers ignore Ctrl-C: the driver stops them.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import multiprocessing
import os
import signal
import tempfile
import threading
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


# A report has about a dozen figures of 0.2-2 s each, and a worker costs ~1 s of CPU to
# start (matplotlib, pandas): past six processes the biggest figure bounds the time anyway.
MAX_PROCESSES = 6


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
    """Draws figure jobs here and in ``jobs - 1`` spawned workers (none for one job; at
    most ``MAX_PROCESSES`` processes in all).

    ``add`` queues jobs, biggest first; a feeder thread hands the next one to a worker as
    soon as it is free (one job each, so none waits behind another's queue). ``collect``
    draws here the biggest jobs left, then returns every job's paths in the order added.
    """

    def __init__(self, jobs: int = 1) -> None:
        self._workers = max(0, min(int(jobs), MAX_PROCESSES) - 1)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._jobs: list[FigureJob] = []
        self._drawn: list[list[Path] | None] = []
        self._futures: dict[int, cf.Future[dict[str, Any]]] = {}
        self._queue: list[tuple[float, int, str]] = []  # (minus cost, job, its JSON)
        self._here: list[int] = []  # jobs whose tables do not travel exactly
        self._busy = 0  # jobs a worker holds
        self._closed = False
        self._changed = threading.Condition()
        if self._workers:
            self._scratch = tempfile.TemporaryDirectory(prefix="we-report-", dir=_scratch_dir())
            self._tables = TableFiles(Path(self._scratch.name))
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_sigint,
            )
            for _ in range(self._workers):  # each submit starts one more worker
                self._pool.submit(warm_up)
            self._feeder = threading.Thread(target=self._feed, name="figure-feeder", daemon=True)
            self._feeder.start()

    def add(self, jobs: list[FigureJob]) -> None:
        """Queue ``jobs`` (one process: draw them now, in order)."""
        shipped = []
        for job in jobs:
            i = len(self._jobs)
            self._jobs.append(job)
            self._drawn.append(job.render_here() if self._pool is None else None)
            if self._pool is not None:
                shipped.append((-COST.get(job.kind, 1.0), i, ship(job, self._tables)))
        with self._changed:  # all at once: the biggest goes first
            for cost, i, text in shipped:
                if text is None:  # a table that does not travel exactly
                    self._here.append(i)
                else:
                    heapq.heappush(self._queue, (cost, i, text))
            self._changed.notify_all()

    def _feed(self) -> None:
        """Hand the biggest queued job to each free worker (a thread of the driver)."""
        assert self._pool is not None
        while True:
            with self._changed:
                while not self._closed and not (self._queue and self._busy < self._workers):
                    self._changed.wait()
                if self._closed:
                    return
                _, i, text = heapq.heappop(self._queue)
                try:
                    fut = self._pool.submit(render_shipped, text)
                except RuntimeError:  # the pool broke (a worker died): drawn here
                    self._here.append(i)
                    continue
                self._busy += 1
                self._futures[i] = fut
            fut.add_done_callback(self._freed)

    def _freed(self, _: cf.Future[dict[str, Any]]) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    def _take(self) -> int | None:
        """The biggest job no worker has taken, for this process to draw."""
        with self._changed:
            if self._here:
                return self._here.pop(0)
            return heapq.heappop(self._queue)[1] if self._queue else None

    def collect(self) -> list[list[Path]]:
        """The paths of every job added, in the order added."""
        if self._pool is not None:
            while (i := self._take()) is not None:
                self._drawn[i] = self._jobs[i].render_here()
            self._stop_feeding()
            for i, fut in sorted(self._futures.items()):
                if self._drawn[i] is None:
                    self._drawn[i] = self._collect(self._jobs[i], fut)
        return [paths or [] for paths in self._drawn]

    def _stop_feeding(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._feeder.join()

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
        self._stop_feeding()
        if cancel:  # our own workers: stop them now rather than wait for unwanted figures
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                proc.terminate()
        # Every figure is written: a worker's exit (~0.3 s) need not hold the report up
        # (the interpreter joins it at exit).
        self._pool.shutdown(wait=cancel, cancel_futures=cancel)
        self._pool = None
        self._scratch.cleanup()

    def __enter__(self) -> FigurePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(cancel=exc_type is not None)
