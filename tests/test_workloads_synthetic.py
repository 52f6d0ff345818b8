"""Synthetic, sessions and family workloads: exact lengths for a seed, specs, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from workload_eval.errors import UserError
from workload_eval.workloads import load_workload, resolve_workload
from workload_eval.workloads.families import FAMILIES
from workload_eval.workloads.requests import to_requests
from workload_eval.workloads.specs import SessionsWorkload, SyntheticWorkload, parse_inline


def _load(name, n=None, seed=0, **kw):
    return load_workload(name, "opt-13b", num_requests=n, seed=seed, **kw)


def test_synthetic_lengths_are_exact_for_a_seed():
    df = _load("synthetic:prompt_tokens=uniform(10,20),output_tokens=normal(50,10,1,100)", 6, 7)
    assert df["prompt_len"].tolist() == [19, 18, 10, 20, 15, 11]
    assert df["output_len"].tolist() == [60, 50, 59, 39, 77, 62]
    # the definition: one numpy stream per field, default_rng([seed, salt])
    prompts = np.random.default_rng([7, 101]).integers(10, 20, size=6, endpoint=True)
    outputs = np.clip(np.rint(np.random.default_rng([7, 102]).normal(50, 10, 6)), 1, 100)
    assert df["prompt_len"].tolist() == prompts.tolist()
    assert df["output_len"].tolist() == outputs.astype(int).tolist()
    assert df.attrs["workload"] == "synthetic" and df.attrs["source"] == "generated"
    again = _load("synthetic:prompt_tokens=uniform(10,20),output_tokens=normal(50,10,1,100)", 6, 7)
    assert again["prompt_len"].tolist() == df["prompt_len"].tolist()
    other = _load("synthetic:prompt_tokens=uniform(10,20),output_tokens=normal(50,10,1,100)", 6, 8)
    assert other["prompt_len"].tolist() != df["prompt_len"].tolist()


def test_lognormal_matches_its_mean_and_is_clamped():
    df = _load("synthetic:prompt_tokens=lognormal(100,50,5,400),output_tokens=3", 6, 7)
    assert df["prompt_len"].tolist() == [135, 167, 82, 143, 73, 161]
    assert df["output_len"].tolist() == [3] * 6
    big = _load("synthetic:prompt_tokens=lognormal(100,50,5,400),output_tokens=3", 20000, 1)
    assert big["prompt_len"].mean() == pytest.approx(100, rel=0.02)
    assert big["prompt_len"].min() >= 5 and big["prompt_len"].max() <= 400


def test_fixed_lengths_and_the_default_count():
    df = _load("synthetic:prompt_tokens=512,output_tokens=256")
    assert len(df) == 1000 and set(df["prompt_len"]) == {512} and set(df["output_len"]) == {256}
    assert len(_load("synthetic:prompt_tokens=512,output_tokens=256,num_requests=7")) == 7
    assert len(_load("synthetic:prompt_tokens=512,output_tokens=256", 3)) == 3


def test_spec_seed_overrides_the_run_seed():
    a = _load("synthetic:prompt_tokens=uniform(1,1000),output_tokens=5,seed=3", 5, 0)
    b = _load("synthetic:prompt_tokens=uniform(1,1000),output_tokens=5,seed=3", 5, 99)
    assert a["prompt_len"].tolist() == b["prompt_len"].tolist()


def test_empirical_lengths_come_from_a_file_column_relative_to_the_spec(tmp_path):
    (tmp_path / "lens.csv").write_text("n\n7\n9\n11\n")
    spec = tmp_path / "w.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"kind": "synthetic", "prompt_tokens": "empirical(lens.csv,n)", "output_tokens": 2}
        )
    )
    df = _load(str(spec), 8, 0)
    picks = np.random.default_rng([0, 101]).integers(0, 3, size=8)
    assert df["prompt_len"].tolist() == [[7, 9, 11][i] for i in picks]
    assert df.attrs["workload"] == "w"


def test_sessions_prompts_include_the_history_exactly():
    name = (
        "sessions:turns=uniform(1,3),prompt_tokens=uniform(5,9),output_tokens=4,"
        "system_prompt_tokens=2,num_sessions=3"
    )
    df = _load(name, None, 1)
    assert df["session_id"].tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert df["turn"].tolist() == [0, 1, 0, 1, 0, 1, 2]
    assert df["prompt_len"].tolist() == [10, 19, 9, 21, 8, 19, 28]
    assert df["output_len"].tolist() == [4] * 7
    # turn r = system 2 + earlier (own + 4) + own_r; own = the uniform(5,9) draws in order
    own = np.random.default_rng([1, 101]).integers(5, 9, size=7, endpoint=True)
    assert df["prompt_len"].tolist()[:2] == [2 + own[0], 2 + own[0] + 4 + own[1]]
    # cut at N turns: the same sessions, the last one cut
    assert _load(name, 4, 1)["prompt_len"].tolist() == [10, 19, 9, 21]
    reqs = to_requests(df)
    # the system prompt is one shared segment; a turn's prompt extends the previous turn's
    assert reqs[0].prefix_segments[0].key == "prefix:0" == reqs[2].prefix_segments[0].key
    assert reqs[1].prefix_segments[1].key == reqs[0].prefix_segments[1].key == "session:0"
    assert [s.length for s in reqs[1].prefix_segments] == [2, 17]
    assert sum(s.length for s in reqs[6].prefix_segments) == 28


def test_sessions_think_time_drives_the_sessions_schedule():
    from workload_eval.schedules import SessionsSchedule, build_schedule

    df = _load("sessions:turns=2,prompt_tokens=5,output_tokens=5,think_time=2.5,num_sessions=2")
    sched = build_schedule(SessionsSchedule(rate=1.0), df, seed=0)
    follow = [it for it in sched.items if it.depends_on is not None]
    assert len(follow) == 2 and all(it.think_time == 2.5 for it in follow)
    with pytest.raises(UserError, match="sets its own think times"):
        build_schedule(SessionsSchedule(rate=1.0, think_time=1.0), df, seed=0)


def test_families_are_named_sourced_shared_prefix_shapes():
    assert {"general", "codegen", "roleplay", "reasoning"} <= set(FAMILIES)
    codegen = _load("codegen", 250)
    assert set(codegen["prompt_len"]) == {566} and set(codegen["output_len"]) == {247}
    assert codegen["prompt_id"].nunique() == 100 and codegen["prefix_group"].nunique() == 10
    mt = FAMILIES["codegen_multi_turn"].spec
    assert (mt.num_groups, mt.prompts_per_group, mt.multi_turn) == (11, 4, True)
    assert "inference-perf" in FAMILIES["general"].source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("synthetic:prompt_tokens=512", "output_tokens: field required"),
        ("synthetic:prompt_tokens=gauss(5,1),output_tokens=3", "prompt_tokens: expected an int"),
        ("synthetic:prompt_tokens=uniform(9,2),output_tokens=3", "prompt_tokens: min 9 > max 2"),
        ("synthetic:prompt_tokens=0,output_tokens=3", "prompt_tokens: expected lengths of at"),
        ("synthetic:prompt_tokens=5,output_tokens=3,prompt=1", "prompt: unknown field (expected"),
        ("synthetic:prompt_tokens=5,output_tokens=normal(3)", "normal(...) takes mean, stdev"),
        ("shared_prefix:num_groups=0", "num_groups: Input should be greater than or equal to 1"),
        ("sessions:turns=2,prompt_tokens=5", "output_tokens: field required"),
        ("synthetic:prompt_tokens", "expected KEY=VALUE"),
    ],
)
def test_bad_inline_specs_are_one_line_errors(text, message):
    with pytest.raises(UserError) as e:
        parse_inline(text)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(f"workload {text!r}: ")


def test_bad_workload_files_name_the_file_and_field(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("kind: synthetic\nprompt_tokens: {type: normal, mean: 5}\noutput_tokens: 3\n")
    with pytest.raises(UserError, match=rf"^{bad}: prompt_tokens\.stdev: field required"):
        _load(str(bad))
    bad.write_text("kind: synthetic\nprompt_tokens: {type: uniform, min: 1, max: 9, mean: 3}\n")
    with pytest.raises(
        UserError, match=r"prompt_tokens\.mean: unknown field \(expected one of type, min, max\)"
    ):
        _load(str(bad))
    bad.write_text("kind: synthetic\nprompt_tokens: [1\n")
    with pytest.raises(UserError, match=rf"^{bad}: line \d+: invalid YAML"):
        _load(str(bad))
    bad.write_text("kind: shared_prefixx\n")
    with pytest.raises(UserError, match="kind: expected one of synthetic, shared_prefix"):
        _load(str(bad))
    js = tmp_path / "w.json"
    js.write_text(json.dumps({"kind": "sessions", "turns": 2, "prompt_tokens": 3}))
    with pytest.raises(UserError, match=rf"^{js}: output_tokens: field required"):
        _load(str(js))
    with pytest.raises(UserError, match="no such file"):
        _load(str(tmp_path / "missing.yaml"))


def test_a_spec_file_and_its_inline_form_are_the_same_workload(tmp_path):
    f = tmp_path / "chat.yaml"
    f.write_text("kind: synthetic\nprompt_tokens: normal(300, 50)\noutput_tokens: uniform(10,90)\n")
    a = _load(str(f), 50, 3)
    b = _load("synthetic:prompt_tokens=normal(300,50),output_tokens=uniform(10,90)", 50, 3)
    assert a[["prompt_len", "output_len"]].equals(b[["prompt_len", "output_len"]])
    assert isinstance(resolve_workload(str(f)).generated, SyntheticWorkload)
    sessions = parse_inline("sessions:turns=2,prompt_tokens=3,output_tokens=4")
    assert isinstance(sessions, SessionsWorkload)


def test_unknown_names_list_the_catalog_the_families_and_the_forms():
    with pytest.raises(UserError) as e:
        resolve_workload("alpacca")
    msg = str(e.value)
    assert "unknown workload 'alpacca'" in msg and "codegen" in msg and "inline spec" in msg
