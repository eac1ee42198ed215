"""The bad-input catalogue (tools/bad_inputs.py) through the CLI: one clean line per bad input, odd images work.

Most cases call ``klugerhans.cli.main`` in this process (each ``python -m klugerhans`` start imports torch for
seconds); a few run as real processes to show that nothing reaches the user as a traceback there either. The
whole catalogue in subprocesses is ``python tools/bad_inputs.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

IN_SUBPROCESS = ("pickle that runs code (.pt)", "16-bit PNG", "disk full while writing a heatmap")
"""Cases run through ``python -m klugerhans`` in a fresh process (the fault injected there, too)."""

REQUIRED = {
    # Images that are missing, not files, or broken: one clean error line.
    "nonexistent image": "clean error",
    "directory for an image": "clean error",
    "empty image file": "clean error",
    "truncated PPM": "clean error",
    "truncated PNG": "clean error",
    "truncated JPEG": "clean error",
    "text file named .ppm": "clean error",
    "decompression bomb (108 MP)": "clean error",
    # Valid but odd images: exit 0 with a prediction.
    "1x1 image": "handled",
    "16-bit PNG": "handled",
    "grayscale PNG": "handled",
    "RGBA PNG": "handled",
    "palette PNG": "handled",
    "CMYK JPEG": "handled",
    "EXIF-rotated JPEG (explain)": "handled",
    "JPEG with corrupt EXIF": "handled",
    # Foreign, damaged and malicious checkpoints.
    "checkpoint of another class count": "clean error",
    "checkpoint of another architecture": "clean error",
    "truncated checkpoint": "clean error",
    "pickle that runs code (.pt)": "clean error",
    "torch.save archive with code": "clean error",
    "malicious train_state.pt on --resume": "clean error",
    "checkpoint without metadata": "clean error",
    "checkpoint with NaN weights": "clean error",
    "checkpoint with NaN normalisation": "clean error",
    "10-class model explains with its own names": "handled",
    "invalid sticker in checkpoint metadata": "clean error",
    "10-class model for the GTSRB figure": "clean error",
    # The user's own model (--arch + --weights).
    "own weights (--arch squeezenet1_1)": "handled",
    "pickled whole model as --weights": "clean error",
    "weights of another architecture (--arch)": "clean error",
    "unknown --arch": "clean error",
    "--image-size too small for the architecture": "clean error",
    "--weights without --arch": "clean error",
    # Dataset copies.
    "dataset without class folders": "clean error",
    "dataset with 3 of 43 classes": "handled",
    "dataset with a malformed CSV": "clean error",
    "dataset with duplicate files": "clean error",
    "dataset with a truncated image": "clean error",
    # Option values.
    "negative epochs": "clean error",
    "sticker size outside (0, 1)": "clean error",
    "unknown composite": "clean error",
    "unknown class id (--sticker-class 43)": "clean error",
    "unknown class id (--target 99)": "clean error",
    # A full disk: the error names the file; nothing half-written is left.
    "disk full while writing a checkpoint": "clean error",
    "disk full while writing the dataset cache": "clean error",
    "disk full while writing a heatmap": "clean error",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalogue's scratch folder (inputs, outputs, cache)."""
    return tmp_path_factory.mktemp("bad_inputs")


@pytest.fixture(scope="module")
def outcomes(bad_inputs, work: Path) -> dict:
    """Every case's outcome, by name."""
    results = bad_inputs.run_catalogue(work, in_process=lambda case: case.name not in IN_SUBPROCESS)
    return {o.case.name: o for o in results}


@pytest.mark.parametrize(("name", "verdict"), sorted(REQUIRED.items()))
def test_required_input(outcomes, bad_inputs, name, verdict):
    outcome = outcomes[name]
    assert outcome.verdict == verdict, bad_inputs.format_outcome(outcome) + "\n" + outcome.stderr[-3000:]
    if verdict == "clean error":
        assert outcome.message.startswith(f"klugerhans {outcome.case.argv[0]}: error: ")
        assert "Traceback" not in outcome.stderr


def test_every_case_is_a_clean_error_or_handled(outcomes, bad_inputs):
    line = bad_inputs.summary(list(outcomes.values()))
    n = len(outcomes)
    handled = sum(o.case.expect == "ok" for o in outcomes.values())
    assert line == f"{n} inputs tried, {n - handled} clean errors, {handled} handled, 0 tracebacks"
    assert n >= 40


def test_foreign_code_never_ran_and_nothing_half_written_stayed(outcomes, work):
    assert len(outcomes) >= 40
    assert not (work / "FOREIGN_CODE_RAN").exists()
    assert not [p for pattern in (".*.tmp", "*.part") for p in work.rglob(pattern)]
    assert not (work / "runs" / "full" / "last.safetensors").exists()


def test_the_judge_catches_tracebacks_leftovers_and_wrong_codes(bad_inputs, tmp_path):
    """The catalogue must be able to fail: feed its judge what a broken CLI would print."""
    case = bad_inputs.Case("x", ("predict", "x.ppm"), words=("no such file",))
    good = bad_inputs.judge(case, 2, "", "klugerhans predict: error: x.ppm: no such file; check the path\n", set())
    assert good.verdict == "clean error"
    crash = "Traceback (most recent call last):\n  File ...\nIndexError: boom\n"
    assert bad_inputs.judge(case, 1, "", crash, set()).verdict == "TRACEBACK"
    assert bad_inputs.judge(case, 0, "", good.stderr, set()).verdict == "WRONG"  # exit 0 on bad input
    two = good.stderr + "klugerhans predict: error: again\n"
    assert bad_inputs.judge(case, 2, "", two, set()).verdict == "WRONG"
    left = bad_inputs.judge(case, 2, "", good.stderr, {tmp_path / ".x.safetensors.abc.tmp"})
    assert left.verdict == "WRONG" and "left" in left.problems[0]
    ok = bad_inputs.Case("odd", ("predict", "y.png"), "ok", words=("top-3",))
    noisy = "PIL/TiffImagePlugin.py:950: UserWarning: Corrupt EXIF data\n  warnings.warn(str(msg))\n"
    assert bad_inputs.judge(ok, 0, "y.png: 1 ... top-3 1 0.5", noisy, set()).verdict == "WRONG"
    outcomes = [good, bad_inputs.judge(case, 1, "", crash, set())]
    assert bad_inputs.summary(outcomes) == "2 inputs tried, 1 clean errors, 0 handled, 1 tracebacks"


def test_disk_full_hits_only_the_named_files(bad_inputs, tmp_path):
    from klugerhans.io import atomic_write_text

    with bad_inputs.disk_full(".ckpt."):
        atomic_write_text(tmp_path / "notes.txt", "fine")
        with pytest.raises(OSError, match="No space left") as err:
            atomic_write_text(tmp_path / "model.ckpt", "lost")
    assert err.value.filename == str(tmp_path / "model.ckpt")  # atomic_write names its target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
