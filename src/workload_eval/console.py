"""Terminal output shared by commands: the end-of-run table and progress bars (rich).

Progress goes to stderr so stdout stays clean for tables and JSON.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# (label, summary key, unit, scale) rows of the run table; latencies in ms below 10 s.
_ROWS: tuple[tuple[str, str, str, float], ...] = (
    ("Request throughput", "request_throughput", "req/s", 1.0),
    ("Token throughput (prompt+gen)", "token_throughput", "tok/s", 1.0),
    ("Output token throughput", "output_token_throughput", "tok/s", 1.0),
    ("Normalized latency mean", "normalized_latency_mean", "s/tok", 1.0),
    ("Normalized latency p95", "normalized_latency_p95", "s/tok", 1.0),
    ("TTFT mean / p99", "ttft", "ms", 1e3),
    ("TPOT mean / p99", "tpot", "ms", 1e3),
    ("ITL mean / p99", "itl", "ms", 1e3),
    ("E2E latency mean / p99", "e2e_latency", "ms", 1e3),
    ("Goodput (SLO met)", "goodput", "req/s", 1.0),
)


def stdout_console() -> Console:
    return Console(highlight=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def fmt(value: Any, scale: float = 1.0) -> str:
    """A number for humans: 4 significant digits, '-' when undefined."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value) * scale
    if v != v:  # NaN
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def summary_table(summary: Mapping[str, Any], *, title: str | None = None) -> Table:
    """The short table printed at the end of every run."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    done, total = summary.get("num_completed"), summary.get("num_requests")
    table.add_row("Requests completed / total", f"{fmt(done)} / {fmt(total)}", "")
    if summary.get("num_failed"):
        table.add_row("Requests failed or ignored", fmt(summary["num_failed"]), "")
    table.add_row("Duration", fmt(summary.get("duration_s")), "s")
    table.add_row("Preemptions", fmt(summary.get("preemptions")), "")
    for label, key, unit, scale in _ROWS:
        if key in summary:
            table.add_row(label, fmt(summary[key], scale), unit)
        elif f"{key}_mean" in summary:
            mean, p99 = summary[f"{key}_mean"], summary.get(f"{key}_p99")
            if mean is None and p99 is None:
                continue
            if unit == "ms" and max(x or 0.0 for x in (mean, p99)) >= 10:
                unit, scale = "s", 1.0
            table.add_row(label, f"{fmt(mean, scale)} / {fmt(p99, scale)}", unit)
    return table


def print_summary(
    summary: Mapping[str, Any], *, title: str | None = None, console: Console | None = None
) -> None:
    out = console or stdout_console()
    out.print(summary_table(summary, title=title))
    config = summary.get("config")
    if isinstance(config, Mapping):  # a simulated run says which measurements back it
        from workload_eval.engines.sim.backing import backing_line

        line = backing_line(dict(config))
        if line:
            out.print(line, soft_wrap=True, highlight=False)


class ProgressHandle:
    """What a long loop reports to; cheap to call every iteration (updates are throttled)."""

    def __init__(self, progress: Progress | None, task: int | None, total: float | None) -> None:
        self._progress, self._task = progress, task
        self._value, self._shown, self._last = 0.0, 0.0, 0.0
        self._step = (total or 0) / 1000

    def update_to(self, value: float) -> None:
        """Set the absolute position (e.g. simulated seconds so far)."""
        self._value = value
        if self._progress is None or value - self._shown < self._step:
            return
        now = time.monotonic()
        if now - self._last < 0.05 and value - self._shown < 50 * self._step:
            return
        self._shown, self._last = value, now
        self._progress.update(self._task, completed=value)

    def advance(self, amount: float = 1.0) -> None:
        self.update_to(self._value + amount)

    def set_description(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._value)


@contextmanager
def progress_bar(
    total: float | None, *, description: str, unit: str = "", enabled: bool = True
) -> Iterator[ProgressHandle]:
    """A rich progress bar on stderr, or a no-op handle when disabled."""
    if not enabled:
        yield ProgressHandle(None, None, total)
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit if total else unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr_console(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        handle = ProgressHandle(progress, task, total)
        try:
            yield handle
        finally:
            handle._finish()


def progress_default() -> bool:
    """Show progress bars when a person is watching stderr."""
    return sys.stderr.isatty()


__all__ = [
    "ProgressHandle",
    "fmt",
    "print_summary",
    "progress_bar",
    "progress_default",
    "stderr_console",
    "stdout_console",
    "summary_table",
]
