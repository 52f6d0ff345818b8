"""Read local dataset files (JSON, JSONL, CSV, Parquet, each optionally gzipped) as tables.

Every failure is a :class:`UserError` naming the file, and the line where there is one.
Reads are bounded and strict (``workload_eval.inputs``): a gzip bomb, ``NaN``, a duplicate
key, a ragged CSV row or columns of unequal length are errors, never silent guesses.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from workload_eval import inputs, limits
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


def _read_text(path: Path) -> str:
    """The whole file as text: bounded (a gzip bomb stops while inflating), UTF-8."""
    return inputs.read_text(path, limit=limits.MAX_DATA_BYTES)


def _records_from_jsonl(path: Path, text: str) -> list[dict]:
    rows: list[dict] = []
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028
        if not line.strip():
            continue
        obj = inputs.loads_json(line, path, first_line=lineno)
        if not isinstance(obj, dict):
            raise UserError(
                f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}"
            )
        rows.append(obj)
    return rows


def _records_from_json(path: Path, text: str) -> list[dict]:
    if _is_jsonl(text):  # one object per line under a .json name
        return _records_from_jsonl(path, text)
    obj = inputs.loads_json(text, path)
    if isinstance(obj, dict):
        for key in ("data", "rows", "records", "train"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
        else:
            if obj and all(isinstance(v, list) for v in obj.values()):  # columns
                return _records_from_columns(path, obj)
            return [obj]
    if not isinstance(obj, list):
        raise UserError(f"{path}: expected a JSON list of objects, got {type(obj).__name__}")
    for i, item in enumerate(obj):
        if not isinstance(item, dict):
            raise UserError(f"{path}: item {i}: expected a JSON object, got {type(item).__name__}")
    return obj


def _is_jsonl(text: str) -> bool:
    """Two or more top-level JSON objects one per line (``{...}\\n{...}``)."""
    head = text.lstrip()
    if not head.startswith("{"):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e.msg == "Extra data"
    except (ValueError, RecursionError):
        return False
    return False


def _records_from_columns(path: Path, columns: dict[str, list]) -> list[dict]:
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        (k1, n1), (k2, n2) = sorted(lengths.items(), key=lambda kv: kv[1])[:: len(lengths) - 1]
        raise UserError(
            f"{path}: columns of unequal length ({k1!r} has {n1} values, {k2!r} has {n2}); "
            "expected one value per record in every column"
        )
    return pd.DataFrame(columns).to_dict("records")


def _read_csv(path: Path) -> pd.DataFrame:
    text = _read_text(path)
    if not text.strip():
        raise UserError(f"{path}: empty CSV file (expected a header line)")
    _check_csv_rows(path, text)
    try:
        return pd.read_csv(io.StringIO(text), keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: malformed CSV ({msg})") from None


def _check_csv_rows(path: Path, text: str) -> None:
    """Every row has the header's number of fields: pandas pads short rows silently."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        width = len(header)
        for row in reader:
            if row and len(row) != width:
                raise UserError(
                    f"{path}: line {reader.line_num}: {len(row)} fields, the header has {width} "
                    f"({', '.join(header[:8])})"
                )
    except csv.Error as e:
        raise UserError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    """Parquet is compressed too: refuse a file whose columns unpack past the data limit."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except Exception as e:
        raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    if size > limits.MAX_DATA_BYTES.value():
        raise UserError(
            f"{path}: unpacks to {size:,} bytes, more than the {limits.MAX_DATA_BYTES.value():,} "
            f"allowed for one data file (raise it with ${limits.MAX_DATA_BYTES.env})"
        )
    try:
        return pd.read_parquet(path)
    except Exception as e:
        raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


def read_table(path: str | Path) -> pd.DataFrame:
    """One dataset file as a DataFrame (nested fields stay Python objects)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder (expected a dataset file)")
    fmt = file_format(path)
    if fmt == "parquet":
        return _read_parquet(path)
    if fmt == "csv":
        return _read_csv(path)
    text = _read_text(path)
    rows = _records_from_jsonl(path, text) if fmt == "jsonl" else _records_from_json(path, text)
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
