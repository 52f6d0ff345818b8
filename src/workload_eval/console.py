"""Terminal output shared by commands: the end-of-run table and progress bars (rich).

Progress goes to stderr so stdout stays clean for tables and JSON.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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


def _ci(summary: Mapping[str, Any], key: str, scale: float) -> str:
    low, high = summary.get(f"{key}_ci_low"), summary.get(f"{key}_ci_high")
    if low is None or high is None:
        return "-"
    return f"{fmt(low, scale)}-{fmt(high, scale)}"


def summary_table(summary: Mapping[str, Any], *, title: str | None = None) -> Table:
    """The short table printed at the end of every run: each metric over the whole run,
    its confidence interval and its value in the steady-state window (when the summary
    has them)."""
    has_ci = "confidence_level" in summary
    has_steady = "steady.reached" in summary
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if has_ci:
        level = float(summary["confidence_level"])
        table.add_column(f"{level:.0%} CI", justify="right")
    if has_steady:
        table.add_column("steady state", justify="right")
    table.add_column("unit")

    def row(label: str, value: str, ci: str = "", steady: str = "", unit: str = "") -> None:
        cells = [label, value, *([ci] if has_ci else []), *([steady] if has_steady else [])]
        table.add_row(*cells, unit)

    def steady_of(key: str, scale: float = 1.0) -> str:
        return fmt(summary.get(f"steady.{key}"), scale) if summary.get("steady.reached") else "-"

    done, total = summary.get("num_completed"), summary.get("num_requests")
    row(
        "Requests completed / total",
        f"{fmt(done)} / {fmt(total)}",
        steady=f"{steady_of('num_completed')} / {steady_of('num_requests')}",
    )
    if summary.get("num_failed"):
        row("Requests failed or ignored", fmt(summary["num_failed"]))
    row("Duration", fmt(summary.get("duration_s")), unit="s")
    row("Preemptions", fmt(summary.get("preemptions")))
    for label, key, unit, scale in _ROWS:
        if key in summary:
            row(
                label,
                fmt(summary[key], scale),
                _ci(summary, key, scale),
                steady_of(key, scale),
                unit,
            )
        elif f"{key}_mean" in summary:
            stats = (f"{key}_mean", f"{key}_p99")
            mean, p99 = (summary.get(k) for k in stats)
            if mean is None and p99 is None:
                continue
            if unit == "ms" and max(x or 0.0 for x in (mean, p99)) >= 10:
                unit, scale = "s", 1.0
            row(
                label,
                f"{fmt(mean, scale)} / {fmt(p99, scale)}",
                " / ".join(_ci(summary, k, scale) for k in stats),
                " / ".join(steady_of(k, scale) for k in stats),
                unit,
            )
    users = _closed_loop_users(summary)
    if users is not None:
        in_flight = fmt(summary.get("in_flight_mean"))
        row("Users / mean in flight", f"{fmt(users)} / {in_flight}")
    if "prefix_cache_hit_rate_implied" in summary:
        measured = _percent(summary.get("prefix_cache_hit_rate"))
        implied = _percent(summary.get("prefix_cache_hit_rate_implied"))
        row("Prefix hits seen / implied", f"{measured} / {implied}", unit="%")
    return table


def _percent(value: Any) -> str:
    return "-" if value is None else fmt(100 * float(value))


def _resolved(summary: Mapping[str, Any], *path: str) -> Any:
    """A value inside the run record (summary["config"]), None when absent."""
    node: Any = summary.get("config")
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _closed_loop_users(summary: Mapping[str, Any]) -> int | None:
    users = _resolved(summary, "spec", "schedule", "concurrency")
    return users if isinstance(users, int) else None


def cache_reset_line(summary: Mapping[str, Any]) -> str | None:
    """What the console says when the prefix cache could not be emptied before the run."""
    cache = _resolved(summary, "resolved", "prefix_cache")
    if not isinstance(cache, Mapping) or cache.get("reset") not in ("refused", "failed"):
        return None
    return f"prefix cache not emptied before the run: {cache.get('reset_note') or cache['reset']}"


def steady_line(summary: Mapping[str, Any]) -> str | None:
    """Where the run was in steady state, or why it never was (None: an old summary)."""
    if "steady.reached" not in summary:
        return None
    if not summary["steady.reached"]:
        return f"steady state: none ({summary.get('steady.reason') or 'not reached'})"
    start, end = summary.get("steady.start_s"), summary.get("steady.end_s")
    return (
        f"steady state: arrivals from {fmt(start)} s to {fmt(end)} s "
        f"({summary.get('steady.method')}); intervals: {summary.get('ci_method')}"
    )


def slices_line(summary: Mapping[str, Any]) -> str | None:
    """How the run moved window by window (None: a summary without slices)."""
    width = summary.get("slices.width_s")
    if width is None:
        return None
    parts = [
        f"time slices: {fmt(summary.get('slices.count'))} x {fmt(width)} s (slices.parquet)",
        f"request throughput {fmt(summary.get('slices.request_throughput_min'))}"
        f"-{fmt(summary.get('slices.request_throughput_max'))} req/s "
        + ("per full slice" if summary.get("slices.full_count", 1) else "(no full slice)"),
    ]
    if summary.get("slices.ttft_p95_max") is not None:
        parts.append(f"p95 TTFT up to {fmt(summary['slices.ttft_p95_max'])} s")
    if summary.get("slices.kv_usage_max") is not None:
        parts.append(f"KV use up to {summary['slices.kv_usage_max']:.0%}")
    return ", ".join(parts)


def print_summary(
    summary: Mapping[str, Any], *, title: str | None = None, console: Console | None = None
) -> None:
    out = console or stdout_console()
    out.print(summary_table(summary, title=title))
    for line in (steady_line(summary), slices_line(summary)):
        if line:
            out.print(line, soft_wrap=True, highlight=False)
    config = summary.get("config")
    if isinstance(config, Mapping):  # a simulated run says which measurements back it
        from workload_eval.engines.sim.backing import backing_line

        line = backing_line(dict(config))
        if line:
            out.print(line, soft_wrap=True, highlight=False)
    reset = cache_reset_line(summary)
    if reset:
        out.print(reset, soft_wrap=True, highlight=False)


class _CountColumn(ProgressColumn):
    """``done/total unit``; just ``done unit`` while the total is unknown."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        total = f"/{task.total:,.0f}" if task.total else ""
        return Text(f"{task.completed:,.0f}{total} {self.unit}".rstrip())


# Redraws of a progress bar per second: rich's default of 10 costs a sweep's driver ~2% of a
# core (measured: 17 ms CPU per second at 10, 8 ms at 4); a bar of runs needs no more.
REDRAWS_PER_S = 4


class ProgressBar:
    """The one progress bar of the project: rich, on stderr; a silent no-op when disabled.

    Cheap to call every iteration: redraws are throttled, and a hot loop can skip the call
    while its position is below ``next_mark`` (infinite when disabled).
    """

    def __init__(
        self, total: float | None, *, description: str, unit: str = "", enabled: bool = True
    ) -> None:
        self._progress: Progress | None = None
        self._value, self._last = 0.0, 0.0
        self._total = total or 0.0
        self.next_mark = math.inf
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            _CountColumn(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
            refresh_per_second=REDRAWS_PER_S,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)
        self._set_mark()

    def _set_mark(self) -> None:
        step = self._total / 1000
        self.next_mark = self._value + step if step > 0 else math.inf

    def update_to(self, value: float, *, description: str | None = None) -> None:
        """Set the absolute position (e.g. simulated seconds so far)."""
        self._value = value
        if self._progress is None or (description is None and value < self.next_mark):
            return
        self._set_mark()
        now = time.monotonic()
        if description is None and now - self._last < 0.05:
            return
        self._last = now
        self._progress.update(self._task, completed=value, description=description)

    def advance(self, amount: float = 1.0, *, description: str | None = None) -> None:
        self.update_to(self._value + amount, description=description)

    def grow(self, amount: float) -> None:
        """More work was found (e.g. a capacity search proposed more runs)."""
        self._total += amount
        if self._progress is not None and amount:
            self._progress.update(self._task, total=self._total)
            self._set_mark()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._value)
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: float | None, *, description: str, unit: str = "", enabled: bool = True
) -> ProgressBar:
    """A progress bar; use it in a ``with`` block or call ``close()``."""
    return ProgressBar(total, description=description, unit=unit, enabled=enabled)


_WARNED: set[str] = set()


def warn_once(key: str, line: str) -> None:
    """One stderr line per ``key`` and process (a sweep repeats the same condition per point)."""
    if key in _WARNED:
        return
    _WARNED.add(key)
    stderr_console().print(line, soft_wrap=True, highlight=False)


def progress_default() -> bool:
    """Show progress bars when a person is watching stderr."""
    return sys.stderr.isatty()


__all__ = [
    "ProgressBar",
    "fmt",
    "print_summary",
    "progress_bar",
    "progress_default",
    "slices_line",
    "stderr_console",
    "stdout_console",
    "steady_line",
    "summary_table",
    "warn_once",
]
