"""Did a run measure anything, and can its numbers be trusted? Said on the console.

Every run prints its verdict after the table: valid, or invalid with the reasons its
engine gave (``EngineReport.invalid_reasons``: the schedule not kept, token counts that
disagree with the workload, an interruption); and when requests failed, the first few
distinct error messages with how many requests each ended. A run in which no request
succeeded exits with :data:`errors.EXIT_INCOMPLETE` (its files are written all the same).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from rich.console import Console

from workload_eval.contracts import RunRecords
from workload_eval.redaction import scrub_text

SHOWN_ERRORS = 5  # distinct error messages printed; the rest are counted
_NUMBERS = re.compile(r"\d+(\.\d+)?")  # "request 12 failed" and "request 13 failed" are one


@dataclass(frozen=True)
class Verdict:
    total: int
    completed: int
    reasons: tuple[str, ...]  # why the numbers cannot be trusted; empty: valid
    errors: tuple[tuple[str, int], ...]  # first distinct messages (as first seen), counts
    more_errors: int  # distinct messages not shown

    @property
    def valid(self) -> bool:
        return not self.reasons

    @property
    def nothing_succeeded(self) -> bool:
        return self.total > 0 and self.completed == 0


def judge(records: RunRecords) -> Verdict:
    req = records.requests
    ok = req["status"] == "ok" if len(req) else pd.Series(dtype=bool)
    failed = req.loc[~ok, "error"].fillna("").astype(str) if len(req) else pd.Series(dtype=str)
    first: dict[str, str] = {}  # normalized message -> the first one seen
    counts: Counter[str] = Counter()
    for message in failed:
        key = _NUMBERS.sub("#", message)
        first.setdefault(key, message or "(no message)")
        counts[key] += 1
    listed = [(first[k], counts[k]) for k in first]
    reasons = list(records.report.invalid_reasons())
    completed = int(ok.sum())
    if len(req) and not completed and not any("no request succeeded" in r for r in reasons):
        reasons.insert(0, f"no request succeeded ({len(req)} failed)")
    return Verdict(
        total=len(req),
        completed=completed,
        reasons=tuple(reasons),
        errors=tuple(listed[:SHOWN_ERRORS]),
        more_errors=max(0, len(listed) - SHOWN_ERRORS),
    )


def print_verdict(v: Verdict, console: Console) -> None:
    """The verdict line, then the failures (credentials scrubbed from every message)."""
    if v.valid:
        console.print(f"verdict: valid ({v.completed:,} of {v.total:,} requests completed)")
    else:
        why = "; ".join(scrub_text(r) for r in v.reasons)
        console.print(f"verdict: INVALID ({why})", soft_wrap=True, highlight=False, markup=False)
    if v.errors:
        failed = v.total - v.completed
        console.print(f"{failed:,} of {v.total:,} requests failed:", highlight=False)
        for message, n in v.errors:
            line = f"  {n:>6,} x {scrub_text(message)}"
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        if v.more_errors:
            console.print(f"  ... and {v.more_errors:,} more distinct errors (requests.parquet)")


__all__ = ["SHOWN_ERRORS", "Verdict", "judge", "print_verdict"]
