"""Imports flow one way (docs/ARCHITECTURE.md): data -> models -> explain -> audit -> report -> fix -> cli/web."""

import ast
from pathlib import Path

import klugerhans

LAYERS = ["errors", "io", "weights", "data", "models", "explain", "audit", "report", "fix", "demo", "web", "cli"]
SRC = Path(klugerhans.__file__).parent


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "klugerhans" or len(parts) < 2:
        return None
    return parts[1]


def test_no_module_imports_a_later_layer():
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        if own not in LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                other = _layer(name)
                if other in LAYERS and LAYERS.index(other) > LAYERS.index(own):
                    bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)
