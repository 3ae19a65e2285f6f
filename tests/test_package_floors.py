"""The project's packages stand on floors, and no arrow runs up (issue 25):

    bench, tests    what measures and what checks the rest
    jobs            the jobs: wiring of the floors below
    sinks           the connectors (the exactly-once PostgreSQL sink, the source formats)
    localenv        this machine's servers and tools: PostgreSQL, Kafka, Flink, Maven, jars
    transforms      the business rules, Beam-portable: they need none of the above

A module may use its own package and any package on a lower floor. The issue draws transforms
and localenv side by side; the one arrow between them runs from localenv (its warm Python
workers preload the rules' Flink adapters), so transforms is the lower. The two packages on the
top floor use each other (the benchmarks reuse the tests' support code and acceptance job; the
tests check the benchmarks), and nothing uses them.

An arrow is an `import` statement anywhere in a module (in a function, under `if
TYPE_CHECKING:`: a dependency all the same), or a string that names a module of the project
(`"-m", "bench.payments_job"` for a child process, `import_module("jobs.x")`, `--module
jobs.payments`): running a module by its name depends on it as much as importing it. Reads the
source; imports nothing of the project.
"""

import ast
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
FLOORS = (("transforms",), ("localenv",), ("sinks",), ("jobs",), ("bench", "tests"))
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}
# The one floor with more than one package; they may use each other.
MUTUAL_FLOOR = FLOOR["tests"]


class Arrow(NamedTuple):
    path: str  # relative to the project root
    line: int
    source: str  # the package the module is in
    target: str  # the package it uses
    how: str  # the import statement, or the string

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} -> {self.target} ({self.how})"


def packages_on_disk() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def names_a_module(name: str) -> bool:
    """`name` is the dotted name of a module of the project (`bench.payments_job`), not just any
    string with a dot in it."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] not in FLOOR or not all(p.isidentifier() for p in parts):
        return False
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def arrows_in(path: str, source: str, text: str) -> list[Arrow]:
    """Every use of another package of the project by the module `path` of package `source`."""
    arrows = []
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, ast.Import):
            uses = [(alias.name, f"import {alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            uses = [(node.module, f"from {node.module} import ...")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            uses = [(node.value, repr(node.value))] if names_a_module(node.value) else []
        else:  # a relative import stays in its own package
            continue
        for name, how in uses:
            target = name.split(".")[0]
            if target in FLOOR and target != source:
                arrows.append(Arrow(path, node.lineno, source, target, how))
    return sorted(arrows)


def allowed(arrow: Arrow) -> bool:
    source, target = FLOOR[arrow.source], FLOOR[arrow.target]
    return target < source or (target == source == MUTUAL_FLOOR)


def project_arrows() -> list[Arrow]:
    arrows = []
    for package in sorted(FLOOR):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            arrows += arrows_in(name, package, path.read_text())
    return arrows


def test_every_package_stands_on_a_floor():
    unplaced = packages_on_disk() - set(FLOOR)
    assert not unplaced, (
        f"put {sorted(unplaced)} on a floor of FLOORS (tests/test_package_floors.py)"
    )


def test_the_checker_sees_imports_and_module_names():
    text = (
        "import subprocess, sys\n"
        "from localenv.paths import sub_dir\n"
        "def train():\n"
        "    from jobs.produce import create_topic\n"
        '    subprocess.run([sys.executable, "-m", "bench.payments_job"])\n'
        "    from . import maven\n"
        '    return "jobs.payments is a job", "a.b"\n'
    )
    found = arrows_in("localenv/x.py", "localenv", text)
    assert [(a.line, a.target) for a in found] == [(4, "jobs"), (5, "bench")]
    assert not any(map(allowed, found))
    assert allowed(Arrow("bench/x.py", 1, "bench", "tests", "'tests.sinks.support'"))
    assert not allowed(Arrow("transforms/x.py", 1, "transforms", "localenv", "import localenv"))


def test_no_arrow_runs_up():
    upward = [str(arrow) for arrow in project_arrows() if not allowed(arrow)]
    assert not upward, "an arrow runs up (see FLOORS):\n" + "\n".join(upward)
