"""What the tool writes is strict JSON and holds no credential (storage + redaction)."""

from __future__ import annotations

import json
import math

import pandas as pd

from workload_eval.redaction import register, scrub_frame, scrub_text
from workload_eval.storage import atomic_write_json, atomic_write_parquet


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null(tmp_path):
    atomic_write_json(tmp_path / "s.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.5]})
    assert _strict((tmp_path / "s.json").read_text()) == {"a": None, "b": [None, None, 1.5]}


def test_url_credentials_and_registered_secrets_are_scrubbed_everywhere(tmp_path):
    register("sk-registered-secret-1")
    obj = {
        "base_url": "http://bob:pw@h:1/v1",
        "nested": [{"https://x:y@z": "Bearer sk-registered-secret-1"}],
    }
    atomic_write_json(tmp_path / "s.json", obj)
    assert _strict((tmp_path / "s.json").read_text()) == {
        "base_url": "http://***@h:1/v1",
        "nested": [{"https://***@z": "Bearer ***"}],
    }
    df = pd.DataFrame({"error": ["HTTP 401: sk-registered-secret-1", "ok"], "n": [1, 2]})
    atomic_write_parquet(tmp_path / "r.parquet", df)
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert back["error"].tolist() == ["HTTP 401: ***", "ok"] and back["n"].tolist() == [1, 2]
    assert scrub_frame(df.drop(columns="error")) is not None  # numbers only: untouched


def test_short_values_are_scrubbed_only_from_server_text():
    from workload_eval.redaction import scrub_server_text

    register("k3y")  # too short to hunt for in every number and word written
    assert scrub_text("monkey k3y") == "monkey k3y"
    assert scrub_server_text("you sent k3y") == "you sent ***"


def test_data_that_must_stay_exact_can_opt_out(tmp_path):
    atomic_write_json(tmp_path / "s.json", {"u": "ftp://a:b@c"}, redact=False)
    assert _strict((tmp_path / "s.json").read_text()) == {"u": "ftp://a:b@c"}
