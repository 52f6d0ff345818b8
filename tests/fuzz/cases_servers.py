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
    for option, expect in (
        ("metrics_interval=0.000001", "metrics_interval"),  # would scrape in a busy loop
        ("metrics_interval=true", "metrics_interval"),
        ("request_timeout=1e12", "request_timeout"),
        ("max_lag_p99=-1", "max_lag_p99"),
        ("max_concurrency=true", "max_concurrency"),
    ):
        yield Case(
            f"openai-live:{option}",
            (*OPENAI, "--num-requests", "5", "--engine-option", option),
            fixture=instant_server,
            expect=expect,
        )
    yield Case(
        "openai-live:unknown-option",
        (*OPENAI, "--num-requests", "5", "--engine-option", "turbo=true"),
        fixture=instant_server,
        expect="turbo",
    )


VLLM = (
    "run",
    "--engine",
    "vllm",
    "--workload",
    "alpaca",
    "--num-requests",
    "5",
    "--out",
    "{tmp}/o",
)


def vllm_setup_cases() -> Iterator[Case]:
    """What vLLM would refuse at start-up, refused before loading it (no engine starts)."""
    yield Case(
        "vllm:kv-blocks-one-short-of-max-model-len",  # 64 x 32 = 2048, but one is the null block
        (*VLLM, "--model", "opt-125m", "--kv-blocks", "64", "--block-size", "32"),
        expect="--kv-blocks 65 or more",
    )
    yield Case(
        "vllm:block-size-not-a-multiple-of-32-on-cpu",
        (*VLLM, "--model", "opt-125m", "--kv-blocks", "256", "--block-size", "48"),
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        expect="multiple of 32",
    )
    yield Case(
        "vllm:kv-space-too-small-for-the-blocks",
        (*VLLM, "--model", "opt-13b", "--kv-blocks", "400", "--block-size", "32"),
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        expect="cannot hold --kv-blocks 400",
    )
    yield Case(
        "vllm:kv-space-not-a-number",
        (*VLLM, "--model", "opt-13b", "--kv-blocks", "400", "--block-size", "32"),
        env={"VLLM_CPU_KVCACHE_SPACE": "lots"},
        expect="VLLM_CPU_KVCACHE_SPACE",
    )
    yield Case(
        "vllm:blocks-beyond-free-memory",
        (*VLLM, "--model", "opt-13b", "--kv-blocks", "10000000", "--block-size", "32"),
        env={"VLLM_CPU_KVCACHE_SPACE": ""},  # unset: set from the blocks, which do not fit
        expect="free",
    )
