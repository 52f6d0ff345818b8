"""The one progress bar: silent when disabled, throttled, and its total can grow."""

from __future__ import annotations

import math

import pytest

from workload_eval.console import progress_bar


def test_disabled_bar_prints_nothing_and_never_asks_to_be_called(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress_bar(100.0, description="sim", unit="s", enabled=False) as bar:
        assert bar.next_mark == math.inf  # a hot loop skips the call entirely
        bar.update_to(50.0)
        bar.grow(10)
        bar.advance(description="x")
    assert capsys.readouterr() == ("", "")


def test_enabled_bar_shows_the_final_count_and_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress_bar(0, description="sweep", unit="runs") as bar:
        bar.grow(3)
        for i in range(3):
            bar.advance(description=f"point {i}")
    err = capsys.readouterr().err
    assert "point 2" in err and "3/3 runs" in err


def test_redraw_marks_step_by_a_thousandth_of_the_total() -> None:
    bar = progress_bar(1000.0, description="sim", unit="sim s")
    try:
        assert bar.next_mark == 1.0
        bar.update_to(0.5)  # below the mark: nothing to do
        assert bar.next_mark == 1.0
        bar.update_to(10.0)
        assert bar.next_mark == 11.0
        bar.grow(1000.0)
        assert bar.next_mark == 12.0
    finally:
        bar.close()
