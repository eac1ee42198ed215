"""A reduced `klugerhans demo` end to end: every artefact is written and the summary holds measured numbers."""

import json

from klugerhans.cli import main


def test_reduced_demo_writes_report_figure_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--max-images", "430", "--epochs", "1", "--width", "0.125", "--no-progress"]
    )
    assert code == 0
    for name in ("summary.json", "report.html", "report.md", "figure.png", "figure.pdf", "confusion.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "clean_target_accuracy", "flip_rate", "sticker_relevance_mass", "seconds"):
        assert key in summary
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["seconds"] > 0
    assert 0.0 <= summary["sticker_relevance_mass"] <= 1.0
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert "flip_rate" in capsys.readouterr().out

    # A second run resumes the finished training instead of starting over.
    assert (
        main(["demo", "--out", str(out), "--max-images", "430", "--epochs", "1", "--width", "0.125", "--no-progress"])
        == 0
    )
