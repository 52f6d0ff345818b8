"""A Ctrl-C or SIGTERM can land inside a library's callback, which may wrap it in an error of
its own (pydantic does, in serializers): it is still an interrupt, never a traceback or a
point recorded as failed. Seen in the stress loop: SIGTERM to `capacity` landed in a
RunSpec serializer and the command died with a PydanticSerializationError."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, field_serializer

from workload_eval import interrupts
from workload_eval.cli import main
from workload_eval.experiments import grid


class _Interrupted(BaseModel):
    x: int = 0

    @field_serializer("x")
    def _boom(self, v: int) -> int:
        raise KeyboardInterrupt


def _wrapped_error(as_json: bool = False) -> Exception:
    try:
        if as_json:
            _Interrupted().model_dump_json()  # the interrupt kept as text only
        else:
            _Interrupted().model_dump(mode="json")  # the interrupt kept as the cause
    except Exception as e:  # pydantic's own error, not a KeyboardInterrupt
        return e
    raise AssertionError("the serializer did not raise")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_wrapped_interrupt_is_recognized_and_unwrapped(as_json: bool) -> None:
    err = _wrapped_error(as_json)
    assert not isinstance(err, KeyboardInterrupt) and interrupts.caused_by_interrupt(err)
    assert not interrupts.caused_by_interrupt(ValueError("plain"))
    with pytest.raises(KeyboardInterrupt), interrupts.unwrapped():
        raise err
    with pytest.raises(ValueError), interrupts.unwrapped():
        raise ValueError("plain")


def test_capacity_interrupted_inside_a_serializer_stops_cleanly(
    tmp_path, monkeypatch, capsys
) -> None:
    real = grid.run_spec_json
    calls = {"n": 0}

    def interrupted_on_the_fifth(spec):
        calls["n"] += 1
        if calls["n"] == 5:
            raise _wrapped_error()
        return real(spec)

    monkeypatch.setattr(grid, "run_spec_json", interrupted_on_the_fifth)
    out = tmp_path / "cap"
    args = ["capacity", "--model", "opt-13b", "--kv-blocks", "643", "--workload", "alpaca"]
    args += ["--duration", "30", "--slo", "ttft_p99<=5", "--confidence", "none"]
    args += ["--out", str(out)]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == interrupts.EXIT_SIGINT
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and "Pydantic" not in err
    assert calls["n"] == 5  # it stopped at the interrupt, it did not go on probing
