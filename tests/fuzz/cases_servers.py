"""Cases that need something running: a fixture starts it and yields argv placeholders.

This is where the engine and report classes plug in: a hostile HTTP server mode (a
``FaultConfig``, or a server that lies about ``usage``) yields ``{base_url}``; a damaged
result folder would yield ``{results}``. The expected outcome stays the same: one
``error:`` line and exit 2 for a user mistake.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from harness import Case

from workload_eval.testing.instant_server import FaultConfig, InstantServerProcess

HONEST = FaultConfig()
_RUNNING: dict[FaultConfig, InstantServerProcess] = {}


def _server(faults: FaultConfig) -> InstantServerProcess:
    """One server per fault mode for the whole session (starting one takes seconds)."""
    if faults not in _RUNNING:
        srv = InstantServerProcess(faults)
        srv.__enter__()
        atexit.register(srv.stop)
        _RUNNING[faults] = srv
    return _RUNNING[faults]


@contextlib.contextmanager
def instant_server(tmp: Path, faults: FaultConfig = HONEST) -> Iterator[Mapping[str, str]]:
    """A real OpenAI-compatible server on 127.0.0.1 (the package's instant server)."""
    yield {"base_url": _server(faults).base_url}


OPENAI = (
    *("run", "--engine", "openai", "--base-url", "{base_url}", "--model", "opt-13b"),
    *("--workload", "alpaca", "--no-progress", "--out", "{tmp}/out"),
)


def server_cases() -> Iterator[Case]:
    yield Case(
        "openai-live:arrivals-past-limit",
        (*OPENAI, "--request-rate", "1e12", "--duration", "600"),
        fixture=instant_server,
        expect="requests",
    )
    yield Case(
        "openai-live:unknown-option",
        (*OPENAI, "--num-requests", "5", "--engine-option", "turbo=true"),
        fixture=instant_server,
        expect="turbo",
    )
