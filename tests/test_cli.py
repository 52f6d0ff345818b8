from workload_eval.cli import main
from workload_eval.errors import UserError
from workload_eval.models import resolve_model


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out


def test_unknown_subcommand_exits_2(capsys):
    assert main(["no-such-command"]) == 2


def test_resolve_model_by_name_and_hub_id():
    assert resolve_model("opt-13b") is resolve_model("facebook/opt-13b")
    assert resolve_model("Llama-2-13b").hub_id == "meta-llama/Llama-2-13b-hf"
    assert resolve_model("opt-13b").tokenizer == "opt"


def test_unknown_model_is_a_user_error():
    try:
        resolve_model("gpt-9")
    except UserError as e:
        assert "gpt-9" in str(e) and "opt-13b" in str(e)
    else:
        raise AssertionError("expected UserError")


def test_model_sizes_match_public_counts():
    # OPT-13B has ~12.9B params, Llama-2-7B ~6.7B.
    assert 12.5e9 < resolve_model("opt-13b").num_params < 13.3e9
    assert 6.5e9 < resolve_model("llama-2-7b").num_params < 6.9e9
