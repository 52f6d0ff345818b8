"""README examples: every simulator-only ``workload-eval`` command in README.md's ```bash
blocks runs as written and exits 0, so the front door cannot drift from the code.

The commands run in README order through ``workload_eval.cli.main`` in a scratch folder
laid out as the README assumes (``examples/`` in it, the study's data at ``../shared``),
with heredoc files written as the README writes them. Workloads come from the package's
shipped length profiles (no data folder, hub offline), the path the README promises with
no data: a cold tokenizer cache would cost a minute per dataset. Commands that need vLLM,
a server, Ray, a GPU, a measured profile or more than ~10 s are left out by a rule below,
each with its reason; every other README command runs. About 30 s in all.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from workload_eval.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHARED = Path(os.environ.get("WORKLOAD_EVAL_SHARED", REPO.parent / "shared"))

pytestmark = [pytest.mark.slow, pytest.mark.readme]

# (what a command contains, why it does not run here); the first match wins
LEFT_OUT: list[tuple[str, str]] = [
    ("--engine vllm", "real vLLM: tests/test_vllm_engine.py"),
    ("--engine openai", "needs a server: tests/test_openai_engine*.py"),
    ("--perf-profile", "needs the profile `profile --engine vllm` measures"),
    ("--executor ray", "Ray: tests/test_experiments_ray*.py"),
    ("workload-eval profile", "times a real engine"),
    ("workload-eval models tiny", "writes a vLLM model; tests/test_tiny_model.py"),
    ("workload-eval reproduce", "the whole study, minutes; tests/test_reproduce.py"),
    ("workload-eval validate", "~10 s on 2 cores; tests/test_validate.py"),
    ("examples/paper.yaml", "the paper's whole study, minutes"),
    ("RESULTS_DIR", "a placeholder, not a command"),
]


@dataclass(frozen=True)
class Example:
    line: int  # README line where the command starts
    command: str  # as written, continuation lines joined
    files: tuple[tuple[str, str], ...] = ()  # heredoc files written before it


def _logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join backslash continuations; keep each command's first line number."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for no, text in block:
        start, acc = pending if pending else (no, "")
        acc += text.rstrip()
        if acc.endswith("\\"):
            pending = (start, acc[:-1] + " ")
        else:
            pending = None
            out.append((start, acc))
    return out


def readme_examples(text: str) -> list[Example]:
    """Every ``workload-eval`` command of the ```bash blocks, in order, with the heredoc
    files (``cat > F <<'EOF'``) written before it."""
    lines = text.splitlines()
    examples: list[Example] = []
    files: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        block: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            heredoc = re.match(r"cat > (\S+) <<'(\w+)'$", lines[i].strip())
            if heredoc:
                name, end = heredoc.groups()
                body: list[str] = []
                i += 1
                while lines[i].strip() != end:
                    body.append(lines[i])
                    i += 1
                files.append((name, "\n".join(body) + "\n"))
            else:
                block.append((i + 1, lines[i]))
            i += 1
        for no, command in _logical_lines(block):
            if command.strip().startswith("workload-eval "):
                examples.append(Example(no, command.strip(), tuple(files)))
    return examples


def argv(command: str) -> list[str]:
    """The arguments as a shell would pass them: comments dropped, optional ``[...]``
    parts of the synopsis left out."""
    without_optional = re.sub(r"\s\[[^\]]*\]", "", command)
    return shlex.split(without_optional, comments=True)[1:]


def left_out(command: str) -> str | None:
    return next((why for what, why in LEFT_OUT if what in command), None)


EXAMPLES = readme_examples(README.read_text(encoding="utf-8"))


def test_the_readme_examples_are_found_and_each_is_run_or_left_out_for_a_reason() -> None:
    run = [e for e in EXAMPLES if left_out(e.command) is None]
    skipped = {left_out(e.command) for e in EXAMPLES} - {None}
    # the parser must keep finding the sections a new user needs first
    assert len(run) >= 15, [e.command for e in run]
    for sub in ("workloads describe", "workloads plot", "workloads export", "run ", "sweep ",
                "capacity ", "compare "):  # fmt: skip
        assert any(f"workload-eval {sub}" in e.command for e in run), sub
    assert len(skipped) >= 6  # vllm, openai, profile, models, reproduce, validate, ...
    assert any(name == "chat-shape.yaml" for e in EXAMPLES for name, _ in e.files)


def test_every_simulator_example_of_the_readme_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert SHARED.is_dir(), f"the study's data not found at {SHARED}"
    work = tmp_path / "repo"
    work.mkdir()
    (work / "examples").symlink_to(REPO / "examples")
    (tmp_path / "shared").symlink_to(SHARED)  # the README's ../shared
    monkeypatch.chdir(work)
    for var in ("WORKLOAD_EVAL_DATA_DIR", "WORKLOAD_EVAL_TOKENIZER_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORKLOAD_EVAL_OFFLINE", "1")
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path / "cache"))

    failures: list[str] = []
    ran = 0
    for example in EXAMPLES:
        if left_out(example.command) is not None:
            continue
        for name, body in example.files:
            (work / name).write_text(body, encoding="utf-8")
        rc = main(argv(example.command))
        ran += 1
        captured = capsys.readouterr()
        if rc != 0:
            tail = (captured.err or captured.out).strip().splitlines()[-3:]
            failures.append(f"README.md:{example.line}: exit {rc}: {example.command}\n  {tail}")
    assert not failures, "\n".join(failures)
    assert ran >= 15


def test_the_readme_python_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WORKLOAD_EVAL_DATA_DIR", raising=False)
    monkeypatch.setenv("WORKLOAD_EVAL_OFFLINE", "1")
    monkeypatch.setenv("WORKLOAD_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks
    for code in blocks:
        scope: dict[str, object] = {}
        exec(compile(code, "README.md", "exec"), scope)  # the README's own code, as written
    df = scope["df"]
    assert len(df) == 1000 and {"prompt_len", "output_len"} <= set(df.columns)
