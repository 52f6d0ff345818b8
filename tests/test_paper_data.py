"""The paper's tables: shipped in the package, extended or overridden by a calibration folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from workload_eval.errors import UserError
from workload_eval.paper_data import ENV_VAR, SHIPPED, load_paper_tables


def _shipped(experiment: str) -> dict:
    path = resources.files("workload_eval") / "data" / "paper" / f"opt-13b-{experiment}.json"
    return json.loads(path.read_text())


@pytest.fixture
def no_shared(monkeypatch, tmp_path):
    """No calibration folder anywhere: the env var names one that does not exist."""
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)


def test_the_shipped_tables_load_with_no_shared_folder(no_shared):
    with pytest.warns(UserWarning, match="nowhere: no such folder; using the paper tables shipped"):
        tables = load_paper_tables()
    assert tables.calibration_dir is None
    assert tables.sources() == [f"opt-13b offline: {SHIPPED}", f"opt-13b online: {SHIPPED}"]
    off, on = tables.offline(), tables.online()
    raw = _shipped("offline")
    assert len(off) == sum(len(sc["by_num_requests"]) for scs in raw["data"].values() for sc in scs)
    alpaca = off[(off.workload == "alpaca") & (off.kv_blocks == 643) & (off.num_requests == 1000)]
    cell = raw["data"]["alpaca"][0]["by_num_requests"]["1000"]
    assert alpaca["request_throughput"].item() == cell["request"]
    assert set(on["workload"]) == {"alpaca", "cnn_dailymail", "dolly", "sharegpt"}
    # the shipped file names where its numbers come from
    assert "EuroMLSys" in raw["source"] and "MIT" in raw["source"]


def test_the_shipped_tables_load_in_an_installed_copy(tmp_path):
    """The package copied as pip installs it, run from a folder with no ../shared beside it
    and no env var: the shipped tables are all there is, and they load."""
    import shutil

    import workload_eval

    site = tmp_path / "site-packages"
    shutil.copytree(
        Path(workload_eval.__file__).parent,
        site / "workload_eval",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR} | {"PYTHONPATH": str(site)}
    code = (
        "import workload_eval.paper_data as p; t = p.load_paper_tables();"
        f"print(p.__file__.startswith({str(site)!r}), t.calibration_dir, t.sources(),"
        " len(t.offline()))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"True None ['opt-13b offline: {SHIPPED}', 'opt-13b online: {SHIPPED}'] 60"
    )


def test_a_calibration_folder_adds_models_and_overrides_tables(no_shared, tmp_path):
    cal = tmp_path / "cal"
    cal.mkdir()
    other = _shipped("offline") | {"model": "Llama-2-13B"}  # canonicalized to the catalog name
    (cal / "llama-2-13b-offline.json").write_text(json.dumps(other))
    online = _shipped("online")
    online["data"] = {"alpaca": online["data"]["alpaca"][:1]}
    del online["model"]  # the file name says which model
    (cal / "opt-13b-online.json").write_text(json.dumps(online))
    (cal / "README.md").write_text("not a table")
    tables = load_paper_tables(cal)
    assert tables.models() == ["llama-2-13b", "opt-13b"]
    assert tables.origin("opt-13b", "offline") == SHIPPED
    assert tables.origin("opt-13b", "online") == str(cal / "opt-13b-online.json")
    on = tables.online()
    assert set(on["workload"]) == {"alpaca"} and set(on["kv_blocks"]) == {643}
    assert len(tables.offline()) == 2 * 60


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["data"]["alpaca"][0].pop("kv_blocks"),
            "data.alpaca.0.kv_blocks: Field required",
        ),
        (
            lambda d: d["data"]["alpaca"][0]["by_num_requests"]["100"].update(request=-1),
            "by_num_requests.100.request: Input should be greater than 0",
        ),
        (lambda d: d.update(experiment="online"), "experiment 'online' but the file name says"),
        (
            lambda d: d["data"]["dolly"][0].pop("by_num_requests"),
            "data.dolly[0]: no by_num_requests",
        ),
    ],
)
def test_bad_tables_are_one_line_errors_naming_file_and_field(no_shared, tmp_path, mutate, message):
    cal = tmp_path / "cal"
    cal.mkdir()
    data = _shipped("offline")
    mutate(data)
    (cal / "opt-13b-offline.json").write_text(json.dumps(data))
    with pytest.raises(UserError) as e:
        load_paper_tables(cal)
    assert str(cal / "opt-13b-offline.json") in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_an_explicit_folder_must_exist(tmp_path):
    with pytest.raises(UserError, match=r"--calibration-dir .*nope: no such folder"):
        load_paper_tables(tmp_path / "nope")


def test_invalid_json_names_the_line(no_shared, tmp_path):
    cal = Path(tmp_path / "cal")
    cal.mkdir()
    (cal / "opt-6.7b-online.json").write_text('{\n "model": "opt-6.7b",\n')
    with pytest.raises(UserError, match=r"opt-6\.7b-online\.json: line 3: invalid JSON"):
        load_paper_tables(cal)
