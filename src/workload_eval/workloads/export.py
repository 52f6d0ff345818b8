"""Write a prepared workload and its schedule as a trace file that loads back as a workload.

Columns: ``arrival_s,prompt_len,output_len`` (the ``workload-eval-measured/1`` trace CSV),
then, when the workload has them, ``session_id,turn`` (multi-turn), ``prefix_group,
prefix_len`` (a shared prefix), ``prompt_id`` (a prompt that recurs) and ``think_time``
(a follow-up turn is sent that many seconds after its previous turn completes, and not
before ``arrival_s``). Rows are in schedule order. ``.csv`` or ``.jsonl`` (optionally .gz).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd

from workload_eval.contracts import Schedule
from workload_eval.errors import UserError
from workload_eval.storage import atomic_write_bytes

EXPORT_SUFFIXES = (".csv", ".jsonl", ".csv.gz", ".jsonl.gz")


def schedule_table(schedule: Schedule) -> pd.DataFrame:
    """One row per scheduled request, with the sharing read back from its prompt segments."""
    rows = []
    for it in schedule.items:
        r = it.request
        row: dict[str, object] = {
            "arrival_s": round(float(it.arrival_time), 6),
            "prompt_len": r.prompt_len,
            "output_len": r.output_len,
            "session_id": r.session_id,
            "turn": r.turn if r.session_id is not None else None,
            "think_time": float(it.think_time) if it.depends_on is not None else 0.0,
            "dependent": it.depends_on is not None,
        }
        for seg in r.prefix_segments:
            if seg.key.startswith("prefix:"):
                row["prefix_group"], row["prefix_len"] = seg.key.removeprefix("prefix:"), seg.length
            elif seg.key.startswith("prompt:"):
                row["prompt_id"] = seg.key.removeprefix("prompt:")
        rows.append(row)
    table = pd.DataFrame(rows)
    keep = ["arrival_s", "prompt_len", "output_len"]
    if table["session_id"].notna().any():
        keep += ["session_id", "turn"]
        table["session_id"] = table["session_id"].astype("Int64")
        table["turn"] = table["turn"].astype("Int64")
    if "prefix_group" in table:
        keep += ["prefix_group", "prefix_len"]
        table["prefix_len"] = table["prefix_len"].astype("Int64")
    if "prompt_id" in table:
        keep.append("prompt_id")
    if table["dependent"].any():
        keep.append("think_time")
    return table[keep]


def write_trace(schedule: Schedule, out: str | Path) -> Path:
    """Write ``schedule`` to ``out`` (.csv / .jsonl, optionally .gz), atomically."""
    out = Path(out)
    name = out.name.lower()
    if not name.endswith(EXPORT_SUFFIXES):
        raise UserError(f"--out {out}: expected a {', '.join(EXPORT_SUFFIXES)} file name")
    if schedule.concurrency is not None:
        raise UserError(
            "--schedule concurrency: a closed loop's send times exist only once it runs "
            "(each follows a finish); export an open-loop schedule instead"
        )
    table = schedule_table(schedule)
    if name.endswith((".csv", ".csv.gz")):
        text = table.to_csv(index=False, float_format="%.6f")
    else:
        text = table.to_json(orient="records", lines=True)
    data = text.encode()
    if name.endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
            f.write(data)
        data = buf.getvalue()
    atomic_write_bytes(out, data)
    return out
