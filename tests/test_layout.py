"""The house's rules, checked on the source: no import circles between the package's modules (lazy
imports inside functions count too), a thin façade, and the chat page (app.py) apart from its edge
(web_edge.py)."""
from __future__ import annotations

import ast
import sys

from qa.config import PACKAGE_ROOT

PACKAGE = PACKAGE_ROOT / "qa"


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path) -> set[str]:
    """The qa modules a file imports, wherever in the file (a package import names its __init__)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("qa"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)  # `from . import limits`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("qa"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {t for t in imports_of(p) if t in modules and t != m} for m, p in modules.items()}


def test_no_module_imports_one_that_imports_it_back():
    g = graph()
    # every cycle, not only pairs: a depth-first search for a back edge
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    # the package's __init__ re-exports the façade; importing the package from inside it is not a circle of jobs
    cycles = [c for c in cycles if "qa" not in c]
    assert cycles == []


def test_the_facade_is_thin():
    lines = (PACKAGE / "pipeline.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 478 // 3, lines  # a third of what it was when it did five jobs
    assert not (PACKAGE / "articles.py").exists()  # the re-exporting shim is gone


def test_the_chat_page_and_its_edge_are_apart():
    """app.py is the page; web_edge.py, the server's edge beside it, is plain ASGI: the standard library
    and qa only (no app, no gradio, no starlette), so it imports nothing that imports it back."""
    lines = (PACKAGE_ROOT / "app.py").read_text(encoding="utf-8").count("\n")
    assert lines < 600, lines  # 701 when it held the edge too
    tops = set()
    for node in ast.walk(ast.parse((PACKAGE_ROOT / "web_edge.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, "web_edge.py is a top-level module"
            tops.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
    assert "app" not in tops and "gradio" not in tops and "starlette" not in tops, tops
    assert tops <= set(sys.stdlib_module_names) | {"qa"}, tops - set(sys.stdlib_module_names)
