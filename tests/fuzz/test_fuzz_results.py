"""Damaged result folders: `report` skips or names what it cannot read and renders the rest.

One good study is made once (a real sim sweep, offline and online, plus a real online
openai run whose server exported no KV size); each case copies it, damages one file the
way a full disk, a kill -9, a hand edit or another tool would, and runs ``report`` through
the CLI (``harness``: bounded time and memory, no traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from harness import Case, Outcome, assert_one_line_user_error, run_in_process

from workload_eval.cli import main
from workload_eval.testing.instant_server import InstantServerProcess

KEY = re.compile(r"^[0-9a-f]{16}$")
SPEC = """\
models: [opt-13b]
kv_blocks: [643]
workloads: [alpaca]
schedules:
  - {kind: offline, num_requests: 30}
  - {kind: poisson, duration: 4, rate: [1, 2]}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("study")
    (root / "spec.yaml").write_text(SPEC)
    with contextlib.redirect_stdout(None):
        assert (
            main(["sweep", str(root / "spec.yaml"), "--out", str(root / "out"), "--no-progress"])
            == 0
        )
        with InstantServerProcess() as srv:  # an online server run: no KV size exported
            args = [
                *("run", "--engine", "openai", "--base-url", srv.base_url, "--model", "opt-13b"),
                *("--workload", "alpaca", "--request-rate", "20", "--duration", "1"),
                *("--engine-option", "metrics=false", "--no-progress"),
                *("--tokenizer-dir", str(tokenizer_dir), "--out", str(root / "out/openai-run")),
            ]
            assert main(args) == 0
    return root / "out"


def _points(root: Path) -> list[Path]:
    """The study's own points (the damaged copies are named x-*)."""
    return sorted(p for p in (root / "points").iterdir() if KEY.match(p.name) and p.is_dir())


def _kind(point: Path) -> str:
    return json.loads((point / "summary.json").read_text())["config"]["spec"]["schedule"]["kind"]


def _offline(root: Path) -> Path:
    return next(p for p in _points(root) if _kind(p) == "offline")


def _online(root: Path) -> Path:
    return next(p for p in _points(root) if _kind(p) != "offline")


def _truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _copy(root: Path, name: str) -> Path:
    """A copy of an online point to damage (named after the damage)."""
    copy = root / "points" / f"x-{name}"
    shutil.copytree(_online(root), copy)
    return copy / "summary.json"


def _copy_dir(root: Path, name: str) -> Path:
    return root / "points" / f"x-{name}"


def _text_times(path: Path) -> None:
    """A step table another tool wrote: times as text, one of them not a number."""
    steps = pd.read_parquet(path)
    steps["time"] = [*(f"{t:.3f}" for t in steps["time"][:-1]), "soon"]
    steps.to_parquet(path)


def _edit(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))  # Python writes NaN/Infinity as given: not JSON


def _hidden(root: Path, name: str, summary: bytes | None) -> None:
    """What a kill -9 leaves: a store's hidden temp folder (complete or half written)."""
    d = root / "points" / f".tmp-{_online(root).name}-{name}"
    shutil.copytree(_online(root), d)
    if summary is not None:
        (d / "summary.json").write_bytes(summary)


# name -> (damage, the text its warning must hold; None: ignored without a word, or
# still rendered when the damage is not in a file the report reads)
Damage = Callable[[Path], None]
DAMAGES: dict[str, tuple[Damage, str | None]] = {
    "truncated-requests-parquet": (
        lambda r: _truncate(_offline(r) / "requests.parquet"),
        "requests.parquet",
    ),
    "corrupt-steps-parquet": (
        lambda r: (
            [_truncate(p / "steps.parquet", 30) for p in _points(r) if _kind(p) != "offline"]
            and None
        ),
        "steps.parquet",
    ),
    "non-utf8-summary": (lambda r: _copy(r, "utf8").write_bytes(b"\xff\xfe{}"), "x-utf8"),
    "truncated-summary": (lambda r: _truncate(_copy(r, "trunc"), 200), "x-trunc"),
    "empty-summary": (lambda r: _copy(r, "empty").write_bytes(b""), "x-empty"),
    "list-summary": (lambda r: _copy(r, "list").write_text("[1, 2]"), "x-list"),
    "deep-summary": (
        lambda r: _copy(r, "deep").write_text("[" * 100_000 + "]" * 100_000),
        "x-deep",
    ),
    "huge-summary": (
        lambda r: _copy(r, "huge").write_bytes(b" " * (17 << 20) + b"{}"),
        "x-huge",
    ),
    "no-run-record": (lambda r: _edit(_copy(r, "noconf"), config=None), "x-noconf"),
    "bad-run-record": (lambda r: _edit(_copy(r, "badconf"), config={"spec": 5}), "x-badconf"),
    "nan-inf-string-metrics": (
        lambda r: _edit(
            _copy(r, "metrics"),
            ttft_p95=float("nan"),
            normalized_latency_p95=float("inf"),
            request_throughput="fast",
        ),
        "x-metrics/summary.json: request_throughput is 'fast', not a number",
    ),
    "missing-summary": (lambda r: _copy(r, "nosummary").unlink(), None),
    "missing-requests-parquet": (
        lambda r: (_copy(r, "noreq").parent / "requests.parquet").unlink(),
        None,
    ),
    "hidden-temp-point": (lambda r: _hidden(r, "a", None), None),
    "hidden-damaged-temp-point": (lambda r: _hidden(r, "b", b"{"), None),
    "summary-is-dev-zero": (
        lambda r: (
            _copy(r, "zero").unlink()
            or (_copy_dir(r, "zero") / "summary.json").symlink_to("/dev/zero")
        ),
        "x-zero/summary.json: not a regular file",
    ),
    "summary-is-a-fifo": (
        lambda r: _copy(r, "fifo").unlink() or os.mkfifo(_copy_dir(r, "fifo") / "summary.json"),
        "x-fifo/summary.json: not a regular file",
    ),
    "a-symlink-loop": (lambda r: (r / "points" / "loop").symlink_to(r), None),
    "garbage-index-and-capacity": (
        lambda r: (
            [(r / n).write_bytes(b"garbage\x00") for n in ("index.parquet", "capacity.parquet")]
            and None
        ),
        "index.parquet",
    ),
}
GOOD = 4 + 2  # the study's points, plus the copies whose damage leaves a run to draw


def test_report_skips_or_names_every_damage_and_renders_the_rest(
    study: Path, tmp_path: Path
) -> None:
    root = tmp_path / "results"
    shutil.copytree(study, root)
    for damage, _ in DAMAGES.values():
        damage(root)
    outcome = _report(root, tmp_path)
    assert outcome.code == 0 and not outcome.crash, outcome.describe()
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.describe()
    assert f"{GOOD} points" in outcome.stdout, outcome.describe()
    assert (root / "report" / "report.html").stat().st_size > 1000
    warnings = [ln for ln in outcome.stderr.splitlines() if ln]
    assert all(ln.startswith("warning: ") for ln in warnings), outcome.describe()
    for name, (_, named) in DAMAGES.items():
        if named is not None:
            assert any(named in ln for ln in warnings), f"{name}: {outcome.describe()}"
    assert not any(".tmp-" in ln for ln in warnings), outcome.describe()  # never read


def test_tables_the_figures_read_may_be_pipes_or_text(study: Path, tmp_path: Path) -> None:
    """The requests table Figure 1 reads is a FIFO (reading it would block forever), the
    step tables the timelines read hold text: no hang, the text named."""
    root = tmp_path / "results"
    shutil.copytree(study, root)
    for p in _points(root):
        if _kind(p) != "offline":
            _text_times(p / "steps.parquet")
        else:
            (p / "requests.parquet").unlink()
            os.mkfifo(p / "requests.parquet")
    outcome = _report(root, tmp_path)
    assert outcome.code == 0 and "Traceback" not in outcome.stderr, outcome.describe()
    assert "column time holds values that are not numbers" in outcome.stderr, outcome.describe()


def test_an_online_server_run_without_a_kv_size_is_drawn(study: Path, tmp_path: Path) -> None:
    outcome = _report(study, tmp_path, out=tmp_path / "report")
    assert outcome.code == 0 and not outcome.stderr, outcome.describe()
    assert (tmp_path / "report" / "figures" / "latency_vs_rate.png").is_file()


def test_nothing_readable_is_one_line(study: Path, tmp_path: Path) -> None:
    root = tmp_path / "results"
    shutil.copytree(study, root)
    for s in root.rglob("summary.json"):
        s.write_bytes(b"\xff")
    outcome = _report(root, tmp_path)
    assert_one_line_user_error(Case("x", (), expect="no readable summary.json"), outcome)


def _report(root: Path, tmp: Path, out: Path | None = None) -> Outcome:
    argv = ("report", str(root), *(("--out", str(out)) if out else ()))
    return run_in_process(Case("report", argv), tmp, {})
