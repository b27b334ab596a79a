"""The house's rules, checked on the source: no import circles between the package's modules (lazy
imports inside functions count too), a thin façade, serving apart from the training and web rooms, a short
launcher, and the chat page apart from its edge."""
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


SERVING_EXCEPT = {"qa.cli"}  # the command line is a layer over every room, like the web page


def test_serving_never_imports_the_training_or_web_rooms():
    """qa/ (but its command line) answers questions; qa/training and qa/web build on it, never the reverse."""
    wrong = {}
    for m, targets in graph().items():
        if m.startswith(("qa.training", "qa.web")) or m in SERVING_EXCEPT:
            continue
        bad = sorted(t for t in targets if t.startswith(("qa.training", "qa.web")))
        if bad:
            wrong[m] = bad
    assert wrong == {}


def test_the_top_level_holds_only_the_house_names():
    allowed = {"app.py", "Makefile", "README.md", "bench", "docs", "models", "qa", "tests", "seeds", "pyproject.toml",
               "requirements.lock", ".ci", ".git", ".gitignore", ".gitattributes"}
    tracked = {p.name for p in PACKAGE_ROOT.iterdir() if not p.name.startswith(".") or p.name in allowed}
    ignored = {".venv", "index", "runs", ".pytest_cache", "__pycache__", "article_qa.egg-info", ".ruff_cache"}
    assert tracked - ignored <= allowed, sorted(tracked - ignored - allowed)


def test_the_launcher_is_short_and_the_page_apart_from_its_edge():
    """app.py only launches; the edge (qa/web/edge.py) is plain ASGI: the standard library and qa's serving
    floor only (no page, no gradio, no starlette), so it imports nothing that imports it back."""
    lines = (PACKAGE_ROOT / "app.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 150, lines  # 506 when it held the page
    tops = set()
    for node in ast.walk(ast.parse((PACKAGE / "web" / "edge.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, "the edge names what it imports in full"
            tops.add((node.module or "").split(".")[0])
            assert not (node.module or "").startswith("qa.web"), node.module
        elif isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
    assert "gradio" not in tops and "starlette" not in tops, tops
    assert tops <= set(sys.stdlib_module_names) | {"qa"}, tops - set(sys.stdlib_module_names)
