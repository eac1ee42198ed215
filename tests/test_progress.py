from klugerhans.progress import say


def test_say_prints_the_command_tag_on_stderr_only_when_progress_is_on(capsys):
    say("bench", "j1: audit", True)
    say("bench", "hidden", False)
    captured = capsys.readouterr()
    assert captured.err == "[bench] j1: audit\n"
    assert captured.out == ""
