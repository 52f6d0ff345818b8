"""Output-length models: reference, eos:TOKENS (with an early-stop mass), recorded:RUN_DIR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workload_eval.errors import UserError
from workload_eval.workloads import load_workload
from workload_eval.workloads.output_models import (
    Eos,
    Recorded,
    Reference,
    apply_output_len_model,
    parse_output_len_model,
    solve_eos,
)


def _frame(prompts, outputs, **cols):
    return pd.DataFrame({"prompt_len": prompts, "output_len": outputs, **cols})


def test_parse_forms_and_one_line_errors():
    assert parse_output_len_model(None) == Reference()
    assert parse_output_len_model("reference") == Reference()
    assert parse_output_len_model("eos:855.7") == Eos(855.7)
    assert parse_output_len_model("eos:300,early=0.4,early_len=3") == Eos(300, 0.4, 3)
    stretch = parse_output_len_model("eos:300,early=0.2,early_len=1,prompts=stretch")
    assert stretch == Eos(300, 0.2, 1, stretch=True)
    assert parse_output_len_model(str(stretch)) == stretch
    assert parse_output_len_model("recorded:runs/a") == Recorded(Path("runs/a"))
    for bad, msg in [
        ("eos", "expected reference, eos:TOKENS"),
        ("eos:x", "TOKENS 'x': expected a number"),
        ("eos:100,early=2", "early '2': expected a number in [0, 1]"),
        ("eos:100,late=1", "expected early=FRACTION, early_len=TOKENS, prompts=keep|stretch"),
        ("eos:100,prompts=grow", "expected early=FRACTION, early_len=TOKENS, prompts="),
        ("eos:100,p=0", "p '0': expected a number in [1e-09, 1]"),
        ("geometric:5", "expected reference, eos:TOKENS"),
    ]:
        with pytest.raises(UserError, match=r"^--output-len-model: ") as e:
            parse_output_len_model(bad)
        assert msg in str(e.value)


def test_eos_cut_hits_the_target_mean_with_the_documented_stop():
    df = _frame([10] * 4000, [200] * 4000)
    out = apply_output_len_model(df, Eos(60.0), seed=0)
    assert (out.prompt_len + out.output_len).mean() == pytest.approx(60.0, abs=0.05)
    assert (out.output_len <= 200).all() and (out.output_len >= 1).all()
    # the stop is 1 + Geometric(p) with uniforms default_rng(seed).random(n): recover p
    u = np.random.default_rng(0).random(4000)
    cut = out.output_len.to_numpy()
    for p in (0.019, 0.021):
        stop = 1 + np.floor(np.log1p(-u) / np.log1p(-p)).astype(int)
        trial = np.minimum(200, stop)
        assert (trial.mean() > cut.mean()) == (p < 0.02)
    assert out.attrs["output_len_model"] == "eos:60"


def test_eos_leaves_shorter_workloads_alone_and_refuses_impossible_targets():
    df = _frame([10, 10], [5, 5])
    with pytest.warns(UserWarning, match="outputs unchanged"):
        out = apply_output_len_model(df, Eos(40.0), seed=0)
    assert out.output_len.tolist() == [5, 5]
    with pytest.raises(UserError, match="cannot reach a mean of 5 tokens"):
        apply_output_len_model(_frame([10, 10], [50, 50]), Eos(5.0), seed=0)


def test_an_early_stop_mass_gives_a_heavy_short_output_share():
    df = _frame([100] * 5000, [60] * 5000)
    plain = apply_output_len_model(df, Eos(120.0), seed=1).output_len
    early = apply_output_len_model(df, Eos(120.0, early=0.5, early_len=3), seed=1).output_len
    assert (df.prompt_len + early).mean() == pytest.approx(120.0, abs=0.1)
    assert (early <= 5).mean() > 0.4 > (plain <= 5).mean()
    # a target the early stops already undercut: only they apply (the model only shortens)
    with pytest.warns(UserWarning, match=r"early stops alone bring mean prompt \+ output is 13"):
        only_early = apply_output_len_model(df, Eos(140.0, early=0.5, early_len=3), seed=1)
    short = only_early.output_len.to_numpy()
    assert (short <= 60).all() and (short == 60).mean() > 0.45
    assert (short < 60).mean() == pytest.approx(0.5, abs=0.03)


def test_prompts_stretch_fills_a_target_above_our_data_with_prompt_tokens():
    df = _frame([100] * 2000 + [1900] * 10, [40] * 2010)
    df.attrs["max_model_len"] = 2048
    target = 200.0  # our mean is 148.7: the paper's prompts were longer
    out = apply_output_len_model(df, Eos(target, early=0.25, early_len=1, stretch=True), seed=3)
    o, p = out.output_len.to_numpy(), out.prompt_len.to_numpy()
    assert (o + p).mean() == pytest.approx(target, abs=0.5)
    assert (o == 1).mean() == pytest.approx(0.25, abs=0.03) and (o[o > 1] == 40).all()
    ratio = p[:2000] / 100
    assert ratio.min() == ratio.max() > 1.3  # one factor for every prompt
    assert (p + o < 2048).all()  # the long prompts stay below the length limit
    # a target below what one-token outputs give: the data's prompts were shorter than ours
    small = _frame([100] * 1000, [40] * 1000)
    shrunk = apply_output_len_model(small, Eos(60.0, stretch=True), seed=0)
    assert (shrunk.prompt_len + shrunk.output_len).mean() == pytest.approx(60.0, abs=0.5)
    assert (shrunk.output_len == 40).all() and (shrunk.prompt_len == 20).all()
    with pytest.raises(UserError, match="cannot reach a mean of 60 tokens"):
        apply_output_len_model(small, Eos(60.0), seed=0)
    with pytest.raises(UserError, match="prompts=stretch applies to single-turn workloads"):
        apply_output_len_model(
            _frame([10, 30], [10, 10], session_id=[0, 0], turn=[0, 1]),
            Eos(90.0, stretch=True),
            seed=0,
        )


def test_solved_parameters_apply_unchanged_to_another_sample():
    df = _frame(list(range(10, 1010)), [300] * 1000)
    fit = solve_eos(df, Eos(650.0, early=0.1, early_len=2), seed=0)
    assert fit.p is not None and fit.prompt_scale is None and fit.fixed
    assert parse_output_len_model(str(fit)).p == pytest.approx(fit.p, rel=1e-5)
    whole = apply_output_len_model(df, fit, seed=0).output_len.tolist()
    head = df.iloc[:50].reset_index(drop=True)  # a smaller sample of the same workload
    # the population's stop model, not one re-solved on the sample's own (shorter) mean
    assert apply_output_len_model(head, fit, seed=0).output_len.tolist() == whole[:50]
    with pytest.warns(UserWarning, match="not above the target"):
        resolved = apply_output_len_model(head, Eos(650.0, early=0.1, early_len=2), seed=0)
    assert resolved.output_len.mean() > 1.5 * np.mean(whole[:50])
    scaled = apply_output_len_model(head, Eos(400.0, prompt_scale=2.0), seed=0)
    assert scaled.prompt_len.tolist() == (2 * head.prompt_len).tolist()
    assert scaled.output_len.tolist() == head.output_len.tolist()


def test_eos_on_sessions_shortens_later_turns_histories():
    df = _frame([10, 30, 50], [10, 10, 10], session_id=[0, 0, 0], turn=[0, 1, 2])
    out = apply_output_len_model(df, Eos(35.0), seed=0)
    o = out.output_len.tolist()
    assert (out.prompt_len + out.output_len).mean() == pytest.approx(35.0, abs=1.0)
    assert o != [10, 10, 10]
    # own text per turn stays 10 (turn 0), 10 (30 - 20) and 10 (50 - 40)
    assert out.prompt_len.tolist() == [10, 10 + o[0] + 10, 10 + o[0] + 10 + o[1] + 10]


def test_recorded_replays_a_runs_generated_tokens(tmp_path):
    df = _frame([5, 6, 7], [10, 20, 30])
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(
        {
            "request_id": [2, 0, 1],
            "generated_tokens": [4, 9, 0],
            "expected_output_tokens": [30, 10, 20],
            "status": ["ok", "ok", "failed"],
        }
    ).to_parquet(run / "requests.parquet")
    with pytest.warns(UserWarning, match="1 requests did not complete"):
        out = apply_output_len_model(df, Recorded(run), seed=0)
    assert out.output_len.tolist() == [9, 20, 4]
    with pytest.raises(UserError, match="request 1 expected 20 output tokens there and 21"):
        apply_output_len_model(_frame([5, 6, 7], [10, 21, 30]), Recorded(run), seed=0)
    with pytest.raises(UserError, match="recorded 3 requests, this workload has 2"):
        apply_output_len_model(_frame([5, 6], [10, 20]), Recorded(run), seed=0)
    with pytest.raises(UserError, match=r"requests\.parquet not found"):
        apply_output_len_model(df, Recorded(tmp_path / "nothing"), seed=0)


def test_recorded_from_a_real_run_folder(tmp_path):
    from workload_eval.engines.base import EngineConfig
    from workload_eval.runner import RunSpec, execute, save_run

    spec = RunSpec(
        engine_config=EngineConfig(model="opt-13b", kv_blocks=643, max_model_len=4096),
        workload="synthetic:prompt_tokens=uniform(10,50),output_tokens=uniform(5,40)",
        schedule={"kind": "offline", "num_requests": 30},
    )
    save_run(execute(spec), tmp_path / "run")
    df = load_workload(
        spec.workload,
        "opt-13b",
        num_requests=30,
        output_len_model=f"recorded:{tmp_path / 'run'}",
    )
    rec = pd.read_parquet(tmp_path / "run" / "requests.parquet").sort_values("request_id")
    assert df.output_len.tolist() == rec.generated_tokens.tolist()
    assert df.attrs["output_len_model"] == f"recorded:{tmp_path / 'run'}"
