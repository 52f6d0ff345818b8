"""Figures from a hand-made results folder: valid PNG/PDF files with the expected content."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from report_fake_results import KV, MODELS, WORKLOADS, capacity_of, make_results

from workload_eval.report import figures
from workload_eval.report.results import capacity_table
from workload_eval.results import load_points


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def points(results) -> pd.DataFrame:
    return load_points(results)


def assert_png(path: Path, min_width: int = 400) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.shape[1] >= min_width and img.shape[0] >= 200
    rgb = img[..., :3]
    assert rgb.std() > 0.05, "blank image"
    return rgb


def assert_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
    assert len(data) > 2000


def has_color(rgb: np.ndarray, hex_color: str, tol: float = 0.02) -> bool:
    target = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(rgb - target).max(axis=-1) < tol).any())


def test_points_table_reads_config_and_metrics(points):
    n_combo = len(WORKLOADS) * len(MODELS) * len(KV)
    assert len(points) == n_combo * 7  # 2 offline + 5 online per combination
    assert set(points["model"]) == set(MODELS)
    assert set(points["kv_blocks"]) == set(KV)
    assert set(points["schedule"]) == {"offline", "poisson"}
    assert sorted(points["num_requests"].dropna().unique()) == [100, 1000]
    off = points[(points["schedule"] == "offline") & (points["num_requests"] == 1000)]
    row = off[
        (off["model"] == "opt-13b") & (off["workload"] == "alpaca") & (off["kv_blocks"] == 643)
    ].iloc[0]
    assert row["request_throughput"] == pytest.approx(30.0)


def test_capacity_table_finds_each_configurations_capacity(points):
    cap = capacity_table(points, slo=0.1875)
    assert len(cap) == len(WORKLOADS) * len(MODELS) * len(KV)
    for _, r in cap.iterrows():
        want = round(capacity_of(r["workload"], r["model"], int(r["kv_blocks"])), 4)
        assert r["max_rate"] == pytest.approx(want)


def test_figure1_length_cdfs_use_the_seeds_colours(results, points, tmp_path):
    frames = figures.length_frames(results, points)
    assert set(frames) == set(WORKLOADS)
    assert {"prompt_len", "output_len"} <= set(frames["alpaca"].columns)
    png, pdf = figures.figure1_lengths(frames, tmp_path)
    rgb = assert_png(png)
    assert_pdf(pdf)
    for color in ("#F8DE4B", "#57B593", "#E16F65", "#577FBC"):
        assert has_color(rgb, color), color


def test_figure2_bars(points, tmp_path):
    cap = capacity_table(points)
    paths = figures.figure2a_capacity(cap, tmp_path, slo=0.1875)
    paths += figures.figure2b_throughput(points, tmp_path)
    assert [p.name for p in paths] == [
        "figure2a_capacity.png",
        "figure2a_capacity.pdf",
        "figure2b_throughput.png",
        "figure2b_throughput.pdf",
    ]
    for p in paths[::2]:
        rgb = assert_png(p)
        assert has_color(rgb, "#E16F65")  # the CNN/DailyMail bar is drawn
    for p in paths[1::2]:
        assert_pdf(p)


def test_figure2a_falls_back_to_each_models_biggest_kv(points, tmp_path):
    cap = capacity_table(points)
    cap = cap[cap["kv_blocks"] != 643]
    paths = figures.figure2a_capacity(cap, tmp_path)  # no 643: uses 300 for every model
    assert len(paths) == 2
    assert_png(paths[0])


def test_figure3_versus_kv_blocks(points, tmp_path):
    cap = capacity_table(points)
    paths = figures.figure3a_capacity_vs_kv(cap, tmp_path)
    paths += figures.figure3b_throughput_vs_kv(points, tmp_path)
    assert len(paths) == 4
    for p in paths[::2]:
        rgb = assert_png(p, min_width=800)
        assert has_color(rgb, "#cae6f4") and has_color(rgb, "#64c1f4")  # 1x and 3x blues
    for p in paths[1::2]:
        assert_pdf(p)


def test_curves_and_timelines(results, points, tmp_path):
    lat = figures.figure_metric_vs_rate(points, tmp_path)
    ttft = figures.figure_metric_vs_rate(
        points, tmp_path, metric="ttft_p95", ylabel="p95 TTFT (s)", slo=None, name="ttft"
    )
    steps = pd.read_parquet(results / points.iloc[-1]["key"] / "steps.parquet")
    tl = figures.figure_timelines({"alpaca": (steps, "OPT-13B"), "dolly": (steps, "x")}, tmp_path)
    for p in (*lat, *ttft, *tl):
        assert p.exists()
    assert has_color(assert_png(lat[0]), figures.SLO_COLOR)  # the SLO line
    assert has_color(assert_png(tl[0]), "#57B593")  # Dolly's colour
    assert_png(ttft[0])


def test_nothing_to_plot_writes_nothing(tmp_path):
    empty = load_points(make_empty(tmp_path / "empty"))
    out = tmp_path / "figs"
    assert figures.figure2a_capacity(capacity_table(empty), out) == []
    assert figures.figure2b_throughput(empty, out) == []
    assert figures.figure3b_throughput_vs_kv(empty, out) == []
    assert figures.figure_metric_vs_rate(empty, out) == []
    assert figures.figure1_lengths({}, out) == []
    assert figures.figure_timelines({}, out) == []
    assert not out.exists()


def make_empty(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_paper_vs_ours_parity_plot(tmp_path):
    cmp_ = pd.DataFrame(
        {
            "quantity": ["offline throughput"] * 2 + ["max rate under SLO"],
            "unit": ["req/s", "req/s", "req/s"],
            "model": ["opt-13b"] * 3,
            "workload": ["alpaca", "sharegpt", "dolly"],
            "kv_blocks": [643, 643, 643],
            "num_requests": [1000, 100, np.nan],
            "paper": [31.3, 2.6, 17.0],
            "ours": [23.5, 1.6, 9.5],
            "error_pct": [-25.0, -38.0, -44.0],
        }
    )
    png, pdf = figures.figure_paper_vs_ours(cmp_, tmp_path)
    rgb = assert_png(png)
    assert_pdf(pdf)
    assert has_color(rgb, "#577FBC") and has_color(rgb, "#F8DE4B")
    assert figures.figure_paper_vs_ours(cmp_.iloc[:0], tmp_path / "none") == []


def test_one_probed_rate_names_no_capacity(points):
    one = points[(points["schedule"] == "offline") | (points["rate"] == points["rate"].max())]
    assert capacity_table(one).empty
