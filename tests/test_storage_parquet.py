"""The package's one Parquet writer (storage.parquet_bytes) stores what DataFrame.to_parquet
stored: every dtype reads back the same, attrs included; it is deterministic and scrubs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from workload_eval.redaction import register
from workload_eval.storage import atomic_write_parquet, parquet_bytes


def _frame() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "text": pd.Series(["a", None, "a", "b"], dtype="str"),
            "objects": ["x", None, "y", "x"],
            "nullable": pd.array([1, None, 3, 3], dtype="Int64"),
            "kind": pd.Categorical(["prefill", "decode", "decode", "prefill"]),
            "ints": np.array([5, 5, 6, 7], dtype=np.int64),
            "floats": [0.5, np.nan, np.inf, -1e-300],
            "flags": [True, False, True, True],
            "times": [[0.1, 0.2], [], None, [3.0]],
        }
    )
    df.attrs = {"source": "profile"}
    return df


def _read(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def test_every_dtype_reads_back_as_to_parquet_stored_it():
    df = _frame()
    new, old = _read(parquet_bytes(df)), _read(df.to_parquet(index=False))
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    pd.testing.assert_frame_equal(new.drop(columns="times"), df.drop(columns="times"))
    assert new.attrs == old.attrs == {"source": "profile"}
    assert str(new["nullable"].dtype) == "Int64" and new["nullable"].isna().tolist() == [
        False,
        True,
        False,
        False,
    ]


def test_the_bytes_are_deterministic_and_an_empty_table_round_trips():
    df = _frame()
    assert parquet_bytes(df) == parquet_bytes(df.copy())
    empty = pd.DataFrame({"task": pd.Series([], dtype=str), "n": pd.Series([], dtype=float)})
    pd.testing.assert_frame_equal(_read(parquet_bytes(empty)), _read(empty.to_parquet()))


def test_text_is_scrubbed_unless_the_caller_keeps_it_exact(tmp_path):
    register("sk-parquet-secret-77")
    df = pd.DataFrame({"error": ["401: sk-parquet-secret-77", "ok"], "n": [1, 2]})
    assert _read(parquet_bytes(df))["error"].tolist() == ["401: ***", "ok"]
    atomic_write_parquet(tmp_path / "exact.parquet", df, redact=False)
    assert pd.read_parquet(tmp_path / "exact.parquet")["error"].tolist() == df["error"].tolist()
