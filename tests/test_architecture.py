"""Imports flow one way (docs/ARCHITECTURE.md) and never round a circle; the LRP engine stands on its own; no code
checks a registered dataset or architecture family by its name.

Layers: explain -> data -> models -> heatmaps -> report -> audit -> fix -> bench -> demo -> web -> cli.
"""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import klugerhans

LAYERS = [
    "version", "errors", "io", "progress", "registry", "defaults", "weights",
    "explain", "data", "models", "heatmaps", "report", "audit", "fix", "bench", "demo", "web", "cli",
]  # fmt: skip
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


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__.py``)."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ("klugerhans", *path.relative_to(SRC).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports anywhere (functions and ``TYPE_CHECKING`` blocks too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import name` imports the submodule pkg.name when there is one, else takes a name from pkg.
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {name for name in out if name in known and name != module}


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imported(m, path, known) for m, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each group of modules that import each other (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle(graph, group) for group in groups]


def _circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest import path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # a strongly connected group always has one


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_resolves_relative_and_submodule_imports():
    graph = _import_graph()
    assert "klugerhans.audit.report" in graph["klugerhans.cli.auditing"]  # imported inside a function
    assert "klugerhans.fix.report" in graph["klugerhans.fix"]  # lazily, in the package's __getattr__
    assert "klugerhans" not in graph["klugerhans.fix.finetune"]  # no implicit edges to parent packages


def test_no_import_circles():
    circles = _cycles(_import_graph())
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


ENGINE = "explain"
ENGINE_MAY_IMPORT = {"version", "errors", "io", "progress", "registry", "defaults", ENGINE}
"""What the LRP engine (``klugerhans.explain``) may import of the package: the leaf modules and itself."""


def _engine_imports_outside(modules: dict[str, Path]) -> list[str]:
    """``"<module> imports <name>"`` for every import of an engine module that leaves :data:`ENGINE_MAY_IMPORT`.

    Every import in the file counts: relative ones, ones inside functions and ``TYPE_CHECKING`` blocks.
    """
    known = set(modules) | set(_modules())
    bad = []
    for module, path in sorted(modules.items()):
        if _layer(module) != ENGINE:
            continue
        for name in sorted(_imported(module, path, known)):
            if _layer(name) not in ENGINE_MAY_IMPORT:
                bad.append(f"{module} imports {name}")
    return bad


def test_the_engine_imports_no_data_models_audit_or_web():
    modules = _modules()
    assert sum(_layer(m) == ENGINE for m in modules) > 10, "the engine's modules were not found"
    bad = _engine_imports_outside(modules)
    assert not bad, "the LRP engine must stand on its own:\n" + "\n".join(bad)


def test_the_engine_check_catches_hidden_imports(tmp_path):
    # an engine module that reaches up in every way the check must see: at the top, relatively, inside a function,
    # in a TYPE_CHECKING block, and the lazy top-level package
    source = (
        "from typing import TYPE_CHECKING\n"
        "from klugerhans.errors import KlugerhansError\n"
        "from klugerhans.explain.rules import Rule\n"
        "from ..data import images\n"
        "if TYPE_CHECKING:\n"
        "    from klugerhans.models.preprocess import Normalization\n"
        "def f():\n"
        "    import klugerhans.audit.run\n"
        "    from klugerhans.web import app\n"
        "    import klugerhans\n"
    )
    fake = tmp_path / "fake.py"
    fake.write_text(source, encoding="utf-8")
    bad = _engine_imports_outside({"klugerhans.explain.fake": fake, "klugerhans.report.fake": fake})
    assert bad == [
        "klugerhans.explain.fake imports klugerhans",
        "klugerhans.explain.fake imports klugerhans.audit.run",
        "klugerhans.explain.fake imports klugerhans.data.images",
        "klugerhans.explain.fake imports klugerhans.models.preprocess",
        "klugerhans.explain.fake imports klugerhans.web.app",
    ]


def test_importing_the_engine_loads_no_other_layer():
    code = (
        "import pkgutil, sys, importlib, klugerhans.explain as e\n"
        "for m in pkgutil.iter_modules(e.__path__): importlib.import_module(f'klugerhans.explain.{m.name}')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('klugerhans.'))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert any(m.startswith("klugerhans.explain.") for m in loaded)
    assert [m for m in loaded if _layer(m) not in ENGINE_MAY_IMPORT] == []  # the package's own loads version


def _documented_exports() -> list[tuple[str, str]]:
    """(package, name) for every name in the "key public names" column of docs/ARCHITECTURE.md's package table."""
    doc = (SRC.parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = doc.split("## Packages", 1)[-1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`klugerhans"):
            package = cells[0].strip("`")
            rows += [(package, name) for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[2])]
    return rows


def test_every_package_exports_what_the_architecture_doc_says():
    rows = _documented_exports()
    assert len(rows) > 30, "the package table of docs/ARCHITECTURE.md was not found"
    missing = []
    for package, name in rows:
        module = importlib.import_module(package)
        exported = getattr(module, "__all__", None)
        if not hasattr(module, name) or (exported is not None and name not in exported):
            missing.append(f"{package}.{name}")
    assert not missing, "documented but not exported: " + ", ".join(missing)


def test_the_architecture_doc_names_every_package():
    doc = (SRC.parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.relative_to(SRC.parent).as_posix().replace("/", ".") for p in SRC.rglob("__init__.py"))
    absent = [p for p in packages if f"`{p}`" not in doc and p != "klugerhans"]
    assert not absent, "packages missing from docs/ARCHITECTURE.md: " + ", ".join(absent)


def _name_checks(source: str, names: set[str]) -> list[int]:
    """Lines of ``source`` that compare with one of ``names`` (``x == "folder"``, ``x in ("gtsrb", ...)``) or hold a
    table by them (a dict literal keyed by two or more)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            sides += [e for s in sides if isinstance(s, ast.Tuple | ast.List | ast.Set) for e in s.elts]
            least = 1
        elif isinstance(node, ast.Dict):
            sides, least = [k for k in node.keys if k is not None], 2
        else:
            continue
        if sum(isinstance(s, ast.Constant) and s.value in names for s in sides) >= least:
            lines.append(node.lineno)
    return lines


def test_no_code_checks_a_registered_dataset_or_family_by_name():
    """A registry entry declares what it can do (``DatasetSpec``, ``Family``/``ModelSpec``), so that one a user
    registers works everywhere: no module compares with the built-in names."""
    import klugerhans.data
    import klugerhans.models  # noqa: F401 - registers the families
    from klugerhans.data.dataset import DATASETS
    from klugerhans.models.config import FAMILIES

    names = set(DATASETS) | set(FAMILIES)
    assert {"gtsrb", "synthetic", "folder", "klugerhans", "torchvision", "timm"} <= names
    found = [f"{p.relative_to(SRC)}:{line}" for p in sorted(SRC.rglob("*.py"))
             for line in _name_checks(p.read_text(encoding="utf-8"), names)]  # fmt: skip
    assert not found, "ask the registry entry instead of the name: " + ", ".join(found)


def test_the_name_check_finder_finds_comparisons_and_dict_keys():
    source = (
        'a = x == "folder"\nb = y in ("gtsrb", "z")\nc = {"timm": 32, "gtsrb": 1}\n'
        'd = {"name": "folder"}\ne = x == "auto"\nf = {"timm": 1, "torch": 2}\n'
    )
    assert _name_checks(source, {"folder", "gtsrb", "timm"}) == [1, 2, 3]


def test_every_module_is_at_most_400_lines():
    """Modules are split by concept before they grow past 400 lines (DEVELOPERS.md's house style)."""
    long = {}
    for path in SRC.rglob("*.py"):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > 400:
            long[str(path.relative_to(SRC))] = n
    assert not long, f"split these modules by concept: {long}"


def test_no_module_imports_a_private_name_of_another():
    """What one module needs of another is public; underscore names stay inside their module."""
    bad = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("klugerhans"):
                bad += [f"{path.relative_to(SRC)}: {node.module}.{a.name}" for a in node.names if _is_private(a.name)]
    assert not bad, bad


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize(
    "function",
    [
        "klugerhans.models.evaluation:evaluate_model",
        "klugerhans.models.training:train",
        "klugerhans.audit.run:compute_audit",
        "klugerhans.fix.run:compute_fix",
        "klugerhans.bench.run:run_job",
        "klugerhans.bench.summary:summarize_suite",
        "klugerhans.demo:run_demo",
    ],
)
def test_a_command_s_result_is_a_frozen_record_not_a_dict(function):
    """Results are typed objects that become JSON only at the boundary (their ``to_json``)."""
    import dataclasses
    import typing

    module, name = function.split(":")
    returned = typing.get_type_hints(getattr(importlib.import_module(module), name))["return"]
    assert dataclasses.is_dataclass(returned) and returned.__dataclass_params__.frozen, returned
