"""vLLM's start-up, held quiet: a failure is one line with its root cause and the fix.

vLLM starts its engine core in a child process; when that fails, the parent only learns
"Engine core initialization failed. See root cause above" and the root cause is a long
traceback the child printed. So the start-up's output is held (``quiet.captured_output``):
on success it is dropped and the engine's later output passes through to stderr; on
failure the whole log is saved to a file and its first real exception line becomes the
error, with the fix for the causes we know.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator

from workload_eval.errors import UserError
from workload_eval.quiet import captured_output
from workload_eval.redaction import scrub_text

# An exception line, also inside a vLLM log record ("(Worker pid=7) ERROR ... [f.py:9] X: y").
_EXCEPTION_LINE = re.compile(r"(?:^|\s)(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
# Lines that only say "the cause is elsewhere" (the parent's, the engine core's).
_WRAPPERS = (
    "initialization failed",
    "See root cause above",
    "See stack trace for root cause",
)
_NOT_ERRORS = (" INFO ", " WARNING ", " DEBUG ")
MAX_CAUSE_CHARS = 300

# (what the root cause says, what to do about it)
FIXES: tuple[tuple[str, str], ...] = (
    (
        "less than desired CPU memory utilization",
        "pass --kv-blocks N (the CPU KV space is then set from it) or set "
        "VLLM_CPU_KVCACHE_SPACE=<GiB>",
    ),
    (
        "on kv cache allocation is less than requested memory",
        "lower VLLM_CPU_KVCACHE_SPACE / --kv-blocks, or free memory",
    ),
    ("max seq len", "raise --kv-blocks or lower --max-model-len"),
    ("No available memory for the cache blocks", "pass --kv-blocks N"),
    ("out of memory", "lower --kv-blocks or --gpu-memory-utilization, or use a smaller model"),
)


@contextlib.contextmanager
def quiet_startup(what: str) -> Iterator[None]:
    """Start vLLM inside this block; its failure becomes a UserError naming the cause."""
    failure: Exception | None = None
    with captured_output() as out:
        try:
            yield
        except UserError:
            raise
        except Exception as e:
            failure = e
    if failure is not None:
        raise _startup_error(what, failure, out.text()) from None


def _startup_error(what: str, e: BaseException, text: str) -> UserError:
    own = f"{type(e).__name__}: {' '.join(str(e).split()) or 'no message'}"
    own = own.replace("1 validation error for ModelConfig Value error, ", "")  # pydantic's frame
    cause = root_cause(text) or _short(own)
    fix = next((f for pattern, f in FIXES if pattern.lower() in cause.lower()), None)
    saved = _save_log(scrub_text(text)) if text.strip() else None
    tail = f"; {fix}" if fix else ""
    where = f" (vLLM's log: {saved})" if saved else ""
    return UserError(f"{what}: vLLM could not start: {cause}{tail}{where}")


def root_cause(log: str) -> str | None:
    """The first exception line of a log that is not a 'see elsewhere' wrapper (the first
    failure is the cause; later lines re-raise it), shortened to its first sentences."""
    for line in log.splitlines():
        m = _EXCEPTION_LINE.search(line)
        if m is None or any(w in line for w in _WRAPPERS) or any(n in line for n in _NOT_ERRORS):
            continue
        return _short(f"{m.group(1)}: {m.group(2).strip()}")
    return None


def _short(text: str) -> str:
    """At most MAX_CAUSE_CHARS, cut at a sentence end when there is one."""
    if len(text) <= MAX_CAUSE_CHARS:
        return text
    cut = text[:MAX_CAUSE_CHARS]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > MAX_CAUSE_CHARS // 3 else cut.rstrip() + " ..."


def _save_log(text: str) -> str | None:
    try:
        fd, path = tempfile.mkstemp(prefix="workload-eval-vllm-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError:
        return None
    return path


__all__ = ["FIXES", "quiet_startup", "root_cause"]
