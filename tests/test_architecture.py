"""The package layout is the data's path: imports only point down it, and no module imports itself back.

Layers (docs/ARCHITECTURE.md): the floor (errors, paths, cache, progress, capture, tflite_info) <- data
<- model (with models/) and device (siblings: the device side takes a .tflite, never a model) <- bench
<- figures <- commands / cli. Every import counts, also those inside functions, because a lazy import
is still a dependency a reader must follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOOR = {"harness", "harness.errors", "harness.paths", "harness.cache", "harness.progress", "harness.capture",
         "harness.tflite_info", "harness.workers"}
ALLOWED = {  # layer -> layers it may import
    "floor": {"floor"},
    "data": {"floor", "data"},
    "models": {"floor", "models"},
    "model": {"floor", "data", "models", "model"},
    "device": {"floor", "data", "device"},
    "bench": {"floor", "data", "models", "model", "device", "bench"},
    "figures": {"floor", "data", "models", "model", "device", "bench", "figures"},
    "commands": {"floor", "data", "models", "model", "device", "bench", "figures", "commands"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    if module in FLOOR:
        return "floor"
    parts = module.split(".")
    if parts[0] == "models":
        return "models"
    if module in ("harness.cli", "harness.__main__") or parts[1] == "commands":
        return "commands"
    if parts[1] in ("data", "model", "device", "bench", "figures"):
        return parts[1]
    raise AssertionError(f"{module} belongs to no layer: put it in a package or add it to the floor")


def modules() -> dict[str, Path]:
    files = [*ROOT.joinpath("harness").rglob("*.py"), *ROOT.joinpath("models").rglob("*.py")]
    return {module_name(p): p for p in files}


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``module`` imports (relative imports resolved, names that are modules included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # harness.data.features.frontend -> harness.data.features
                t = t.rpartition(".")[0]
            if t and t != module:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def test_every_module_has_a_layer() -> None:
    for m in modules():
        layer(m)


def test_imports_point_down_the_path() -> None:
    bad = [f"{m} ({layer(m)}) imports {t} ({layer(t)})"
           for m, targets in graph().items() for t in sorted(targets)
           if layer(t) not in ALLOWED[layer(m)] and not t.startswith("harness.commands")
           or (t.startswith("harness.commands") and layer(m) != "commands")]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between modules (package __init__ re-exports included), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for t in sorted(g.get(n, ())):
            if t.startswith(n + "."):  # a package importing its own submodules is not a cycle
                continue
            if state.get(t) == 1 and not n.startswith(t + "."):
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def package_names(package: str) -> set[str]:
    """Names a package's __init__.py defines or imports itself (``from harness import __version__``)."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_every_project_import_resolves() -> None:
    """A stale path after a move (``from harness.old_name import x``) is caught here, not at run time."""
    mods = modules()
    roots = [ROOT / "harness", ROOT / "models", ROOT / "tests", ROOT / "suites"]
    bad = []
    for path in [p for r in roots for p in r.rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
            for n in names:
                if n.split(".")[0] in ("harness", "models") and n not in mods:
                    bad.append(f"{path.relative_to(ROOT)}: {n}")
            if isinstance(node, ast.ImportFrom) and not node.level and node.module in ("harness", "models"):
                defined = package_names(node.module)
                bad += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                        if f"{node.module}.{a.name}" not in mods and a.name not in defined]
    assert not bad, "imports of modules that do not exist:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("g, expected", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_cycle_finder_finds_cycles(g, expected) -> None:
    assert find_cycle(g) == expected


def test_upward_import_is_caught(tmp_path) -> None:
    """The checker itself: a device module importing the model layer is reported."""
    p = tmp_path / "x.py"
    p.write_text("from harness.model import variants\n")
    targets = imports_of("harness.device.x", p, set(modules()) | {"harness.device.x"})
    assert "harness.model.variants" in targets
    assert layer("harness.model.variants") not in ALLOWED[layer("harness.device.x")]


# The team's design document lives outside the repository; spelled in two parts so that this test,
# which looks for it, does not cite it itself.
OUTSIDE_DESIGN_DOC = "DESIGN" + ".md"


def tracked_text_files() -> list[Path]:
    """Every file git tracks (the whole checkout when git is unavailable), binary files left out."""
    import subprocess

    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        files = [ROOT / n for n in names]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".cache", "results", ".pio", "__pycache__"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file() and b"\0" not in p.read_bytes()[:4096]]


def test_no_design_document_outside_the_repository_is_cited() -> None:
    """Code, tests and docs cite docs/ARCHITECTURE.md, never the design document a user does not have."""
    offenders = [str(p.relative_to(ROOT)) for p in tracked_text_files()
                 if OUTSIDE_DESIGN_DOC in p.read_text(errors="replace")]
    assert not offenders, f"cite docs/ARCHITECTURE.md instead of {OUTSIDE_DESIGN_DOC} in: {', '.join(offenders)}"
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
