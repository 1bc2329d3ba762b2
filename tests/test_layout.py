"""The package's layout holds: packages depend on each other in one direction only, no module
imports one that imports it back, and each dependency's use stays in the package that owns it.

Every import counts: at the top of a module, inside a function (an import deferred for speed)
and under `if TYPE_CHECKING:` (an import for annotations only). Deferring an import or keeping
it to annotations changes when it runs, not what depends on what, so a cycle through one is
still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "shardsql"
# What each part may import from shardsql, top to bottom: the data's path. A part not listed
# here (the top-level modules) may import what it needs, as long as no cycle appears. errors
# and wording (how a count or a size is said) import nothing of shardsql's: any part may use them.
ALLOWED = {
    "definition": {"definition", "errors", "wording", "autoresearch"},
    "hub": {"hub", "errors", "wording", "tuning"},
    "source": {"source", "hub", "errors", "wording", "autoresearch", "tuning"},
    # "": shardsql/__init__ (the version)
    "output": {"output", "errors", "wording", "autoresearch", "consumers", "tuning", ""},
    "run": {"run", "definition", "source", "output", "hub", "errors", "wording", "autoresearch", "tuning"},
    "commands": {
        "commands",
        "definition",
        "source",
        "run",
        "output",
        "hub",
        "standin",
        "errors",
        "wording",
        "autoresearch",
        "consumers",
        "progress",
        "invocation",  # how the user runs shardsql, for the commands an error names (`shardsql explain`)
        "tuning",
    },  # fmt: skip
    "standin": {"standin"},
}
# Third-party packages that only one part of shardsql may import.
OWNERS = {"huggingface_hub": {"hub"}, "httpx2": {"hub"}, "ray": {"run/ray"}, "polars_hash": {"output"}}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, name: str) -> list[str]:
    """Absolute names of everything a module imports, wherever the import is: at the top, inside
    a function or class, or under `if TYPE_CHECKING:` (ast.walk visits every statement)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]  # `from . import x`: x may be a module
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {target for target in imports(path, name) if target in known and target != name}
        for name, path in known.items()
    }


def _part(module: str) -> str:
    """`definition` for shardsql.definition.catalog, `errors` for shardsql.errors, '' for shardsql."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def test_no_module_imports_one_that_imports_it_back():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_packages_depend_on_each_other_in_one_direction():
    wrong = []
    for module, targets in graph().items():
        allowed = ALLOWED.get(_part(module))
        if allowed is None:
            continue
        wrong += [f"{module} imports {t}" for t in sorted(targets) if _part(t) not in allowed]
    assert not wrong, wrong


def test_each_dependency_is_used_only_where_it_belongs():
    wrong = []
    for module, path in modules().items():
        where = "/".join(module.split(".")[1:-1])
        for target in imports(path, module):
            top = target.split(".")[0]
            owners = OWNERS.get(top)
            if owners and not any(where == o or where.startswith(o + "/") for o in owners):
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong


def test_every_module_says_what_it_is_for():
    missing = [name for name, path in modules().items() if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_no_test_module_imports_another():
    """Shared test code lives in tests/helpers.py or tests/conftest.py, never in a test module."""
    tests = Path(__file__).resolve().parent
    wrong = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            wrong += [f"{path.name} imports {n}" for n in names if n.startswith("test_")]
    assert not wrong, wrong


def test_errors_and_wording_import_nothing_of_shardsqls():
    """Every part may import them (ALLOWED): so they must stay leaves."""
    edges = graph()
    assert edges["shardsql.errors"] == set() and edges["shardsql.wording"] == set()
