"""Read local dataset files (JSON, JSONL, CSV, Parquet, each optionally gzipped) as tables.

Every failure is a :class:`UserError` naming the file, and the line where there is one.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pandas as pd

from workload_eval.errors import UserError

FORMATS = ("json", "jsonl", "csv", "parquet")
SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".json.gz", ".jsonl.gz", ".csv.gz")


def file_format(path: Path) -> str:
    """The table format from the name: ``x.jsonl.gz`` -> ``jsonl``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = suffixes[-1].lstrip(".") if suffixes else ""
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise UserError(
            f"{path}: unsupported file type (expected one of {', '.join(SUFFIXES)}, .parquet)"
        )
    return fmt


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_text(path: Path) -> str:
    try:
        with _open_text(path) as f:
            return f.read()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


def _records_from_jsonl(path: Path, text: str) -> list[dict]:
    rows: list[dict] = []
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}: line {lineno}: invalid JSON ({e.msg} at column {e.colno}); "
                "expected one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise UserError(
                f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}"
            )
        rows.append(obj)
    return rows


def _records_from_json(path: Path, text: str) -> list[dict]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one object per line under a .json name
            return _records_from_jsonl(path, text)
        raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if isinstance(obj, dict):
        for key in ("data", "rows", "records", "train"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
        else:
            if obj and all(isinstance(v, list) for v in obj.values()):  # columns
                return pd.DataFrame(obj).to_dict("records")
            return [obj]
    if not isinstance(obj, list):
        raise UserError(f"{path}: expected a JSON list of objects, got {type(obj).__name__}")
    for i, item in enumerate(obj):
        if not isinstance(item, dict):
            raise UserError(f"{path}: item {i}: expected a JSON object, got {type(item).__name__}")
    return obj


def read_table(path: str | Path) -> pd.DataFrame:
    """One dataset file as a DataFrame (nested fields stay Python objects)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder (expected a dataset file)")
    fmt = file_format(path)
    if fmt == "parquet":
        try:
            return pd.read_parquet(path)
        except Exception as e:
            raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    if fmt == "csv":
        try:
            return pd.read_csv(path, compression="infer", keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise UserError(f"{path}: empty CSV file (expected a header line)") from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise UserError(f"{path}: malformed CSV ({msg})") from None
    text = _read_text(path)
    rows = _records_from_jsonl(path, text) if fmt == "jsonl" else _records_from_json(path, text)
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
