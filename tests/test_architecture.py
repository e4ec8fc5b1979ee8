"""The house rules of STYLE.md: which wing may import which, no import circles, a pure NumPy
core, and only cli/render touching the terminal."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nncli"

# Imports run one way: cli → commands → {tabular, files, render} → {core, config} → errors.
# A wing may also import the wings below the ones it names (commands use core objects).
# budgets.py (the size limits every loader checks) sits beside errors.py, below everything.
ALLOWED = {
    "cli": {"commands", "render", "errors", "budgets"},
    "commands": {"commands", "tabular", "files", "plots", "core", "config", "errors", "budgets"},
    "render": {"core", "errors", "budgets"},
    # Pictures: plain descriptions of what to draw, and their drawers (matplotlib, Unicode text).
    "plots": {"plots", "core", "errors", "budgets"},
    "tabular": {"tabular", "core", "config", "errors", "budgets"},
    "files": {"files", "core", "config", "errors", "budgets"},
    # The config validates loss/output pairings from the core's one table of losses, a module
    # of plain data that imports nothing (see core/tasks.py).
    "config": {"config", "errors", "budgets", "core.tasks"},
    "core": {"core", "errors", "budgets"},
    "budgets": {"errors"},
    "errors": set(),
}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _nncli_imports(path: Path) -> set[str]:
    """Every nncli module imported anywhere in the file (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("nncli."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("nncli."):
            names.add(node.module)
    return names


def _wing(module: str) -> str:
    """nncli.tabular.source -> tabular; nncli.cli -> cli."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if node.level == 0 else node.module)
    return names


def test_every_module_lives_in_a_known_wing():
    top_level = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top_level == {"cli", "render", "errors", "budgets"}
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "commands", "tabular", "files", "plots", "core", "config"}


@pytest.mark.parametrize("module", sorted(_modules()), ids=str)
def test_imports_run_one_way(module):
    if module in ("nncli", "nncli.__main__"):
        return
    allowed = ALLOWED[_wing(module)]
    for imported in _nncli_imports(_modules()[module]):
        wing = _wing(imported)
        assert wing in allowed or ".".join(imported.split(".")[1:3]) in allowed, f"{module} imports {imported}"


def test_no_import_circles():
    modules = _modules()
    edges = {}
    for module, path in modules.items():
        targets = set()
        for name in _nncli_imports(path):
            while name not in modules:
                name = name.rpartition(".")[0]
            if name != module and not module.startswith(name + "."):
                targets.add(name)
        edges[module] = targets
    state: dict[str, str] = {}

    def visit(module, trail):
        if state.get(module) == "open":
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(module):] + [module]))
        if state.get(module) == "done":
            return
        state[module] = "open"
        for target in sorted(edges[module]):
            visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(modules):
        visit(module, [])


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_is_pure_numpy(path):
    assert not _imports(path) & {"typer", "rich", "yaml", "pydantic", "click", "polars"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_only_cli_and_render_use_the_terminal_libraries(path):
    if path.name in ("cli.py", "render.py"):
        return
    assert not _imports(path) & {"typer", "rich", "click"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_nothing_below_the_cli_prints(path):
    if path.name in ("cli.py", "render.py"):
        return
    calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
    assert not [c for c in calls if isinstance(c.func, ast.Name) and c.func.id == "print"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_never_unpickle(path):
    text = path.read_text()
    assert "allow_pickle=True" not in text and "import pickle" not in text and "yaml.load(" not in text
