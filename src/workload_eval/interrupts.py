"""SIGTERM is Ctrl-C: a run, a sweep or a capacity search that is told to stop saves what
it gathered, whichever of the two signals asked.

Engines and sweeps already turn ``KeyboardInterrupt`` into "keep the records so far"
(see ``runner``). SIGTERM takes the same path: the handler calls whatever handles SIGINT
at that moment (Python's, which raises ``KeyboardInterrupt``, or asyncio's, which
cancels the running load generator), so there is one interruption path, not two. The
exit code tells them apart: 130 after Ctrl-C, 143 (128 + SIGTERM) after SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

EXIT_SIGINT = 130
EXIT_SIGTERM = 128 + signal.SIGTERM
# how pydantic's JSON serializer words a KeyboardInterrupt raised inside a serializer
_WRAPPED = ": KeyboardInterrupt"

_terminated = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not _on_sigterm:
        handler(signal.SIGINT, frame)  # asyncio's handler cancels; Python's raises
        return
    raise KeyboardInterrupt  # SIGINT ignored (a background job): stop anyway


def install() -> Callable[[], None]:
    """Route SIGTERM through the SIGINT path for this command; returns the undo.

    A process started with SIGINT ignored (a background job of a script, ``nohup``) gets
    Python's Ctrl-C handler for the command: asyncio's runner only takes SIGINT over from
    that handler, so without it a SIGTERM could not cancel a running load generator
    cleanly (it would raise in the middle of the event loop and lose the run)."""
    global _terminated
    _terminated = False
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: Any = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return restore


class _Held:
    signalled = False


@contextlib.contextmanager
def deferred() -> Iterator[_Held]:
    """Hold Ctrl-C and SIGTERM while finished results are summarized and written: a signal
    then only sets ``held.signalled`` (the caller stops after the block), so the results
    the engine returned are never lost to an interrupt that lands a moment later."""
    held = _Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        global _terminated
        held.signalled = True
        if signum == signal.SIGTERM:
            _terminated = True

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, hold)
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def caused_by_interrupt(error: BaseException) -> bool:
    """Whether ``error`` is a Ctrl-C or SIGTERM that a library caught and wrapped in an
    error of its own (pydantic turns anything raised in a serializer, KeyboardInterrupt
    included, into a PydanticSerializationError), or was raised while one was handled."""
    from pydantic_core import PydanticSerializationError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        # model_dump_json keeps only the text of what its serializer raised
        if isinstance(current, PydanticSerializationError) and _WRAPPED in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def unwrapped() -> Iterator[None]:
    """Let an interrupt that a library wrapped reach the ``except KeyboardInterrupt`` that
    saves the results (the signal can land in any line, a library's callback included)."""
    try:
        yield
    except Exception as e:
        if caused_by_interrupt(e):
            raise KeyboardInterrupt from None
        raise


def terminated() -> bool:
    """Whether SIGTERM (rather than Ctrl-C) interrupted this command."""
    return _terminated


def exit_code() -> int:
    """The exit status of an interrupted command: 143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_SIGTERM if _terminated else EXIT_SIGINT
