"""How long the report of a finished study takes, drawn by one process and by ``--jobs``.

Renders ``RESULTS_DIR``'s report into a scratch folder (the results are only read), with
``--jobs 1`` and ``--jobs N`` alternately, ``--repeats`` times each, and prints each run's
wall time, its CPU (the driver's and its workers'), the machine's load average before it,
and whether the two reports hold the same files (every byte, but the page's "generated"
minute and Figure 1's PDF creation date).

    python benchmarks/report_speed.py RESULTS_DIR [--jobs 2] [--repeats 3]

Target (issue 11): `reproduce`'s report at least 2x faster on 2 cores than one process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from workload_eval.report import build_report

_STAMPS = (re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC"), re.compile(rb"/CreationDate \(D:\d+Z\)"))


def _files(folder: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            for stamp in _STAMPS:
                data = stamp.sub(b"", data)
            out[p.relative_to(folder).as_posix()] = data
    return out


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _once(results: Path, out: Path, jobs: int) -> tuple[float, float, float]:
    shutil.rmtree(out, ignore_errors=True)
    cpu, children, t0 = time.process_time(), _children_cpu(), time.perf_counter()
    build_report(results, out, title="report_speed", jobs=jobs)
    wall = time.perf_counter() - t0
    for worker in multiprocessing.active_children():  # exiting: their CPU counts once joined
        worker.join()
    return wall, time.process_time() - cpu, _children_cpu() - children


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    walls: dict[int, list[float]] = {1: [], args.jobs: []}
    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        for r in range(args.repeats):
            for jobs in walls:
                load = os.getloadavg()[0]
                wall, cpu, workers = _once(args.results_dir, Path(tmp) / str(jobs), jobs)
                walls[jobs].append(wall)
                print(
                    f"run {r + 1} jobs {jobs}: {wall:5.2f} s wall, driver {cpu:5.2f} s CPU, "
                    f"workers {workers:5.2f} s CPU (load before {load:.2f})",
                    flush=True,
                )
        same = _files(Path(tmp) / "1") == _files(Path(tmp) / str(args.jobs))
    one, many = min(walls[1]), min(walls[args.jobs])
    print(
        f"best of {args.repeats}: jobs 1 {one:.2f} s, jobs {args.jobs} {many:.2f} s: "
        f"{one / many:.2f}x (median {statistics.median(walls[1]):.2f} s vs "
        f"{statistics.median(walls[args.jobs]):.2f} s); same files: {same}"
    )


if __name__ == "__main__":
    main()
