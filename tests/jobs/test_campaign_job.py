"""The fault campaign's job runner (`tests.harness.campaign_job`) takes a job: `--job jobs.orders`
runs the orders job's own graph and flags, and `--at-least-once` (the campaign's control) swaps
its sink for plain INSERTs into its line tables (`tests.harness.naive_sink.NaiveTables`): the
kit's own statements write a line only if absent, so its own at-least-once sink would absorb
every replay and the control would prove nothing. Without a fault nothing is replayed, so the
line tables end exact here: this checks the wiring; the campaign's controls check the replay
(tests/jobs/test_fault_campaign.py, and `python -m tests.campaign --job orders --control`)."""

import subprocess
import sys

import pytest

from jobs.orders import JOB
from localenv.paths import PROJECT_ROOT
from sinks.control_tables import commit_logs
from tests.jobs.support import PASSWORD_ENV, job_command
from tests.jobs.test_orders_job import database_tables, expected_tables, write_inputs
from tests.sinks.support import job_environment

pytestmark = [pytest.mark.minicluster]


def test_the_campaign_runner_runs_the_orders_job_through_the_naive_control_sink(database, tmp_path):
    """One run checks both flags: without `--job` the payments job would leave the orders
    tables empty, and without `--at-least-once` the job's own sink would fill `stock` (the
    naive one writes the line tables only) and log its commits."""
    input_dir = write_inputs(tmp_path / "input", orders=1_000)
    flags = job_command("jobs.orders", database, input_dir)[3:]
    flags += ["--checkpoint-interval", "300 ms", "--checkpoint-dir", str(tmp_path / "cp")]
    runner = [sys.executable, "-m", "tests.harness.campaign_job", "--job", "jobs.orders"]
    runner += ["--at-least-once", "--sink-batch-size", "50", "--"]
    done = subprocess.run(
        runner + flags,
        cwd=PROJECT_ROOT,
        env=job_environment(database, {PASSWORD_ENV: database.password}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    moves, stock, duplicates, rejected = expected_tables(input_dir)
    assert database_tables(database) == (moves, [], duplicates, rejected)
    assert stock, "the reference has stock the naive sink does not write"
    # Which sink ran: an exactly-once sink logs each commit; an at-least-once one has no log.
    with database.connect() as conn:
        assert commit_logs(conn, sink_ids=[JOB.sink_id()]) == {}
