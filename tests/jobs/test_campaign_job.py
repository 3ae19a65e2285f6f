"""The fault campaign's job runner (`tests.harness.campaign_job`) takes a job: `--job jobs.orders`
runs the orders job's own graph and flags, and `--at-least-once` reaches its sink through the
kit (`JobConfig.at_least_once`), not through a patch of the payments job. The orders job's
statements write a line only if absent, so even its at-least-once sink ends exact here: this
checks the wiring, the payments controls (tests/jobs/test_fault_campaign.py) the replay."""

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


def test_the_campaign_runner_runs_the_orders_job_to_its_reference_through_its_own_sink(
    database, tmp_path
):
    """One run checks both flags: without `--job` the payments job would leave the orders
    tables empty, and without `--at-least-once` the sink would log its commits."""
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
    assert database_tables(database) == expected_tables(input_dir)
    # Which sink ran: an exactly-once sink logs each commit; an at-least-once one has no log.
    with database.connect() as conn:
        assert commit_logs(conn, sink_ids=[JOB.sink_id()]) == {}
