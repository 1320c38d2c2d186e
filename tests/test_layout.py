"""The package layout: core's layers import only upwards and never in a cycle; core never imports streamlit and
explorer holds only Streamlit code."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# core's subpackages, top to bottom: a module may import from its own layer and the layers above it.
LAYERS = ("model", "data", "circuit", "scoring", "evaluation", "tuning", "organism", "cli")
# Explorer modules that draw without calling streamlit themselves: plotly figures, downloads, highlighted diffs.
EXPLORER_UI_PIECES = {"figures", "export", "textdiff"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports anywhere (functions included), except under `if TYPE_CHECKING:`, which never runs."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from core.data import samples` imports the module core.data.samples
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (REPO_ROOT / "core").rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in modules and m != name}
            for name, path in modules.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_layer_is_a_documented_subpackage():
    for name in LAYERS:
        init = REPO_ROOT / "core" / name / "__init__.py"
        assert init.is_file(), f"core/{name}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"core/{name}/__init__.py has no docstring"


def test_core_imports_point_only_up_the_layers():
    wrong = []
    for module, targets in core_graph().items():
        for target in targets:
            if layer(module) is not None and layer(target) is not None and layer(target) > layer(module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layer order " + " > ".join(LAYERS) + ": " + "; ".join(sorted(wrong))


def test_no_import_cycles_in_core():
    graph = core_graph()
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                walk(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert not cycles, f"import cycles: {cycles}"


def test_core_never_imports_streamlit():
    offenders = [module_name(p) for p in (REPO_ROOT / "core").rglob("*.py")
                 if any(m.split(".")[0] == "streamlit" for m in imported_modules(p))]
    assert not offenders, f"core modules importing streamlit: {offenders}"


def test_explorer_holds_only_streamlit_code_and_no_page_imports_the_app():
    not_streamlit, import_app = [], []
    for path in (REPO_ROOT / "explorer").rglob("*.py"):
        name, imports = module_name(path), imported_modules(path)
        if path.name == "__init__.py" or path.stem in EXPLORER_UI_PIECES:
            pass
        elif not any(m.split(".")[0] == "streamlit" for m in imports):
            not_streamlit.append(name)
        if name != "explorer.app" and "explorer.app" in imports:
            import_app.append(name)
    assert not not_streamlit, f"explorer modules without Streamlit code (move them into core): {not_streamlit}"
    assert not import_app, f"modules importing explorer.app back: {import_app}"
    # A `pages/` folder beside app.py would switch Streamlit to its legacy multipage mode, which runs page files
    # as scripts of their own.
    assert not (REPO_ROOT / "explorer" / "pages").exists()
