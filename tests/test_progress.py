import time

import pytest

from klugerhans.progress import progress_bar, say, timed


def test_say_prints_the_command_tag_on_stderr_only_when_progress_is_on(capsys):
    say("bench", "j1: audit", True)
    say("bench", "hidden", False)
    captured = capsys.readouterr()
    assert captured.err == "[bench] j1: audit\n"
    assert captured.out == ""


def test_a_stage_is_timed_even_when_it_fails():
    timings: dict[str, float] = {}
    with timed(timings, "sleep"):
        time.sleep(0.02)
    with pytest.raises(ValueError), timed(timings, "fails"):
        raise ValueError
    assert set(timings) == {"sleep", "fails"} and 0.02 <= timings["sleep"] < 1.0 and timings["fails"] >= 0.0


def test_a_bar_only_while_progress_is_on(capsys):
    items = [1, 2, 3]
    assert progress_bar(items, "off", progress=False) is items
    assert list(progress_bar(items, "on", progress=True)) == items
    assert "on" in capsys.readouterr().err
