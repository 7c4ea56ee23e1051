"""The pipeline's package imports without a circle: config.py, paths.py and suite_paths.py each
import only modules below them (at any depth in the file, not only at the top)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow_scripts" / "cowboy_pipeline"


def local_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cowboy_pipeline."):
            found.add(node.module.split(".")[1])
    return found


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for name in local_imports(todo.pop()) - seen:
            seen.add(name)
            todo.append(name)
    return seen


def test_no_module_of_the_package_imports_itself_through_another():
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    circles = [m for m in modules if m in reachable(m)]
    assert not circles, f"import circles through: {circles}"


def test_the_layers_config_paths_suite_paths_import_only_downwards():
    assert "paths" not in reachable("config") and "suite_paths" not in reachable("config")
    assert "suite_paths" not in reachable("paths")
    assert reachable("defenses") == set()


def test_every_workflow_script_fits_on_a_screen_and_every_module_under_400_lines():
    scripts = PACKAGE.parent.glob("*.py")
    long_scripts = {p.name: n for p in scripts if (n := len(p.read_text().splitlines())) > 60}
    assert not long_scripts, f"workflow scripts over 60 lines: {long_scripts}"
    modules = [*PACKAGE.glob("*.py"), *(PACKAGE.parents[1] / "cowboy_core").glob("*.py")]
    long_modules = {p.name: n for p in modules if (n := len(p.read_text().splitlines())) >= 400}
    assert not long_modules, f"modules of 400 lines or more: {long_modules}"
