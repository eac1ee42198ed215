"""The how-tos in docs/howto run as written: every ```python block, the blocks of one page in order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import klugerhans.audit.methods
import klugerhans.data
import klugerhans.explain.composites
import klugerhans.explain.modules
import klugerhans.fix.methods  # noqa: F401 - fills the "fix method" registry
from klugerhans.registry import REGISTRIES

HOWTO = Path(__file__).parents[1] / "docs" / "howto"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = {
    "composite.md": ("composite", "@register_composite("),
    "dataset.md": ("dataset", "@register_dataset("),
    "attribution_method.md": ("attribution method", "@register_method("),
    "fix_method.md": ("fix method", "@register_fix("),
    "module_rule.md": ("module rule", "@register_module_rule("),
}
"""Each how-to, the registry its example fills and the decorator it must use."""


def python_blocks(text: str) -> list[str]:
    """The ```python code blocks of a Markdown text, in order."""
    return BLOCK.findall(text)


@pytest.fixture
def registries() -> Iterator[None]:
    """Undo what an example registers, so other tests see the built-in entries only."""
    saved = {kind: dict(registry) for kind, registry in REGISTRIES.items()}
    yield
    for kind, registry in REGISTRIES.items():
        if kind in saved:
            registry.clear()
            registry.update(saved[kind])


def test_the_block_finder() -> None:
    text = "intro\n```python\na = 1\n```\n```\nnot python\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


def test_every_howto_is_listed() -> None:
    assert {p.name for p in HOWTO.glob("*.md")} == {*PAGES, "README.md"}
    index = (HOWTO / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert f"]({page})" in index


@pytest.mark.parametrize("page", sorted(PAGES))
def test_howto_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registries: None) -> None:
    kind, decorator = PAGES[page]
    text = (HOWTO / page).read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert len(blocks) >= 2 and decorator in blocks[0], f"{page}: register with {decorator}...) in the first block"
    before = set(REGISTRIES[kind])
    monkeypatch.chdir(tmp_path)  # examples write their files here
    namespace: dict[str, object] = {"__name__": f"howto_{Path(page).stem}"}
    for i, block in enumerate(blocks):
        code = compile(block, f"{HOWTO / page}: python block {i + 1}", "exec")
        exec(code, namespace)
    assert set(REGISTRIES[kind]) - before, f"{page}: the example registered no {kind}"


def _demo_numbers_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "demo_numbers", Path(__file__).parents[1] / "tools" / "demo_numbers.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_numbers_in_readme_and_demo_md_are_the_tools_blocks() -> None:
    tool = _demo_numbers_tool()
    root = Path(__file__).parents[1]
    for page in (root / "README.md", root / "docs" / "DEMO.md"):
        assert page.read_text().count(tool.MARKER) == 2, page  # the tool rewrites what lies between them
    summary = {
        "config": {"per_class": 400, "width": 0.25, "epochs": 12}, "sticker_size": 0.25, "seconds": 123.4,
        "accuracy_non_target": 0.9612, "flip_rate_50": 0.62, "flip_rate": 0.388, "clean_target_accuracy": 0.6,
        "n_test_images": 2150, "sticker_relevance_mass": 0.21, "sticker_pixel_share": 0.035,
        "repair_skipped": "the audit flagged no class (a test)",
    }  # fmt: skip
    wrapped = tool.readme_block(summary)
    readme = " ".join(wrapped.split())
    assert "in 123 s" in readme and "96.1% accuracy" in readme and "turns 62% of the 50 km/h" in readme
    assert "the repair was skipped: the audit flagged no class (a test)." in readme
    assert max(map(len, wrapped.splitlines())) <= tool.WIDTH
    demo = tool.demo_block(summary, None)
    assert "| **50 km/h + sticker -> 70** (`flip_rate_50`) | **62%** |" in demo
    replaced = tool.replace_block(f"a\n{tool.MARKER}\nold\n{tool.MARKER}\nb", "new", Path("x"))
    assert replaced == f"a\n{tool.MARKER}\nnew\n{tool.MARKER}\nb"
