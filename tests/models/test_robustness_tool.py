"""``tools/sticker_robustness.py``: where its table goes in a card, and bad output paths refused before measuring."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def tool(import_tool: Callable[[str], ModuleType]) -> ModuleType:
    return import_tool("sticker_robustness")


def test_section_goes_between_the_markers_then_replaces_itself(tool, tmp_path):
    card = tmp_path / "card.md"
    card.write_text("# Card\n\n## Results\nx\n\n## Known limits\n- y\n", encoding="utf-8")
    tool._update_card(card, "## Sticker robustness\nfirst")
    text = card.read_text(encoding="utf-8")
    assert text.index("first") < text.index("## Known limits") and text.count(tool.MARK) == 2
    tool._update_card(card, "## Sticker robustness\nsecond")
    text = card.read_text(encoding="utf-8")
    assert "second" in text and "first" not in text and text.count(tool.MARK) == 2
    assert text.startswith("# Card\n") and text.endswith("## Known limits\n- y\n")


def test_a_new_card_or_one_without_known_limits_gets_the_section(tool, tmp_path):
    new = tmp_path / "new.md"
    tool._update_card(new, "## Sticker robustness\nnew")
    assert new.read_text(encoding="utf-8") == f"{tool.MARK}\n## Sticker robustness\nnew\n{tool.MARK}\n"
    page = tmp_path / "page.md"
    page.write_text("# Page\n\ntext\n", encoding="utf-8")
    tool._update_card(page, "## Sticker robustness\nappended")
    block = f"{tool.MARK}\n## Sticker robustness\nappended\n{tool.MARK}\n"
    assert page.read_text(encoding="utf-8") == "# Page\n\ntext\n\n" + block


@pytest.mark.parametrize("flag", ["--card", "--figure"])
def test_unwritable_outputs_stop_before_any_model_is_loaded(tool, tmp_path, monkeypatch, flag):
    def never(*args, **kwargs):
        raise AssertionError("a model was loaded before the output paths were checked")

    monkeypatch.setattr(tool, "load_classifier", never)
    missing = tmp_path / "no" / "such" / "file.md"
    with pytest.raises(SystemExit) as stop:
        tool.main(["--data-dir", str(tmp_path), flag, str(missing)])
    message = str(stop.value)
    assert len(message.splitlines()) == 1 and flag in message and "create it" in message
    with pytest.raises(SystemExit, match="is a folder"):
        tool.main(["--data-dir", str(tmp_path), flag, str(tmp_path)])
