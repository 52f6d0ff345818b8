"""Request tables of generated workloads and of lengths-only files (no tokenizer involved).

Generated workloads are used as generated: their order is part of their definition
(inference-perf's shared-prefix order, sessions in order) and no length filter applies, so
a request that does not fit ``max_model_len`` reaches the engine and fails there, as on a
real server. Lengths files are data: the seed's length filter and selection apply, as for
any dataset (traces keep their arrival order, sessions stay whole).
"""

from __future__ import annotations

import pandas as pd

from workload_eval.workloads.generators import generate
from workload_eval.workloads.lengths_files import read_lengths_file
from workload_eval.workloads.resolve import WorkloadRef
from workload_eval.workloads.selection import (
    Sampling,
    Selection,
    select_pairs,
    select_sessions,
    select_trace,
)


def generated_table(ref: WorkloadRef, num_requests: int | None, seed: int) -> pd.DataFrame:
    assert ref.generated is not None
    return generate(ref.generated, num_requests, seed, base=ref.base, where=ref.where)


def lengths_file_table(
    ref: WorkloadRef,
    *,
    num_requests: int | None,
    max_model_len: int,
    seed: int,
    sampling: Sampling,
) -> pd.DataFrame:
    """The file's requests, filtered and selected as a dataset's (see the module docstring)."""
    assert ref.path is not None
    table = read_lengths_file(ref.path)
    failed = table.attrs.get("failed_rows", 0)
    fmt = table.attrs.get("format")
    rule = Selection(
        num_requests=num_requests,
        max_model_len=max_model_len,
        seed=seed,
        sampling=sampling,
        min_output_len=0,
        where=ref.where,
    )
    if "arrival_time" in table.columns:
        out = select_trace(table, rule)
    elif "session_id" in table.columns:
        ordered = table.sort_values(["session_id", "turn"], kind="stable").reset_index(drop=True)
        out = select_sessions(ordered, rule)
    else:
        out = select_pairs(table, rule)
    out.attrs.update(failed_rows=failed, format=fmt)
    return out
