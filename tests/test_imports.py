"""The project's packages import each other without a cycle.

The rule: module A depends on module B if any `import` statement in A names B, wherever the
statement stands: at module level or inside a function. Imports inside functions are legitimate
(they keep pyflink and the JVM out of a module's import, see `sinks/__init__.py`), but they only
move a cycle from import time to call time; a cycle is a cycle. Not counted: imports under
`if TYPE_CHECKING:` (they never run) and imports through `importlib` (not statements).

`from P import N` depends on the module P.N when that is a module of the project, else on P
(N is then a name defined in P). Importing P.N also runs P's `__init__`, but that is not
counted as a dependency on P: a package's `__init__` that imports its submodules would
otherwise make every submodule that imports a sibling part of a cycle.

Checked: every package of the project (a folder with an `__init__.py` at the top: jobs,
transforms, sinks, localenv, bench, and any added later), not tests/, whose modules may import
each other's fixtures.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Discovered, not listed: a new package is checked from its first module.
PACKAGES = tuple(
    sorted(path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name != "tests")
)


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "results" in path.relative_to(ROOT).parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom in `tree`, except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that module `name` (at `path`) imports, per the rule above."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: from the module's own package upwards
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            targets = [
                f"{base_name}.{alias.name}" if f"{base_name}.{alias.name}" in modules else base_name
                for alias in node.names
            ]
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]):
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str):
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_the_project():
    assert set(PACKAGES) >= {"jobs", "transforms", "sinks", "localenv", "bench"}
    graph = import_graph()
    # a job's modules are found, whatever its name (`python -m jobs.new NAME` adds more)
    assert {"jobs.orders", "transforms.orders", "transforms.orders_beam"} <= set(graph)
    assert "jobs.payments" in graph and "transforms.payments" in graph
    # a module-level import and a function-level one are both edges
    assert "transforms.payments_flink" in graph["jobs.payments"]
    assert "jobs.payments_schema" in graph["jobs.payments"]


def test_find_cycle_reports_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_project_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
