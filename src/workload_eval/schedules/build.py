"""Schedules: a workload's requests (in row order) paired with their arrival times."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workload_eval import limits
from workload_eval.contracts import Schedule, ScheduledRequest
from workload_eval.errors import UserError
from workload_eval.schedules.arrivals import arrival_times, check_times
from workload_eval.schedules.follow_ups import (
    closed_loop_items,
    serialize_turns,
    session_items,
    to_requests,
)
from workload_eval.schedules.specs import (
    ConcurrencySchedule,
    ScheduleSpec,
    SessionsSchedule,
    TraceSchedule,
)


def build_schedule(spec: ScheduleSpec, df: pd.DataFrame, seed: int = 0) -> Schedule:
    """Pair the workload's requests (in row order) with the schedule's arrival times."""
    if len(df) == 0:
        raise UserError("schedule: the workload has no requests")
    params = {**spec.model_dump(mode="json"), "seed": seed}
    if isinstance(spec, TraceSchedule):
        items = trace_items(spec, df)
    elif isinstance(spec, SessionsSchedule):
        items = session_items(spec, df, seed)
    elif isinstance(spec, ConcurrencySchedule):
        items = closed_loop_items(spec, df, seed)
        return Schedule(kind=spec.kind, items=items, params=params, concurrency=spec.concurrency)
    else:
        times = arrival_times(spec, seed)
        if times is None:  # offline over the whole workload
            times = np.zeros(len(df))
        if len(df) < len(times):
            raise UserError(
                f"schedule {spec.kind}: needs {len(times)} requests but the workload has "
                f"{len(df)} (load it with num_requests={len(times)})"
            )
        limits.check_request_count(len(times), what=f"schedule {spec.kind}")
        reqs = to_requests(df.iloc[: len(times)])
        as_floats = np.asarray(times, dtype=float).tolist()
        items = [ScheduledRequest(r, t) for r, t in zip(reqs, as_floats, strict=True)]
        if df.attrs.get("serialize_turns"):
            serialize_turns(items)
    return Schedule(kind=spec.kind, items=items, params=params)


def trace_items(spec: TraceSchedule, df: pd.DataFrame) -> list[ScheduledRequest]:
    if "arrival_time" not in df.columns:
        workload = df.attrs.get("workload", "this workload")
        raise UserError(
            f"schedule trace: {workload} has no arrival times (expected a trace workload "
            "such as azure_conv, azure_code or mooncake)"
        )
    t = df["arrival_time"].to_numpy(dtype=float)
    if not np.isfinite(t).all():
        row = int(np.flatnonzero(~np.isfinite(t))[0])
        raise UserError(
            f"schedule trace: request {row} has arrival time {t[row]} (expected a finite time)"
        )
    order = np.argsort(t, kind="stable")
    times = (t[order] - t[order[0]]) / spec.time_scale
    keep = np.ones(len(times), dtype=bool) if spec.duration is None else times < spec.duration
    order, times = order[keep], times[keep]
    if spec.num_requests is not None:
        order, times = order[: spec.num_requests], times[: spec.num_requests]
    check_times(times, "schedule trace")
    frame = df.iloc[order]
    items = [ScheduledRequest(r, float(x)) for r, x in zip(to_requests(frame), times, strict=True)]
    if "think_time" in frame.columns and "session_id" in frame.columns:
        # an exported multi-turn schedule: a turn follows its previous turn by think_time
        serialize_turns(items)
        for it, think in zip(items, frame["think_time"].to_numpy(dtype=float), strict=True):
            if it.depends_on is not None:
                it.think_time = float(think) / spec.time_scale
    return items
