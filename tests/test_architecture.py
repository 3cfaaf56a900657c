"""The layering of docs/ARCHITECTURE.md, read from the code's own imports.

Every import inside detkit/ must run from a higher layer to a lower one (or stay inside one
package), no two packages may import each other through any path, and no module may import another
module's private (``_name``) helpers. A new package has to be given its layer here and a line in
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "detkit"

# Low to high; a package may import the packages of its own layer's predecessors only. Packages in one
# layer do not import each other.
LAYERS: list[set[str]] = [
    {"structures", "registry", "utils"},
    {"layers", "ops"},
    {"backbones", "necks", "assign", "coders", "losses", "data"},
    {"priors"},
    {"proposals"},
    {"heads"},
    {"detectors"},
    {"evaluation"},
    {"reporting"},
    {"engine"},
    {"export"},
    {"analysis"},
    {"jobs"},
    {"api"},
    {"commands"},
    {"cli"},
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}
# Top-level files that are not layers of their own: the package's public face.
FACADE = {"__init__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int, list[str]]]:
    """``(imported module, line, imported names)`` for every detkit import of the file, relative
    imports resolved, those inside functions included (a lazy import is still a dependency)."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names if alias.name.startswith("detkit")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("detkit"):
                found.append((target, node.lineno, [alias.name for alias in node.names]))
    return found


def top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def sub_package(module: str, is_package: bool) -> str:
    """The package a module belongs to, at any depth (``detkit.data.formats`` for
    ``detkit.data.formats.coco``)."""
    return module if is_package else module.rsplit(".", 1)[0]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer_and_a_line_in_the_architecture_doc():
    packages = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in SOURCES} - FACADE
    assert packages - set(LAYER_OF) == set(), "give each new package its layer in LAYERS"
    assert set(LAYER_OF) - packages == set(), "LAYERS names a package that no longer exists"
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert [name for name in sorted(packages) if f"`{name}" not in doc] == []


def test_imports_run_downward():
    upward = []
    for path in SOURCES:
        source = top_package(module_name(path))
        if source in FACADE:
            continue
        for target, line, _ in imports_of(path):
            imported = top_package(target)
            if imported in FACADE or imported == source:
                continue
            if LAYER_OF[imported] >= LAYER_OF[source]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {target} ({imported})")
    assert upward == []


def test_no_cycle_between_packages_at_any_depth():
    graph: dict[str, set[str]] = defaultdict(set)
    modules = {module_name(path): path.name == "__init__.py" for path in SOURCES}
    for path in SOURCES:
        source = sub_package(module_name(path), path.name == "__init__.py")
        for target, _, names in imports_of(path):
            # ``from detkit.data import formats`` imports the sub-package itself.
            targets = [f"{target}.{name}" for name in names if f"{target}.{name}" in modules] or [target]
            for each in targets:
                imported = sub_package(each, modules.get(each, False))
                # A package's own __init__ importing its modules, and a module its own package, are not edges.
                related = imported.startswith(source + ".") or source.startswith(imported + ".")
                if imported != source and not related:
                    graph[source].add(imported)
    cycles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_no_module_imports_another_modules_private_helpers():
    private = []
    for path in SOURCES:
        for target, line, names in imports_of(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    private.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {target}")
    assert private == []
