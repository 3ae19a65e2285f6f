"""The layout shows ownership (issue 13): jobs are short wiring files that never touch the py4j
gateway (connectors come from `sinks/`, job control from `localenv/`), the database
connection flags are defined in one place, and the folders of tests/ follow the packages while
each test module names its tier with a marker. Reads the source; no JVM."""

import ast
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The project's packages, discovered (a folder with an `__init__.py` at the top), and the
#: tests' harness; not the tests themselves.
CHECKED = (
    *sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"),
    "tests/harness",
)


def python_files(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_job_touches_the_py4j_gateway():
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files("jobs")
        if "get_gateway" in path.read_text() or "_j_builder" in path.read_text()
    ]
    assert offenders == [], "use a factory of sinks.sources or localenv.job_control"


def test_the_connection_flags_are_defined_once():
    definition = re.compile(r"add_argument\(\s*\"--(db-url|db-user|password-env|password-file)\"")
    places = [
        str(path.relative_to(ROOT))
        for path in python_files(*CHECKED)
        if definition.search(path.read_text())
    ]
    assert places == ["sinks/database.py"], "use sinks.database.add_connection_arguments"


# Test folders follow the packages under test (and hold the support folders); a tier (beam,
# minicluster, cluster, chaos, campaign, soak) is a marker, never a folder.
TEST_SUPPORT_FOLDERS = {"corpus", "harness"}


def tier_markers() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "pytest.ini")
    lines = config["pytest"]["markers"].strip().splitlines()
    return {line.split(":", 1)[0].strip() for line in lines}


def test_folders_follow_the_packages_never_the_tiers():
    folders = [
        path
        for path in (ROOT / "tests").rglob("*")
        if path.is_dir() and not path.name.startswith((".", "__"))
    ]
    named_after_a_tier = [str(p.relative_to(ROOT)) for p in folders if p.name in tier_markers()]
    assert named_after_a_tier == [], "a tier is a marker (pytestmark), not a folder"
    stray = [
        path.name
        for path in folders
        if path.parent == ROOT / "tests"
        and path.name not in TEST_SUPPORT_FOLDERS
        and not (ROOT / path.name / "__init__.py").is_file()
    ]
    assert stray == [], "tests/<package> holds the tests of the project's package <package>"


# Imported by a test module that starts Flink (in this process, or a cluster).
STARTS_FLINK = {
    "local_environment",  # localenv.flink
    "create_environment",  # jobs.payments
    "get_gateway",  # pyflink.java_gateway
    "run_job",  # tests.sinks.support: the acceptance job
    "start_job",
    "cluster_command",  # tests.localenv.support
    "run_soak",  # bench.soak: submits the payments job to a standalone cluster
}
# Imported by a test module that runs Beam pipelines.
RUNS_BEAM = {"apache_beam.testing.util", "apache_beam.testing.test_pipeline", "transforms.pipeline"}


def module_markers(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The tiers a test module sets for all its tests (`pytestmark`), and those any of its
    functions or classes sets with a decorator."""

    def marks(node) -> set[str]:
        return {
            n.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Attribute)
            and n.value.attr == "mark"
        }

    module, decorated = set(), set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            module |= marks(node.value)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                decorated |= marks(decorator)
    return module, decorated


def imported(tree: ast.Module) -> set[str]:
    """The names and modules a module imports, wherever the import stands."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {alias.name for alias in node.names}
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_test_modules_carry_their_tier():
    """A test that starts Flink is `minicluster` or `cluster`; one that runs a Beam pipeline is
    `beam`, and never also starts Flink (the beam tests run first, see tests/conftest.py);
    `chaos`, `campaign` and `soak` go with the tier they break or load. By what a module
    imports: a check of the convention, not a proof."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        module, decorated = module_markers(tree)
        every = module | decorated
        names = imported(tree)
        name = str(path.relative_to(ROOT))
        if names & STARTS_FLINK and not every & {"minicluster", "cluster"}:
            wrong.append(f"{name}: starts Flink, so minicluster or cluster")
        if names & RUNS_BEAM and "beam" not in module:
            wrong.append(f"{name}: runs Beam pipelines, so pytestmark = pytest.mark.beam")
        if "beam" in every and every & {"minicluster", "cluster"}:
            wrong.append(f"{name}: beam tests and Flink tests in separate modules")
        if every & {"chaos", "campaign", "soak"} and not every & {"minicluster", "cluster"}:
            wrong.append(f"{name}: chaos, campaign and soak also name minicluster or cluster")
    assert wrong == []
