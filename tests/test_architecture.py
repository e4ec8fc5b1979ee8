"""The import rules of STYLE.md: the core is pure NumPy; only cli/render touch the terminal."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nncli"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if node.level == 0 else node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_is_pure_numpy(path):
    assert not _imports(path) & {"typer", "rich", "yaml", "pydantic", "click"}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_only_cli_and_render_use_the_terminal_libraries(path):
    if path.name in ("cli.py", "render.py"):
        return
    assert not _imports(path) & {"typer", "rich"}


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
