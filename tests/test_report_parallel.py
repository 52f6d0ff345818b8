"""The report's figures drawn by several processes: the same files as one process draws,
a failing figure fails the same way, a lost worker or a table Arrow cannot hold loses no
figure."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import pandas as pd
import pytest
from report_fake_results import make_results

from workload_eval.report import build_report, capacity_table
from workload_eval.report.figure_jobs import FigureJob
from workload_eval.report.figure_pool import FigurePool, TableFiles
from workload_eval.results import load_points

# What differs between two renderings of the same results: the page's "generated" minute,
# and Figure 1's PDF creation date (the workloads package's plot keeps matplotlib's).
_STAMPS = (
    re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC"),
    re.compile(rb"/CreationDate \(D:\d+Z\)"),
)


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    for stamp in _STAMPS:
        data = stamp.sub(b"", data)
    return data


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): _content(p) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("results"))


def test_two_processes_write_the_same_report_as_one(results: Path, tmp_path: Path):
    one = build_report(results, tmp_path / "one", jobs=1)
    two = build_report(results, tmp_path / "two", jobs=2)
    assert [f.title for f in two.figures] == [f.title for f in one.figures]
    assert len(one.figures) >= 8
    assert [p.relative_to(tmp_path / "two") for p in two.files] == [
        p.relative_to(tmp_path / "one") for p in one.files
    ]
    first, second = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(second) == sorted(first)
    assert [name for name in first if first[name] != second[name]] == []


def _simple_jobs(results: Path, out: Path) -> list[FigureJob]:
    points = load_points(results)
    return [
        FigureJob("figure2a_capacity", out, {"capacity": capacity_table(points)}),
        FigureJob("figure2b_throughput", out, {"points": points}),
        FigureJob("figure3b_throughput_vs_kv", out, {"points": points}),
    ]


def test_a_figure_that_fails_in_a_worker_fails_as_in_one_process(results: Path, tmp_path: Path):
    broken = pd.DataFrame({"not_a_capacity": [1.0, 2.0]})
    for jobs in (1, 2):
        with pytest.raises(KeyError), FigurePool(jobs) as pool:
            jobs_ = _simple_jobs(results, tmp_path / str(jobs))
            pool.add([*jobs_, FigureJob("figure2a_capacity", tmp_path, {"capacity": broken})])
            pool.collect()


def test_a_lost_worker_loses_no_figure(results: Path, tmp_path: Path):
    with FigurePool(2) as pool:
        workers = multiprocessing.active_children()
        assert workers  # started with the pool, before any job
        for worker in workers:
            worker.kill()
            worker.join()
        jobs = _simple_jobs(results, tmp_path)
        pool.add(jobs)
        drawn = pool.collect()
    names = [[p.name for p in paths] for paths in drawn]
    assert names == [
        ["figure2a_capacity.png", "figure2a_capacity.pdf"],
        ["figure2b_throughput.png", "figure2b_throughput.pdf"],
        ["figure3b_throughput_vs_kv.png", "figure3b_throughput_vs_kv.pdf"],
    ]
    assert all(p.stat().st_size > 1000 for paths in drawn for p in paths)


def test_only_a_table_that_reads_back_exactly_travels(tmp_path: Path):
    files = TableFiles(tmp_path)
    plain = pd.DataFrame({"rate": [0.5, float("nan")], "model": ["opt-13b", None]})
    mixed = pd.DataFrame({"value": [1, "one"]}, dtype=object)  # Arrow has no such column
    assert files(plain) is not None
    assert files(plain) == files(plain)  # written once
    back = pd.read_feather(str(files(plain)))
    pd.testing.assert_frame_equal(back, plain, check_exact=True)
    assert files(mixed) is None


def test_a_table_that_cannot_travel_is_drawn_here(results: Path, tmp_path: Path):
    points = load_points(results)
    odd = points.assign(note=pd.Series([1, "x"] * (len(points) // 2) + [1] * (len(points) % 2)))
    with FigurePool(2) as pool:
        pool.add([FigureJob("figure2b_throughput", tmp_path / "odd", {"points": odd})])
        pool.add([FigureJob("figure2b_throughput", tmp_path / "plain", {"points": points})])
        odd_paths, plain_paths = pool.collect()
    assert [p.name for p in odd_paths] == ["figure2b_throughput.png", "figure2b_throughput.pdf"]
    assert odd_paths[0].read_bytes() == plain_paths[0].read_bytes()
