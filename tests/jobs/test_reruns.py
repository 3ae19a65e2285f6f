"""The same command run twice never applies its input twice (issue 23, its first part).

A start that restores no checkpoint reads its input from the beginning. On sink ids that already
committed input, it is refused: by the job before anything is built (`sinks.fresh_start`), and
by the sink's writer when a job skips that check. Every table stays byte-identical. The control
runs the same job twice through at-least-once sinks, and every balance doubles.
"""

import os
import shutil
import signal
import subprocess

import pytest
from psycopg import sql

from jobs.payments import (
    TABLES,
    build_pipeline,
    build_sinks,
    create_environment,
    explain_refusal,
    file_source,
    prepare_database,
)
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from sinks.fresh_start import FreshStartRefused, applied_runs
from tests.jobs.support import (
    PASSWORD_ENV,
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_command,
    payments_config,
    write_inputs,
)
from tests.jobs.test_payments_faults import committed_lines
from tests.sinks.support import wait_for
from transforms import sample_data

pytestmark = [pytest.mark.minicluster]

AT_LEAST_ONCE = dict(
    commit_scope="subtask",
    ledger_mode="at_least_once",
    balances_mode="at_least_once",
    rejected_mode="at_least_once",
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = write_inputs(tmp_path_factory.mktemp("reruns") / "input", events=3_000, seed=23)
    return directory, expected_outcome(directory)


def run_job(config, check_first: bool = True):
    """The job as `submit` builds it; without `check_first`, as a job that skips the
    database check would (the writer's own refusal is then all that stands in the way)."""
    if check_first:
        prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_source(config.input), build_sinks(config), config)
    env.execute("payments-rerun-test")


def table_digests(db) -> dict[str, str]:
    """An md5 of every row of every table the job writes, and of the sink's dead letters."""
    with db.connect() as conn:
        return {
            table: conn.execute(
                sql.SQL(
                    "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' "
                    "ORDER BY t::text), '')) FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()[0]
            for table in (*TABLES, "tpc_dead_letters")
        }


def balance_total(db) -> int:
    with db.connect() as conn:
        return int(conn.execute("SELECT sum(balance_minor) FROM balances").fetchone()[0])


def run_command(db, input_dir, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        payments_command(db, input_dir, "--checkpoint-dir", str(tmp_path / "checkpoints"), *extra),
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_same_command_twice_is_refused_and_changes_nothing(database, inputs, tmp_path):
    input_dir, expected = inputs
    first = run_command(database, input_dir, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert database_outcome(database) == expected_in_database_shape(expected)
    after_first = table_digests(database)

    again = run_command(database, input_dir, tmp_path)
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-3000:]
    error = again.stderr.strip().splitlines()[-1]
    assert error.startswith("error: sink 'payments-books' refuses a fresh start"), error
    assert "it already committed input of an earlier run" in error
    # It finished: its checkpoints are gone, and there is nothing to resume.
    assert f"No retained checkpoint is under {tmp_path / 'checkpoints'}" in error
    assert "if the earlier run finished, its input is applied already" in error
    assert "use a new --sink-id-prefix" in error
    assert table_digests(database) == after_first


@pytest.mark.parametrize("scope", ["checkpoint", "subtask"])
def test_the_writer_refuses_a_fresh_start_when_the_job_does_not_check(
    database, inputs, tmp_path, scope
):
    """Checkpoint scope: one staged sink for the four tables; subtask scope: the ledger
    prepared, the others staged. Every exactly-once sink id is refused by its writer."""
    input_dir, expected = inputs
    config = payments_config(database, input_dir, tmp_path, commit_scope=scope)
    run_job(config)
    assert database_outcome(database) == expected_in_database_shape(expected)
    after_first = table_digests(database)
    with database.connect() as conn:
        assert [entry.sink_id for entry in applied_runs(conn, ["payments-books"])] == (
            ["payments-books"] if scope == "checkpoint" else []
        )

    with pytest.raises(FreshStartRefused):
        prepare_database(config)
    with pytest.raises(Exception) as refused:
        run_job(config, check_first=False)
    message = explain_refusal(refused.value)
    assert message and "refuses a fresh start" in message, str(refused.value)[-3000:]
    assert message.endswith("use a new sink id. Nothing was written.")
    assert table_digests(database) == after_first


def test_control_at_least_once_sinks_apply_the_same_input_twice(database, inputs, tmp_path):
    """What the refusal guards against: nothing stops a second run of at-least-once sinks,
    and every balance doubles."""
    input_dir, expected = inputs
    config = payments_config(database, input_dir, tmp_path, **AT_LEAST_ONCE)
    run_job(config)
    assert database_outcome(database)[1] == expected_in_database_shape(expected)[1]
    once = balance_total(database)
    with database.connect() as conn:
        rejected_once = conn.execute("SELECT count(*) FROM rejected").fetchone()[0]

    run_job(config)  # the database check has nothing to refuse: no sink promises exactly once
    assert once != 0 and balance_total(database) == 2 * once
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM rejected").fetchone()[0] == 2 * rejected_once


def test_killed_then_checkpoints_lost_then_the_same_command_is_refused(database, tmp_path):
    """`kill -9` of the job's whole process group mid-run, its checkpoint directory deleted,
    the same command again: refused, and nothing it could apply twice is applied."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    sample_data.write_jsonl(str(input_dir / "1.jsonl"), 3_000, seed=29, id_prefix="k")
    prepare_database(payments_config(database, input_dir, tmp_path))  # tables to poll
    watching = subprocess.Popen(
        payments_command(
            database,
            input_dir,
            "--watch",
            "300 ms",
            "--checkpoint-interval",
            "300 ms",
            "--checkpoint-dir",
            str(tmp_path / "checkpoints"),
        ),
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: database.password}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: committed_lines(database) >= 3_000, 180, "the file committed")
    finally:
        os.killpg(watching.pid, signal.SIGKILL)
        watching.wait(30)
    shutil.rmtree(tmp_path / "checkpoints")
    after_kill = table_digests(database)

    again = run_command(database, input_dir, tmp_path, "--watch", "300 ms")
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-3000:]
    error = again.stderr.strip().splitlines()[-1]
    assert error.startswith("error: sink 'payments-books' refuses a fresh start"), error
    assert f"No retained checkpoint is under {tmp_path / 'checkpoints'}" in error
    assert table_digests(database) == after_kill
