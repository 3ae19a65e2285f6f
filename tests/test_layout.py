"""The layout shows ownership (issue 13): jobs are short wiring files that never touch the py4j
gateway (connectors come from `sinks/`, job control from `localenv/`), and the database
connection flags are defined in one place. Reads the source; no JVM."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("jobs", "transforms", "sinks", "localenv", "bench", "tests/harness")


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
    definition = re.compile(r"add_argument\(\s*\"--(db-url|db-user|password-env)\"")
    places = [
        str(path.relative_to(ROOT))
        for path in python_files(*CHECKED)
        if definition.search(path.read_text())
    ]
    assert places == ["sinks/database.py"], "use sinks.database.add_connection_arguments"
