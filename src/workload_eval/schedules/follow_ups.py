"""Requests that wait for another: multi-turn sessions (a turn after its previous turn's
reply) and a closed loop's users (a user's next request after its previous one)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workload_eval import limits
from workload_eval.contracts import Request, ScheduledRequest
from workload_eval.errors import UserError
from workload_eval.schedules.arrivals import check_times, rate_arrivals
from workload_eval.schedules.specs import ConcurrencySchedule, SessionsSchedule


def to_requests(df: pd.DataFrame) -> list[Request]:
    from workload_eval.workloads import to_requests as workload_requests

    return workload_requests(df)


def think_time_rng(seed: int) -> np.random.Generator:
    """Think times draw from their own stream, so the arrivals stay unchanged."""
    return np.random.default_rng([seed, 1])


def serialize_turns(items: list[ScheduledRequest]) -> None:
    """A session's turn waits for its previous turn (inference-perf multi-turn users).

    The turn keeps its scheduled ``arrival_time``; it is meant to be sent at the later of
    that time and its previous turn's completion.
    """
    last: dict[int, int] = {}
    for it in items:
        sid = it.request.session_id
        if sid is None:
            continue
        if sid in last:
            it.depends_on = last[sid]
        last[sid] = it.request.request_id


def closed_loop_items(
    spec: ConcurrencySchedule, df: pd.DataFrame, seed: int
) -> list[ScheduledRequest]:
    """Every request due at 0 as far as the schedule knows: the loop decides when (each
    root's think time is its user's pause before it; the first N users start at once)."""
    frame = df if spec.num_requests is None else df.iloc[: spec.num_requests]
    limits.check_request_count(len(frame), what="schedule concurrency")
    items = [ScheduledRequest(r, 0.0) for r in to_requests(frame)]
    if df.attrs.get("serialize_turns"):
        serialize_turns(items)
    if spec.think_time > 0:
        roots = [it for it in items if it.depends_on is None]
        if spec.think_time_dist == "fixed":
            pauses = np.full(len(roots), spec.think_time)
        else:  # its own stream, as the sessions schedule draws think times
            pauses = think_time_rng(seed).exponential(spec.think_time, len(roots))
        pauses[: spec.concurrency] = 0.0  # every user starts at once
        for it, pause in zip(roots, pauses, strict=True):
            it.think_time = float(pause)
    return items


def session_items(spec: SessionsSchedule, df: pd.DataFrame, seed: int) -> list[ScheduledRequest]:
    missing = [c for c in ("session_id", "turn") if c not in df.columns]
    if missing:
        workload = df.attrs.get("workload", "this workload")
        raise UserError(
            f"schedule sessions: {workload} has no {' / '.join(missing)} column (expected a "
            "multi-turn workload such as sharegpt_chat)"
        )
    frame = df.reset_index(drop=True)
    if spec.num_requests is not None:
        frame = frame.iloc[: spec.num_requests]
    # sessions in order of first appearance, turns in turn order
    first_pos = frame.groupby("session_id", sort=False).cumcount() == 0
    session_order = frame.loc[first_pos, "session_id"].tolist()
    rank = {s: i for i, s in enumerate(session_order)}
    frame = frame.assign(_rank=frame["session_id"].map(rank))
    frame = frame.sort_values(["_rank", "turn"], kind="stable").drop(columns="_rank")
    starts = rate_arrivals(
        spec.arrival, spec.rate, spec.burstiness, spec.duration, len(session_order), seed
    )
    n_sessions = len(starts)
    if n_sessions == 0:
        raise UserError(f"schedule sessions: no session starts within duration {spec.duration} s")
    frame = frame[frame["session_id"].map(rank) < n_sessions]
    check_times(starts, "schedule sessions")
    limits.check_request_count(len(frame), what="schedule sessions")
    reqs = to_requests(frame)
    own_think = frame["think_time"].to_numpy(dtype=float) if "think_time" in frame else None
    if own_think is not None and spec.think_time > 0:
        raise UserError(
            f"--think-time: {df.attrs.get('workload', 'the workload')} sets its own think "
            "times (field think_time); drop --think-time"
        )
    think_rng = think_time_rng(seed)
    items: list[ScheduledRequest] = []
    prev_session, prev_id, start = None, None, 0.0
    for i, (r, sid) in enumerate(zip(reqs, frame["session_id"].tolist(), strict=True)):
        if sid != prev_session:
            start = float(starts[rank[sid]])
            items.append(ScheduledRequest(r, start))
        else:
            if own_think is not None:
                think = float(own_think[i])
            elif spec.think_time_dist == "fixed" or spec.think_time == 0:
                think = spec.think_time
            else:
                think = float(think_rng.exponential(spec.think_time))
            items.append(ScheduledRequest(r, start, depends_on=prev_id, think_time=think))
        prev_session, prev_id = sid, r.request_id
    items.sort(key=lambda it: it.arrival_time)  # stable: a session's turns stay in order
    return items
