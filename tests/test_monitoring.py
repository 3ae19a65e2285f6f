"""monitoring/: the alert rules, their promtool unit tests, the Prometheus config and the
exporter's queries.

promtool (Debian's `prometheus` package, which `.ci/setup` installs) checks the files and runs
monitoring/alerts-test.yml. Each rule is then broken on purpose, its expression replaced by
one that never fires, and the same unit tests must fail: a rule whose firing test passes with
the rule broken is not tested. Every alert also needs a firing case, a quiet case and a
runbook line in README.md ("Watching it run"). The exporter's queries run against a database
holding the sink's control tables (so this module needs PostgreSQL, no JVM).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from localenv.paths import PROJECT_ROOT
from sinks.positions import ensure_positions_table
from tests.sinks.test_admin import CONTROL_TABLES

MONITORING = PROJECT_ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts-test.yml"
EXPORTER_QUERIES = MONITORING / "postgres-exporter-queries.yaml"
RUNBOOK_ANCHOR = "watching-it-run"
NEVER_FIRES = "vector(0) > 1"


def rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


ALERT_NAMES = [rule["alert"] for rule in rules()]


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's `prometheus` package "
            "(`bash .ci/setup` installs it; by hand: sudo apt-get install prometheus)",
            pytrace=False,
        )
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def passes(result: subprocess.CompletedProcess) -> bool:
    if result.returncode != 0:
        print(result.stdout + result.stderr)
    return result.returncode == 0


# -- promtool --------------------------------------------------------------------------------
def test_alert_rules_are_valid():
    result = promtool("check", "rules", ALERTS.name)
    assert passes(result)
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in result.stdout


def test_alert_rules_pass_their_unit_tests():
    assert passes(promtool("test", "rules", ALERTS_TEST.name))


def test_prometheus_config_is_valid():
    result = promtool("check", "config", "prometheus.yml")
    assert passes(result)
    assert "alerts.yml" in result.stdout  # the rules are loaded with the config


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_each_rule_fails_its_unit_tests_when_it_cannot_fire(alert, tmp_path):
    """alerts.yml with `alert`'s expression replaced by one that never fires: the unit tests,
    unchanged, must fail on that alert. The same copy without the change passes (the rewrite
    itself breaks nothing)."""
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    document = yaml.safe_load(ALERTS.read_text())
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(document, sort_keys=False))
    assert passes(promtool("test", "rules", ALERTS_TEST.name, cwd=tmp_path))

    broken = [r for g in document["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert len(broken) == 1
    broken[0]["expr"] = NEVER_FIRES
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(document, sort_keys=False))
    result = promtool("test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert result.returncode != 0, f"{alert} never fires, and its unit tests still pass"
    assert f"alertname: {alert}" in result.stdout + result.stderr


# -- every alert tested both ways, and in the runbook ----------------------------------------
SERIES = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
IDENTITY = ("job_id", "sink_id")  # what tells one job's (or sink's) series from another's


def identity(labels: dict) -> tuple:
    return tuple((key, labels[key]) for key in IDENTITY if key in labels)


def cases(alert: str, expr: str) -> tuple[int, int]:
    """(firing, quiet) cases of `alert` in alerts-test.yml. Firing: an evaluation that expects
    the alert. Quiet: one that expects none, or one where a job (or sink) fed the rule's
    metrics is not among those the alert fires for."""
    firing = quiet = 0
    for group in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        fed = set()
        for entry in group.get("input_series", []):
            name, labels = SERIES.match(entry["series"]).groups()
            if re.search(rf"\b{re.escape(name)}\b", expr):
                fed.add(identity(dict(LABEL.findall(labels or ""))))
        for check in group.get("alert_rule_test", []):
            if check["alertname"] != alert:
                continue
            expected = check.get("exp_alerts") or []
            firing += bool(expected)
            fired_for = {identity(e.get("exp_labels", {})) for e in expected}
            quiet += not expected or bool(fed - fired_for)
    return firing, quiet


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_each_alert_has_a_firing_and_a_quiet_case(alert):
    (rule,) = [r for r in rules() if r["alert"] == alert]
    firing, quiet = cases(alert, rule["expr"])
    assert firing, f"{ALERTS_TEST.name} never expects {alert} to fire"
    assert quiet, f"{ALERTS_TEST.name} never expects {alert} to stay quiet"


def runbook_section() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"^## Watching it run\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, 'README.md has no section "## Watching it run"'
    return match.group(1)


def test_each_alert_has_a_runbook_line():
    section = runbook_section()
    for rule in rules():
        assert rule["annotations"]["runbook"] == f"README.md#{RUNBOOK_ANCHOR}: {rule['alert']}"
        lines = [line for line in section.splitlines() if f"`{rule['alert']}`" in line]
        assert lines, f'README.md, "Watching it run": no line names `{rule["alert"]}`'
        assert rule["labels"]["severity"] in ("page", "ticket")


# -- the exporter's queries ------------------------------------------------------------------
USAGES = {"LABEL", "GAUGE", "COUNTER", "DISCARD", "HISTOGRAM", "DURATION", "MAPPEDMETRIC"}


def exporter_queries() -> dict:
    return yaml.safe_load(EXPORTER_QUERIES.read_text())


def test_exporter_queries_are_well_formed():
    queries = exporter_queries()
    assert queries
    for name, spec in queries.items():
        assert re.fullmatch(r"tpc_[a-z_]+", name), name
        assert spec["query"].strip().upper().startswith("SELECT"), name
        for column in spec["metrics"]:
            ((key, settings),) = column.items()
            assert settings["usage"] in USAGES, (name, key)
            assert settings["description"], (name, key)


def test_exporter_queries_run_against_the_sink_tables(database):
    """Each query on a database with the sink's control tables and a little of everything in
    them: it runs, and returns exactly the columns its metrics name."""
    with database.connect(autocommit=True) as conn:
        conn.execute(CONTROL_TABLES)
        ensure_positions_table(conn)
        conn.execute(
            "INSERT INTO tpc_source_positions (sink_id, source, last_position, lines, bytes, "
            "digest) VALUES ('pay_1', '/in/a.jsonl', 10, 10, 900, 1)"
        )
        conn.execute(
            "INSERT INTO tpc_staged_batches (gid, sink_id, subtask, counter, row_count) "
            "VALUES ('tpc:pay_1:0:2:x.0', 'pay_1', 0, 2, 5)"
        )
        conn.execute(
            "INSERT INTO tpc_commit_log (gid, sink_id, subtask, counter, row_count, mode) "
            "VALUES ('tpc:pay_1:0:1:x.0', 'pay_1', 0, 1, 5, 'STAGED')"
        )
        conn.execute(
            "INSERT INTO tpc_dead_letters (sink_id, subtask, statement, message, fields, "
            "payload) VALUES ('pay_1', 0, 0, 'refused', '{}', 'x')"
        )
        conn.execute("BEGIN")
        conn.execute("INSERT INTO target VALUES ('a')")
        conn.execute("PREPARE TRANSACTION 'tpc:pay_1:0:3:x.0'")  # the fixture rolls it back
        for name, spec in exporter_queries().items():
            cursor = conn.execute(spec["query"])
            columns = [column.name for column in cursor.description or []]
            declared = [next(iter(column)) for column in spec["metrics"]]
            assert columns == declared, name
            rows = cursor.fetchall()
            assert len(rows) == 1 and rows[0][0] == "pay_1", (name, rows)
