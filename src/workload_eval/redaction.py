"""Credentials never reach a result file, a log line or the console.

Two kinds of secret are scrubbed from everything the tool writes or prints:

- the user:password part of any URL (``http://user:PASS@host`` -> ``http://***@host``),
  found by its shape wherever it appears (a spec, an option, an error message);
- the values this process was handed as secrets (an API key read from ``--api-key-env``,
  a URL's password), registered when read, replaced wherever they appear, also when a
  server echoes them back (an ``Authorization`` header in an error body).

A registered value shorter than :data:`MIN_SECRET_CHARS` is replaced only in what a server
sent (``scrub_server_text``), not everywhere: such a short string also occurs in ordinary
text and numbers, and replacing it there would corrupt results.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import TextIO

import numpy as np
import pandas as pd

# Shorter registered values are scrubbed only from server text (see the module doc). A
# credential this short is guessable anyway.
MIN_SECRET_CHARS = 6
MASK = "***"

# scheme://userinfo@ : the userinfo may hold anything but '/', whitespace and '@'.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"<>]+@")

_lock = threading.Lock()
_secrets: set[str] = set()
# The registered values, a longer one first (one may contain another): kept sorted when one
# is added, as scrub_text runs on every string written (tens of thousands per sweep).
_longest_first: tuple[str, ...] = ()


def register(secret: str | None) -> None:
    """Remember a value that must never be written (an API key, a URL's password)."""
    global _longest_first
    if secret:
        with _lock:
            _secrets.add(secret)
            _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def _registered(min_chars: int) -> list[str]:
    return [s for s in _longest_first if len(s) >= min_chars]


def scrub_text(text: str, *, min_chars: int = MIN_SECRET_CHARS) -> str:
    """``text`` without URL credentials and without any registered secret."""
    if not _longest_first and "@" not in text:  # nothing registered, no URL credentials
        return text
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    for secret in _registered(min_chars):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub_server_text(text: str) -> str:
    """What a server sent (an error body, an echoed header): every registered secret out,
    short ones included."""
    return scrub_text(text, min_chars=1)


def scrub_json(obj: object) -> object:
    """Every string of a JSON-like value scrubbed (keys too); non-finite floats -> None, so
    what is written is strict JSON (RFC 8259 has no NaN or Infinity)."""
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {scrub_text(str(k)): scrub_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_json(v) for v in obj]
    return obj


def finite_json(obj: object) -> object:
    """A JSON-like value with non-finite floats as None (strict JSON), nothing else changed."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def scrub_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A table with every text cell (and list of texts) scrubbed, column names too;
    numbers and lists of numbers are not looked at."""
    out = df
    for col, dtype in df.dtypes.items():  # numeric columns skipped without building a Series
        if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue
        fixed = _scrub_series(df[col])
        if fixed is not None:
            out = out.copy() if out is df else out
            out[col] = fixed
    renamed = {c: scrub_text(c) for c in out.columns if isinstance(c, str)}
    if any(k != v for k, v in renamed.items()):
        out = out.rename(columns=renamed)
    return out


def _scrub_series(values: pd.Series) -> pd.Series | None:
    """The column scrubbed, or None when nothing in it changes (the common case)."""
    if values.dtype != object:  # a string column: searched in bulk, not cell by cell
        return _scrub_strings(values)
    first = next((v for v in values if v is not None), None)
    if first is not None and not isinstance(first, str) and not _text_list(first):
        return None  # a column of lists of numbers (token times): nothing to scrub
    texts = {v for v in values if isinstance(v, str)}
    texts |= {x for v in values if _text_list(v) for x in v if isinstance(x, str)}
    changed = {t: c for t in texts if (c := scrub_text(t)) != t}
    if not changed:
        return None

    def fix(v: object) -> object:
        if isinstance(v, str):
            return changed.get(v, v)
        if _text_list(v):
            return [changed.get(x, x) if isinstance(x, str) else x for x in v]  # type: ignore[union-attr]
        return v

    return values.map(fix)


def _scrub_strings(values: pd.Series) -> pd.Series | None:
    """A string-dtype column scrubbed: only the cells holding an '@' (a URL's userinfo) or a
    registered secret are rewritten, as ``scrub_text`` would (Arrow's substring search
    finds them; iterating the cells was most of the cost of saving a simulated run)."""
    hit = np.zeros(len(values), dtype=bool)
    for needle in ("@", *_registered(MIN_SECRET_CHARS)):
        found = values.str.contains(needle, regex=False)
        hit |= found.fillna(False).to_numpy(dtype=bool)
    if not hit.any():
        return None
    out = values.copy()
    out[hit] = values[hit].map(scrub_text)
    return out if not out.equals(values) else None


def _text_list(v: object) -> bool:
    """A list (or array) of texts; lists of numbers (token times) are skipped cheaply."""
    if isinstance(v, str) or not hasattr(v, "__len__") or not hasattr(v, "__getitem__"):
        return False
    try:
        return len(v) > 0 and isinstance(v[0], str)  # type: ignore[index,arg-type]
    except (TypeError, KeyError, IndexError):
        return False


class _ScrubbedStream(io.TextIOBase):
    """A text stream that scrubs what is written through it (the console)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub_text(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> object:  # encoding, buffer, errors, ...
        return getattr(self._inner, name)


@contextlib.contextmanager
def scrubbed_console() -> Iterator[None]:
    """sys.stdout and sys.stderr scrubbed for the block: whatever a command prints (click,
    rich, logging, a library's message) holds no credential."""
    saved = sys.stdout, sys.stderr
    if saved[0] is not None:  # None: output discarded (redirect_stdout(None), pythonw)
        sys.stdout = _ScrubbedStream(saved[0])  # type: ignore[assignment]
    if saved[1] is not None:
        sys.stderr = _ScrubbedStream(saved[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def url_password(url: str) -> str | None:
    """The password of a URL with credentials (to register it), else None."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


__all__ = [
    "MASK",
    "MIN_SECRET_CHARS",
    "finite_json",
    "register",
    "scrub_frame",
    "scrub_json",
    "scrub_server_text",
    "scrub_text",
    "scrubbed_console",
    "url_password",
]
