"""report.html: self-contained, escaped, rendered by headless Chromium; CSVs; the CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
from report_fake_results import WORKLOADS, make_results

from workload_eval.cli import main
from workload_eval.report import build_report

EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def calibration_dir(data_dir) -> Path:
    d = data_dir.parent / "calibration"
    assert (d / "opt-13b-offline.json").is_file(), f"calibration data not found at {d}"
    return d


@pytest.fixture(scope="module")
def report(tmp_path_factory, calibration_dir):
    root = make_results(
        tmp_path_factory.mktemp("results"), workloads={**WORKLOADS, EVIL: (50, 50, 5.0)}
    )
    # a user-derived string in the configuration too
    (root / "spec.yaml").write_text(f"name: {EVIL}\nmodels: [opt-13b]\n")
    return build_report(root, root / "report", calibration_dir=calibration_dir)


def test_report_writes_every_file(report):
    out = report.out_dir
    for name in ("report.html", "summary.csv", "capacity.csv", "paper_comparison.csv"):
        assert (out / name).is_file(), name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    pdfs = sorted(p.name for p in (out / "figures").glob("*.pdf"))
    assert len(pngs) == 11 and [p[:-4] for p in pngs] == [p[:-4] for p in pdfs]
    assert "paper_vs_ours.png" in pngs
    # the measurement figures: time slices at capacity, and the workload sensitivity
    assert {"time_slices.png", "workload_sensitivity.png"} <= set(pngs)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == len(report.points) == 5 * 2 * 3 * 7
    assert {"model", "kv_blocks", "workload", "request_throughput"} <= set(summary.columns)


def test_html_is_self_contained(report):
    html = report.html.read_text()
    imgs = re.findall(r'<img alt="[^"]*" src="([^"]+)"', html)
    assert len(imgs) == 11
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    assert "<link" not in html and "<script" not in html.replace(EVIL, "")
    for v in ("python", "numpy", "pandas"):
        assert f'<td class="t">{v}</td>' in html


def test_dataset_and_user_text_is_escaped(report):
    html = report.html.read_text()
    assert "<script" not in html  # never raw: no script tag at all on the page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 3  # points table, capacity table, spec


def test_paper_comparison_pairs_our_numbers_with_the_papers(report):
    cmp_ = report.comparison
    assert cmp_ is not None and len(cmp_)
    row = cmp_[
        (cmp_["quantity"] == "offline throughput")
        & (cmp_["unit"] == "req/s")
        & (cmp_["workload"] == "alpaca")
        & (cmp_["kv_blocks"] == 643)
        & (cmp_["num_requests"] == 1000)
    ].iloc[0]
    assert row["paper"] == pytest.approx(31.331996656573317)
    assert row["ours"] == pytest.approx(30.0)
    assert row["error_pct"] == pytest.approx((30.0 - 31.331996656573317) / 31.331996656573317 * 100)
    cap = cmp_[
        (cmp_["quantity"] == "max rate under SLO")
        & (cmp_["workload"] == "alpaca")
        & (cmp_["kv_blocks"] == 643)
    ].iloc[0]
    assert cap["paper"] == 30.0 and cap["ours"] == pytest.approx(30.0)
    assert set(cmp_["model"]) == {"opt-13b"}  # the repo holds measured numbers for it only


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium is needed to check that report.html renders: install it "
        "(Debian: apt-get install -y chromium; `make install-test` does it as root)"
    )


def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        report.html.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1200)
    assert img.std() > 0.1, "the page rendered blank"
    # the figures are drawn: Figure 1's alpaca yellow is on the first screen
    yellow = (
        (abs(img[..., 0] - 0xF8 / 255) < 0.03)
        & (abs(img[..., 1] - 0xDE / 255) < 0.03)
        & (abs(img[..., 2] - 0x4B / 255) < 0.03)
    )
    assert yellow.sum() > 200


def test_report_command(tmp_path, capsys, calibration_dir, monkeypatch):
    root = make_results(tmp_path / "r", workloads={"dolly": WORKLOADS["dolly"]}, kv=(643,))
    monkeypatch.setenv("WORKLOAD_EVAL_CALIBRATION_DIR", str(calibration_dir))
    assert main(["report", str(root), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "14 points" in out and "report.html" in out
    assert (tmp_path / "out" / "report.html").is_file()
    assert (
        json.loads((root / "points").iterdir().__next__().joinpath("summary.json").read_text())[
            "config"
        ]["spec"]["workload"]
        == "dolly"
    )


def test_report_on_a_missing_or_empty_folder_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no results" in capsys.readouterr().err
