"""The memory bombs again, each in a fresh interpreter under a hard 2 GiB address-space
limit: what the issue measured at 4.9 GB (a YAML alias bomb), 6 GB (a gzip bomb) and
7 GiB-728 TiB (huge request counts and rates) must now be a one-line error well inside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Case, assert_one_line_user_error, materialize, run_subprocess
from test_fuzz_inputs import CASES

MEMORY_BYTES = 2 << 30  # a normal sim run peaks well under 1.5 GiB of address space
BOMBS = [
    "spec:alias-bomb-in-name",
    "data:gzip-bomb-1GiB",
    "run--num-requests='1000000000'",
    "spec:rate-1e12",
]
BY_ID = {c.id: c for c in CASES}


@pytest.mark.parametrize("case_id", BOMBS)
def test_bomb_is_refused_within_bounded_memory(
    case_id: str, tmp_path: Path, tokenizer_dir: Path
) -> None:
    case: Case = BY_ID[case_id]
    argv = materialize(case, tmp_path, {})
    env = {"WORKLOAD_EVAL_TOKENIZER_DIR": str(tokenizer_dir), **case.env}
    env["WORKLOAD_EVAL_CACHE_DIR"] = str(tmp_path / "cache")
    outcome = run_subprocess(argv, env, timeout=120, memory_bytes=MEMORY_BYTES, cwd=tmp_path)
    assert_one_line_user_error(case, outcome)
