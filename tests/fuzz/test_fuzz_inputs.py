"""Every generated bad input (command lines, specs, data files, traces, perf profiles, model
configs) ends in exit 2 and exactly one ``error:`` line: no traceback, no hang, bounded memory.

Cases run in this process through ``cli.main`` (see ``harness``); each gets its own folder.
Later classes (hostile HTTP servers, damaged result folders) plug in as more cases with a
``fixture``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cases_cli import cli_cases
from cases_files import (
    config_cases,
    data_cases,
    limit_cases,
    profile_cases,
    spec_cases,
    tokenizer_cases,
)
from cases_servers import server_cases, vllm_setup_cases
from cases_workloads import workload_cases
from harness import Case, assert_one_line_user_error, run_in_process

CASES: list[Case] = list(
    itertools.chain(
        cli_cases(),
        spec_cases(),
        data_cases(),
        limit_cases(),
        tokenizer_cases(),
        profile_cases(),
        config_cases(),
        workload_cases(),
        server_cases(),
        vllm_setup_cases(),
    )
)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) > 250


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clean_line(case: Case, tmp_path: Path, tokenizer_dir: Path) -> None:
    shared = {
        "WORKLOAD_EVAL_TOKENIZER_DIR": str(tokenizer_dir),
        "WORKLOAD_EVAL_CACHE_DIR": str(tmp_path / "cache"),
    }
    outcome = run_in_process(case, tmp_path, shared)
    assert_one_line_user_error(case, outcome)
