"""When schedule items become due (dispatch.Dispatcher), hand-computed and against the sim loop."""

from __future__ import annotations

import pytest

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.dispatch import Dispatcher
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim import SimEngine


def _item(rid: int, at: float, *, parent=None, think=0.0, stage=0, out=8) -> ScheduledRequest:
    return ScheduledRequest(
        Request(rid, 64, out), at, depends_on=parent, think_time=think, stage=stage
    )


def test_a_follow_up_waits_for_its_parent_and_for_its_own_arrival_time() -> None:
    sched = Schedule("sessions", [_item(0, 1.0), _item(1, 1.0, parent=0, think=2.0), _item(2, 0.5)])
    d = Dispatcher(sched)
    assert d.begin() == [(0.5, 2), (1.0, 0)]
    assert d.finished(0, 4.0) == ([(6.0, 1)], [])  # 4 + think 2
    late = Schedule("multi-turn", [_item(0, 0.0), _item(1, 9.0, parent=0, think=1.0)])
    d = Dispatcher(late)
    d.begin()
    assert d.finished(0, 3.0) == ([(9.0, 1)], [])  # its own slot comes later than 3 + 1
    d = Dispatcher(late)
    d.begin()
    assert d.finished(0, 3.0, ok=False) == ([], [1])  # never sent: report it back as finished


def test_stages_open_after_the_previous_one_drained_plus_the_gap() -> None:
    items = [
        _item(0, 0.0),
        _item(1, 0.5),
        _item(2, 0.3, stage=1),
        _item(3, 0.0, parent=1, think=0.2, stage=1),  # waits for stage 1 to open
        _item(4, 0.1, stage=3),  # stage 2 is empty: it chains on
    ]
    d = Dispatcher(Schedule("staged", items, stage_gap_s=2.0))
    assert d.begin() == [(0.0, 0), (0.5, 1)]
    assert d.finished(1, 4.0) == ([], [])  # item 3's stage has not started
    due, _ = d.finished(0, 3.0)  # stage 0 drained at 4.0: stage 1 opens at 6.0
    assert sorted(due) == [(6.0, 3), (6.3, 2)]
    assert d.finished(2, 7.0) == ([], [])
    assert d.finished(3, 8.0) == ([(12.1, 4)], [])  # stages 2 and 3 open at 10 and 12


@pytest.mark.parametrize("gap", [None, 1.5])
def test_the_simulator_releases_requests_when_the_dispatcher_says(gap: float | None) -> None:
    """The sim loop applies the same rules inline: replaying its finish times through a
    Dispatcher gives exactly its arrival times."""
    items, rid = [], 0
    for stage in range(3 if gap else 1):
        for s in range(4):
            prev = None
            for turn in range(3):
                at = 0.2 * s if turn == 0 else 0.2 * s + 5.0 * (turn == 2)
                items.append(
                    _item(rid, at, parent=prev, think=0.25, stage=stage, out=20 + 10 * turn)
                )
                prev, rid = rid, rid + 1
    sched = Schedule("staged", items, stage_gap_s=gap)
    rec = SimEngine().run(sched, EngineConfig(model="opt-13b", kv_blocks=400))
    req = rec.requests
    assert (req.status == "ok").all()
    finish = dict(zip(req.request_id, req.finish_time, strict=True))
    d = Dispatcher(Schedule("staged", items, stage_gap_s=gap))
    due = dict((i, t) for t, i in d.begin())
    for i in sorted(range(len(items)), key=lambda i: (finish[i], i)):
        due.update((c, t) for t, c in d.finished(i, finish[i])[0])
    arrival = dict(zip(req.request_id, req.arrival_time, strict=True))
    assert due == pytest.approx(arrival)
