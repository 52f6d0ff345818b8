"""The fuzz harness: run one hostile input through the real CLI and judge the outcome.

A :class:`Case` is an argv with ``{tmp}`` (and fixture-provided) placeholders, the files
it needs and, for inputs that need something running (a hostile HTTP server, a damaged
result folder), a fixture. Cases run in this process (``cli.main``, the same code path as
the console script) under a soft address-space limit and a wall-clock alarm, so a memory
bomb fails the case with MemoryError and a hang fails it with a timeout instead of
taking the test run down. A few cases run as subprocesses where only a real process can
show the behaviour (signals, the whole interpreter's memory).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Environment every case starts from: no network, no data or tokenizer dirs from the
# caller's shell, a private cache, and no limit overrides unless the case sets them.
SCRUB_PREFIXES = ("WORKLOAD_EVAL_",)
BASE_ENV = {"WORKLOAD_EVAL_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

CASE_TIMEOUT_S = 30.0  # far above any clean rejection (milliseconds); a hang trips it
CASE_MEMORY_BYTES = 2 << 30  # address space a case may add on top of what is mapped


Fixture = Callable[[Path], contextlib.AbstractContextManager[Mapping[str, str]]]


@dataclass(frozen=True)
class Case:
    """One hostile input and what its error line must name (``expect``, case-insensitive)."""

    id: str
    argv: tuple[str, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    expect: str | None = None
    fixture: Fixture | None = None


@dataclass
class Outcome:
    code: int | str
    stdout: str
    stderr: str
    seconds: float
    crash: str = ""  # the traceback when the CLI raised instead of returning

    def describe(self) -> str:
        return (
            f"exit {self.code} after {self.seconds:.1f}s\nstderr:\n{self.stderr[-2000:]}\n"
            f"stdout:\n{self.stdout[-1000:]}\n{self.crash[-3000:]}"
        )


class CaseTimeout(BaseException):
    """Raised by the alarm: the case hung (BaseException so nothing swallows it)."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _mapped_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def _address_space(extra: int) -> Iterator[None]:
    """Soft RLIMIT_AS = what is mapped now + ``extra``: a bomb gets MemoryError, not the box."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _environment(overrides: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for k in list(os.environ):
        if k.startswith(SCRUB_PREFIXES):
            del os.environ[k]
    os.environ.update(BASE_ENV)
    os.environ.update(overrides)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def materialize(case: Case, tmp: Path, extra: Mapping[str, str]) -> list[str]:
    """Write the case's files under ``tmp``; return its argv with placeholders filled."""
    subs = {"tmp": str(tmp), **extra}
    for rel, data in case.files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for k, v in subs.items():
            data = data.replace(b"{" + k.encode() + b"}", v.encode())
        path.write_bytes(data)
    return [_fill(a, subs) for a in case.argv]


def _fill(arg: str, subs: Mapping[str, str]) -> str:
    for k, v in subs.items():
        arg = arg.replace("{" + k + "}", v)
    return arg


def run_in_process(case: Case, tmp: Path, shared_env: Mapping[str, str]) -> Outcome:
    """``cli.main(argv)`` with the case's files and environment, bounded in time and memory."""
    from workload_eval.cli import main

    fixture = case.fixture(tmp) if case.fixture is not None else contextlib.nullcontext({})
    with fixture as extra:
        argv = materialize(case, tmp, extra)
        env = {k: _fill(v, {"tmp": str(tmp), **extra}) for k, v in case.env.items()}
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        crash = ""
        with _environment({**shared_env, **env}):
            try:
                with (
                    contextlib.redirect_stdout(out),
                    contextlib.redirect_stderr(err),
                    _address_space(CASE_MEMORY_BYTES),
                    _alarm(CASE_TIMEOUT_S),
                ):
                    code: int | str = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except (Exception, CaseTimeout) as e:  # a crash or a hang: the case fails
                code = f"raised {type(e).__name__}"
                crash = traceback.format_exc()
        return Outcome(code, out.getvalue(), err.getvalue(), time.perf_counter() - t0, crash)


def run_subprocess(
    argv: list[str], env: Mapping[str, str], *, timeout: float, memory_bytes: int, cwd: Path
) -> Outcome:
    """The console entry point in a fresh interpreter with a hard address-space limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    full_env.update(BASE_ENV)
    full_env.update(env)
    full_env["PYTHONPATH"] = package_root()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "workload_eval", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            preexec_fn=limit,
        )
    except subprocess.TimeoutExpired as e:
        return Outcome("timeout", str(e.stdout or ""), str(e.stderr or ""), timeout)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)


def package_root() -> str:
    """The folder this process imports workload_eval from: the child must run the same code
    (a relative PYTHONPATH or another checkout's editable install would not)."""
    import workload_eval

    return str(Path(workload_eval.__file__).resolve().parents[1])


def assert_one_line_user_error(case: Case, outcome: Outcome) -> str:
    """Exit 2, exactly one stderr line starting with ``error:``, no traceback anywhere."""
    assert outcome.code == 2, outcome.describe()
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.describe()
    line = lines[0]
    assert line.startswith("error: "), outcome.describe()
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.describe()
    if case.expect is not None:
        assert case.expect.lower() in line.lower(), f"expected {case.expect!r} in: {line}"
    return line
