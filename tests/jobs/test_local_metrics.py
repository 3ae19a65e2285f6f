"""A local run serves its metrics to Prometheus with `--metrics-port` (issue 26): Flink's
Prometheus reporter, which PyFlink ships in its plugins/ directory, on the mini cluster's class
path (the mini cluster does not load plugins; `localenv.flink.prepare_process_environment`).

The flag's checks and settings run without a JVM; then the payments job's command, as a user
types it, runs on the mini cluster while the test reads /metrics as Prometheus would: the
sinks' committed-rows counters add up to what the database's commit log holds, and the commit
latency histogram has samples."""

import re
import subprocess
import urllib.request
from argparse import ArgumentTypeError

import pytest

from jobs.kit.config import JobConfig, metrics_port
from jobs.kit.environment import PROMETHEUS_REPORTER, flink_settings
from localenv.paths import PROJECT_ROOT
from localenv.postgres import free_port
from tests.jobs.support import expected_outcome, payments_command, write_inputs
from tests.sinks.support import job_environment, kill_job, wait_for


@pytest.mark.parametrize("text", ["9249", "9260-9269", " 9249 ", "1", "65535"])
def test_a_port_or_a_range_is_taken(text):
    assert metrics_port(text) == text.strip()


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "not a port"),
        ("65536", "not a port"),
        ("http", "not a port"),
        ("9260-", "not a port"),
        ("1-2-3", "not a port"),
        ("9269-9260", "first port is above its last"),
    ],
)
def test_anything_else_is_refused_with_what_to_give(text, message):
    with pytest.raises(ArgumentTypeError, match=message):
        metrics_port(text)


def test_the_reporter_is_on_only_with_the_flag():
    on = flink_settings(JobConfig("in", "jdbc:postgresql://db/x", metrics_port="9260-9269"))
    assert on["metrics.reporter.prom.factory.class"] == PROMETHEUS_REPORTER
    assert on["metrics.reporter.prom.port"] == "9260-9269"
    # Off by default: a local job's settings name no reporter (the cluster's are its own).
    assert not any(
        key.startswith("metrics.reporter")
        for key in flink_settings(JobConfig("in", "jdbc:postgresql://db/x"))
    )


SAMPLE = re.compile(r"^(flink_\w+)\{([^}]*)\} (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    """The reporter's /metrics page as (name, labels, value), [] while it serves none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            page = answer.read().decode()
    except OSError:
        return []
    found = []
    for line in page.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = dict(LABEL.findall(match.group(2)))
            found.append((match.group(1), labels, float(match.group(3))))
    return found


def scrape(port: int) -> dict[str, float]:
    """Each metric's sum over its series."""
    sums: dict[str, float] = {}
    for name, _, value in samples(port):
        sums[name] = sums.get(name, 0.0) + value
    return sums


def by_label(port: int, name: str, label: str) -> dict[str, int]:
    """A metric's sum per value of one of its labels."""
    sums: dict[str, int] = {}
    for found, labels, value in samples(port):
        if found == name:
            sums[labels[label]] = sums.get(labels[label], 0) + int(value)
    return sums


def committed_in_database(db) -> int:
    with db.connect() as conn:
        if conn.execute("SELECT to_regclass('tpc_commit_log')").fetchone()[0] is None:
            return 0  # the job has not set up its sinks yet
        return conn.execute("SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log").fetchone()[0]


@pytest.mark.minicluster
def test_a_local_run_serves_the_sinks_metrics_that_match_the_database(database, tmp_path):
    input_dir = write_inputs(tmp_path / "input", events=3_000)
    lines = expected_outcome(input_dir).lines
    port = free_port()
    command = payments_command(
        database,
        input_dir,
        "--watch",
        "1 s",
        "--checkpoint-interval",
        "500 ms",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--metrics-port",
        str(port),
    )
    log = open(tmp_path / "job.log", "w")
    job = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=job_environment(database),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    committed_rows = "flink_taskmanager_job_task_operator_tpcRowsCommitted"
    try:

        def caught_up():
            if job.poll() is not None:
                return True
            metrics = scrape(port)
            in_database = committed_in_database(database)
            if not in_database:
                return False
            with database.connect() as conn:
                applied = conn.execute(
                    "SELECT (SELECT count(*) FROM ledger) + (SELECT count(*) FROM duplicates)"
                    " + (SELECT count(*) FROM rejected)"
                ).fetchone()[0]
            return applied == lines and metrics.get(committed_rows) == in_database > 0

        wait_for(caught_up, 180, "every line committed and the counters to say so")
        assert job.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
        metrics = scrape(port)
        rejected_by_reason = by_label(
            port, "flink_taskmanager_job_task_operator_reason_tpcLinesRejected", "reason"
        )
        written_by_table = by_label(
            port, "flink_taskmanager_job_task_operator_table_tpcRowsWritten", "table"
        )
    finally:
        kill_job(job)
        log.close()
    assert metrics[committed_rows] == committed_in_database(database)
    assert metrics["flink_taskmanager_job_task_operator_tpcCommitLatencyMillis_count"] > 0
    assert metrics["flink_taskmanager_job_task_operator_tpcTransactionsCommitted"] > 0
    # Flink's own metrics come out as they are.
    assert "flink_jobmanager_job_numRestarts" in metrics
    # What the job did, per reason and per table of its sink, against the database (no restart:
    # every row was written once).
    with database.connect() as conn:
        reasons = dict(conn.execute("SELECT reason, count(*) FROM rejected GROUP BY reason"))
        ledger, duplicates = (
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("ledger", "duplicates")
        )
    # The rule's refusals; a conflicting duplicate is refused later, by the deduplication.
    conflicts = reasons.pop("conflicting_duplicate")
    assert len(reasons) > 5 and conflicts
    assert rejected_by_reason == reasons
    # The books sink's tables are its statements: "ledger" takes every valid payment and files
    # it in ledger, or in duplicates or rejected when its event id was seen (payments.py).
    assert written_by_table["ledger"] == ledger + duplicates + conflicts
    assert written_by_table["rejected"] == sum(reasons.values())
    assert written_by_table["positions"] > 0
