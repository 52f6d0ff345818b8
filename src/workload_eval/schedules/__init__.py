"""Arrival schedules: when each request of a workload is sent, deterministic for a seed.

Specs are pydantic models discriminated by ``kind`` (``specs``); ``arrivals`` draws the
send times; ``build`` pairs them with the workload's requests, ``follow_ups`` the requests
that wait for another (sessions, a closed loop). Times are seconds from run start.
"""

from workload_eval.schedules.arrivals import QUANTUM_MS, arrival_times, request_count
from workload_eval.schedules.build import build_schedule
from workload_eval.schedules.specs import (
    RATE_DRIVEN_KINDS,
    RATE_KINDS,
    SCHEDULE_KINDS,
    ConcurrencySchedule,
    ConstantSchedule,
    GammaSchedule,
    OfflineSchedule,
    PoissonExpSchedule,
    PoissonSchedule,
    RateKind,
    ScheduleSpec,
    SessionsSchedule,
    TraceSchedule,
    parse_schedule,
    validation_message,
)

__all__ = [
    "QUANTUM_MS",
    "RATE_DRIVEN_KINDS",
    "RATE_KINDS",
    "SCHEDULE_KINDS",
    "ConcurrencySchedule",
    "ConstantSchedule",
    "GammaSchedule",
    "OfflineSchedule",
    "PoissonExpSchedule",
    "PoissonSchedule",
    "RateKind",
    "ScheduleSpec",
    "SessionsSchedule",
    "TraceSchedule",
    "arrival_times",
    "build_schedule",
    "parse_schedule",
    "request_count",
    "validation_message",
]
