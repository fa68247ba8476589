"""The shape of the code: layers you can see in the tree, and imports that only go down.

Every import in ``src/looklisten`` (top level, inside functions, under
TYPE_CHECKING) is read from the source; the test fails on an import from a
higher layer, on an import cycle between modules, on a private name imported
from another module, and on console output, argparse or exit codes outside the
``cli`` layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "looklisten"

#: Bottom to top; a module may import from its own layer and the ones before it.
LAYERS = (
    "core",
    "media",
    "inputs",
    "models",
    "data",
    "training",
    "tasks",
    "evaluation",
    "report",
    "cli",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


MODULES = _modules()


def _resolve(target: str) -> str:
    """The module an import names: ``looklisten.a.b`` or, for ``from looklisten.a import b``
    where b is a submodule, ``looklisten.a.b``."""
    return target if target in MODULES else target.rsplit(".", 1)[0]


def _imports(name: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every looklisten import of a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "looklisten":
                continue
            for alias in node.names:
                full = f"{mod}.{alias.name}"
                if full in MODULES:
                    out.append((full, "", node.lineno))
                else:
                    out.append((mod, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "looklisten":
                    out.append((_resolve(alias.name), "", node.lineno))
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package itself: the lazy public API, above every layer
    if parts[1] == "__main__":
        return len(LAYERS)  # ``python -m looklisten``: the command, above the cli
    return LAYERS.index(parts[1])


def test_every_module_is_in_a_layer():
    entry = {"looklisten", "looklisten.__main__"}
    stray = [m for m in MODULES if m not in entry and m.split(".")[1] not in LAYERS]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"
    # ``python -m looklisten`` runs the cli and nothing else
    main = {t for t, _, _ in _imports("looklisten.__main__", MODULES["looklisten.__main__"])}
    assert main == {"looklisten.cli.main"}
    # the facade names nothing by import: it resolves its names lazily
    assert not _imports("looklisten", MODULES["looklisten"])


def test_imports_only_go_down():
    bad = []
    for name, path in MODULES.items():
        here = _layer(name)
        if here is None:
            continue
        for target, _, line in _imports(name, path):
            there = _layer(target)
            if there is None or there > here:
                bad.append(f"{path.relative_to(SRC)}:{line}: {name} imports {target}")
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {n: {t for t, _, _ in _imports(n, p) if t != n} for n, p in MODULES.items()}
    # parents of a package are imported with it; they are not edges of the design
    graph = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in graph.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_across_modules():
    bad = [
        f"{path.relative_to(SRC)}:{line}: {target}.{attr}"
        for name, path in MODULES.items()
        for target, attr, line in _imports(name, path)
        if attr.startswith("_") and target != name
    ]
    assert not bad, "private names imported from other modules:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "name", [m for m in MODULES if m != "looklisten" and m.split(".")[1] not in ("cli", "__main__")]
)
def test_console_and_argparse_only_in_cli(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("print", "exit", "quit"):
                found.append(f"{f.id}() at line {node.lineno}")
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "exit"
                and getattr(f.value, "id", "") == "sys"
            ):
                found.append(f"sys.exit() at line {node.lineno}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if "argparse" in mods:
                found.append(f"argparse imported at line {node.lineno}")
    assert not found, f"{name}: {found} (the cli layer owns the console)"


def test_the_checker_sees_imports_inside_functions():
    """The reader is not blind to what it must police: a function-level import is seen."""
    graph = {n: {t for t, _, _ in _imports(n, p)} for n, p in MODULES.items()}
    # looklisten.cli.main imports the demo runner inside a function only
    assert "looklisten.cli.demo" in graph["looklisten.cli.main"]
    assert _layer("looklisten.cli.main") > _layer("looklisten.tasks.embed")
