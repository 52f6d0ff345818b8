"""Hold a library's console output while it starts, to turn its failure into one line.

vLLM's engine core and Ray's core worker print their failures (long tracebacks, C++ log
lines) from child processes or native code, straight to file descriptors 1 and 2, while
the Python exception the caller sees says only "failed, see above". Inside
:func:`captured_output` both descriptors (inherited by any child started there) go into a
pipe drained by a thread: the caller reads what was said (``Captured.text``) to name the
cause; after the block, output still arriving (a child keeps the pipe) passes through to
the real stderr, so stdout stays clean for the tool's own tables.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

MAX_CAPTURED_BYTES = 8 << 20  # kept of what is said while held (a traceback is ~20 KB)


class Captured:
    """Drains the pipe behind fds 1 and 2: keeps what is said, then passes it through."""

    def __init__(self, read_fd: int, real_stderr: int) -> None:
        self._read_fd, self._real = read_fd, real_stderr
        self._log = bytearray()
        self.passing = False
        self._thread = threading.Thread(target=self._pump, daemon=True, name="captured-output")
        self._thread.start()

    def _pump(self) -> None:
        while chunk := _read(self._read_fd):
            if self.passing:
                with contextlib.suppress(OSError):
                    os.write(self._real, chunk)
            elif len(self._log) < MAX_CAPTURED_BYTES:
                self._log += chunk

    def text(self, *, wait: float = 5.0) -> str:
        """What was said; after a failure, waits a little for a dying child's last words."""
        self._thread.join(timeout=wait)
        return self._log.decode("utf-8", "replace")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Inside the block, fds 1 and 2 write into :class:`Captured`; restored after it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    read_fd, write_fd = os.pipe()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    real = os.dup(2)  # where later output goes (owned by the drain thread, never closed)
    for fd in saved:
        os.dup2(write_fd, fd)
    os.close(write_fd)
    captured = Captured(read_fd, real)
    try:
        yield captured
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
    captured.passing = True


__all__ = ["Captured", "captured_output"]
