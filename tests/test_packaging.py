"""Installing works anywhere: pyproject declares every package and runtime dependency, and the bundled files are
found through SAFESEEK_ASSETS, the checkout or the installed data packages."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# Needed at run time without an import statement of ours: plotly renders PNGs through kaleido.
USED_WITHOUT_IMPORT = {"kaleido"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_python_package_of_the_tree_is_installed():
    found = {".".join(p.parent.relative_to(REPO_ROOT).parts) for root in ("core", "explorer")
             for p in (REPO_ROOT / root).rglob("__init__.py")}
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert {"safeseek_assets", "safeseek_samples"} <= listed


def test_every_third_party_import_is_a_declared_dependency():
    declared = {_normal(re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0]) for d in PYPROJECT["project"]["dependencies"]}
    local = {"core", "explorer"}
    imported: set[str] = set()
    for path in [*(REPO_ROOT / "core").rglob("*.py"), *(REPO_ROOT / "explorer").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported - local - set(sys.stdlib_module_names) if name != "__future__"}
    distributions = importlib.metadata.packages_distributions()
    needed = {_normal(dist) for name in third_party for dist in distributions.get(name, [name])}
    needed |= USED_WITHOUT_IMPORT
    assert needed <= declared, f"declare {sorted(needed - declared)} in pyproject.toml [project] dependencies"


def _paths_in_subprocess(env: dict[str, str], cwd: Path) -> list[str]:
    code = "from core.data import paths; print(paths.ASSETS_DIR); print(paths.SAMPLE_CIRCUITS_DIR)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                            check=True)
    return result.stdout.split()


def test_bundled_files_are_found_from_any_folder_and_can_be_pointed_elsewhere(tmp_path):
    env = {k: "" for k in ("SAFESEEK_ASSETS", "SAFESEEK_SAMPLE_CIRCUITS")}
    assert _paths_in_subprocess(env, tmp_path) == [str(REPO_ROOT / "assets"), str(REPO_ROOT / "sample_circuits")]
    moved = {"SAFESEEK_ASSETS": str(tmp_path / "a"), "SAFESEEK_SAMPLE_CIRCUITS": str(tmp_path / "s")}
    assert _paths_in_subprocess(moved, REPO_ROOT) == [str(tmp_path / "a"), str(tmp_path / "s")]
