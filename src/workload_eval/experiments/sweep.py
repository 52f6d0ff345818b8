"""The sweep loop: run every point not yet stored, feed capacity searches, keep the index.

Resumable by construction: completed points are read back from the store (a capacity
search replays its stored probes and proposes the same next rates), points in flight
when the process died are simply run again. Ctrl-C cancels what is running and keeps
everything completed.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workload_eval import interrupts
from workload_eval.experiments.capacity import CapacityResult, CapacitySearch
from workload_eval.experiments.executors import Executor, Outcome, SequentialExecutor
from workload_eval.experiments.grid import CapacityTask, Point, expand, point_key
from workload_eval.experiments.spec import ExperimentSpec
from workload_eval.experiments.store import ResultStore, write_table
from workload_eval.metrics import Summary
from workload_eval.results import search_columns
from workload_eval.runner import SUMMARY_FILE
from workload_eval.storage import atomic_write_json

if TYPE_CHECKING:
    from workload_eval.console import ProgressBar

# Rewrite the index at most this often while running (a rewrite reads every stored row:
# more often costs the driver seconds over a long sweep; the end of the sweep writes it).
INDEX_EVERY_S = 10.0


@dataclass
class SweepResult:
    """What a sweep did; ``index`` and ``capacity`` are the tables written to OUT."""

    out: Path
    total_points: int  # fixed grid points (capacity probes come on top)
    searches: int
    reused: int
    ran: int
    failed: dict[str, str] = field(default_factory=dict)  # point key -> error
    input_errors: set[str] = field(default_factory=set)  # failed keys whose input was bad
    capacity: pd.DataFrame = field(default_factory=pd.DataFrame)
    index: pd.DataFrame = field(default_factory=pd.DataFrame)
    seeds: pd.DataFrame = field(default_factory=pd.DataFrame)  # intervals across seeds
    interrupted: bool = False
    wall_s: float = 0.0


@dataclass
class _Search:
    task: CapacityTask
    search: CapacitySearch
    failed: str | None = None
    probe_keys: dict[tuple[float, int], str] = field(default_factory=dict)


def run_sweep(
    spec: ExperimentSpec,
    out: str | Path,
    *,
    executor: Executor | None = None,
    progress: bool = False,
    log: Any = None,
) -> SweepResult:
    """Run every point and capacity search of ``spec`` into ``out``; resumes from it.

    The sweep closes ``executor`` when done (a Ray instance it started shuts down).
    """
    from workload_eval.console import progress_bar  # rich loads only where a sweep runs

    t0 = time.perf_counter()
    points, tasks = expand(spec)
    preflight(spec, points, tasks)
    store = ResultStore(out)
    removed = store.cleanup()
    if removed and log is not None:
        log(f"removed {len(removed)} incomplete point folder(s) left by an earlier run")
    foreign = store.foreign()
    if foreign and log is not None:
        log(f"left alone {len(foreign)} entr(y/ies) under {store.points_dir} not written here")
    atomic_write_json(store.root / "experiment.json", spec.model_dump(mode="json"))
    executor = executor or SequentialExecutor()
    bar = progress_bar(0, description="sweep", unit="runs", enabled=progress)
    state = _SweepState(store, executor, bar)
    try:
        with interrupts.unwrapped():
            state.run(points, tasks)
    except KeyboardInterrupt:
        state.interrupted = True
        executor.close(cancel=True)
    else:
        executor.close()
    finally:
        bar.close()
    index = state.rebuild_index()
    capacity = state.write_capacity()
    seeds = write_seeds(store.root, index)
    return SweepResult(
        out=store.root,
        total_points=len(points),
        searches=len(tasks),
        reused=len(state.reused_keys),
        ran=state.ran,
        failed=state.failed,
        input_errors=state.input_errors,
        capacity=capacity,
        index=index,
        seeds=seeds,
        interrupted=state.interrupted,
        wall_s=time.perf_counter() - t0,
    )


def write_seeds(root: Path, index: pd.DataFrame) -> pd.DataFrame:
    """``seeds.{parquet,csv}``: each configuration run under several seeds, with the
    across-seed mean and interval of every metric (analysis.seeds), from every stored
    point; nothing when no configuration has two seeds."""
    from workload_eval.analysis.seeds import across_seeds

    table = across_seeds(index)
    if table.empty:
        return table
    write_table(table.sort_values("config_key", kind="stable"), root / "seeds")
    return table


def preflight(spec: ExperimentSpec, points: list[Point], tasks: list[CapacityTask]) -> None:
    """Refuse the study before running anything if any point would fail on its settings."""
    from workload_eval.errors import UserError
    from workload_eval.preflight import check_run_spec

    for t in tasks:
        try:
            t.make_search()
        except UserError as e:
            raise UserError(
                f"{spec.source or 'spec'}: group {t.group!r}, engine {t.engine_label!r}, "
                f"capacity search: {e}"
            ) from None
    checks = [(p.group, p.engine_label, p.spec) for p in points]
    checks += [(t.group, t.engine_label, t.run_spec(t.options.start, t.seeds[0])) for t in tasks]
    seen: set[str] = set()
    for group, label, run_spec in checks:
        ident = run_spec.model_dump_json(exclude={"seed", "schedule"})
        ident += run_spec.schedule.kind
        if ident in seen:
            continue
        seen.add(ident)
        try:
            check_run_spec(run_spec)
        except UserError as e:
            raise UserError(
                f"{spec.source or 'spec'}: group {group!r}, engine {label!r}, workload "
                f"{run_spec.workload!r}: {e}"
            ) from None


class _SweepState:
    """Book-keeping of one sweep: what is in flight and which search waits on what."""

    def __init__(self, store: ResultStore, executor: Executor, bar: ProgressBar) -> None:
        self.store, self.executor, self.bar = store, executor, bar
        self.rows: dict[str, dict[str, Any]] = {}  # the points this sweep ran
        self.index_rows: dict[str, dict[str, Any]] = {}  # every stored point's row, read once
        self.specs: dict[str, Any] = {}
        # Point keys to submit. A capacity search's probes go first: each search is a
        # chain (its next rate waits on this verdict), so they are the sweep's critical
        # path; fixed points fill the workers in between, and keep the last chains'
        # tail from idling a core.
        self.probes: deque[str] = deque()
        self.fixed: deque[str] = deque()
        self.queued: set[str] = set()
        self.in_flight: set[str] = set()
        self.waiters: dict[str, list[tuple[_Search, float, int]]] = defaultdict(list)
        self.searches: list[_Search] = []
        self.failed: dict[str, str] = {}
        self.input_errors: set[str] = set()
        self.reused_keys: set[str] = set()
        self.ran = 0
        self.interrupted = False
        self._last_index = time.monotonic()
        self._indexed_rows = 0

    def run(self, points: list[Point], tasks: list[CapacityTask]) -> None:
        for p in points:
            if self.store.has(p.key):
                self.reused_keys.add(p.key)
            else:
                self._enqueue(p.key, p.spec, probe=False)
        self.searches = [_Search(t, t.make_search()) for t in tasks]
        for s in self.searches:
            self._advance(s)
        while self.probes or self.fixed or self.executor.pending():
            while (self.probes or self.fixed) and self.executor.pending() < self.executor.slots:
                key = (self.probes or self.fixed).popleft()
                self.in_flight.add(key)
                self.executor.submit(key, self.specs[key])
            for outcome in self.executor.wait():
                self._finish(outcome)
            stale = len(self.rows) != self._indexed_rows  # points stored since the last one
            if stale and time.monotonic() - self._last_index > INDEX_EVERY_S:
                self.rebuild_index()
                self._last_index = time.monotonic()

    def rebuild_index(self) -> pd.DataFrame:
        self.index_rows.update(self.rows)
        self._indexed_rows = len(self.rows)
        return self.store.rebuild_index(self.index_rows)

    def _enqueue(self, key: str, spec: Any, *, probe: bool = True) -> None:
        if key in self.queued or key in self.in_flight or key in self.failed:
            return
        self.specs[key] = spec
        (self.probes if probe else self.fixed).append(key)
        self.queued.add(key)
        self.bar.grow(1)

    def _advance(self, s: _Search) -> None:
        """Feed a search stored results until it needs runs (queued) or is done."""
        while s.failed is None:
            pairs = s.search.propose()
            if not pairs:
                return
            waiting = False
            for rate, seed in pairs:
                spec = s.task.run_spec(rate, seed)
                key = point_key(spec)
                s.probe_keys[(rate, seed)] = key
                if self.store.has(key):
                    if key not in self.rows:  # stored before this sweep started
                        self.reused_keys.add(key)
                    s.search.record(rate, seed, self.store.summary(key))
                elif key in self.failed:
                    s.failed = self.failed[key]
                    return
                else:
                    waiting = True
                    if all(w[0] is not s for w in self.waiters[key]):
                        self.waiters[key].append((s, rate, seed))
                    self._enqueue(key, spec)
            if waiting:
                return

    def _finish(self, outcome: Outcome) -> None:
        key = outcome.task_id
        self.in_flight.discard(key)
        self.queued.discard(key)
        spec = self.specs[key]
        summary: Summary | None = None
        if outcome.error is not None or outcome.files is None:
            self.failed[key] = outcome.error or "no result"
            if outcome.user_error:
                self.input_errors.add(key)
            label = "failed"
        else:
            # Parsed once, from the bytes in hand: the index row and the searches use it.
            summary = json.loads(outcome.files[SUMMARY_FILE])
            self.store.write_point(spec, outcome.files, wall_s=outcome.wall_s, key=key)
            self.rows[key] = self.store.index_row(key, summary)
            self.ran += 1
            label = f"{spec.workload} {spec.schedule.kind}"
        self.bar.advance(description=label)
        for s, rate, seed in self.waiters.pop(key, []):
            if summary is None:
                s.failed = self.failed[key]
            else:
                s.search.record(rate, seed, summary)
            self._advance(s)

    def _resolved_kv(self, keys: Iterable[str]) -> int | None:
        """The KV blocks a stored probe's engine resolved (all probes of a search share it)."""
        for key in keys:
            if self.store.has(key):
                row = self.rows.get(key) or self.store.index_row(key)
                kv = row.get("kv_blocks")
                return int(kv) if isinstance(kv, int | float) else None
        return None

    def write_capacity(self) -> pd.DataFrame:
        """capacity.{parquet,csv} (one row per finished search) and capacity_probes.*."""
        rows, probes = [], []
        for s in sorted(self.searches, key=lambda s: s.task.key):
            if not (s.search.done or s.failed):
                continue
            result: CapacityResult = s.search.result()
            first = s.task.run_spec(s.task.options.start, s.task.seeds[0])
            cfg = search_columns(first, self._resolved_kv(s.probe_keys.values()))
            row = {
                "task": s.task.key,
                "group": s.task.group,
                "engine_label": s.task.engine_label,
                **cfg,
                **result.as_row(),
                "searched": s.task.searched,  # capacity_rate: req/s, or users (concurrency)
                "seeds": ",".join(map(str, s.task.seeds)),
                "error": s.failed or "",
            }
            if s.failed:
                row["capacity_rate"] = None
            rows.append(row)
            for r in result.probes.reindex(columns=["rate", "seed", "passed"]).to_dict("records"):
                probes.append(
                    {
                        "task": s.task.key,
                        "rate": r["rate"],
                        "seed": r["seed"],
                        "passed": r["passed"],
                        "key": s.probe_keys.get((r["rate"], r["seed"]), ""),
                    }
                )
        df = pd.DataFrame(rows)
        if self.searches or (self.store.root / "capacity.parquet").exists():
            write_table(
                df if not df.empty else pd.DataFrame({"task": pd.Series([], dtype=str)}),
                self.store.root / "capacity",
            )
            pdf = pd.DataFrame(probes)
            write_table(
                pdf if not pdf.empty else pd.DataFrame({"task": pd.Series([], dtype=str)}),
                self.store.root / "capacity_probes",
            )
        return df
