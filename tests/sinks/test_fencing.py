"""One live writer per (sink id, subtask): a second job with the same sink id is refused at
start, and a zombie (a writer of an earlier attempt of the same job, still connected after its
job failed over) is fenced off before recovery runs, so it can never pre-commit.

The zombie is played by a database session that holds the subtask's lock and an open
transaction of rows, registered as attempt 0 of the very job id the next run is given. Its
control is the same zombie against the at-least-once sink, which has no fence: there the zombie
pre-commits, and its prepared transaction is left behind, holding its rows and locks."""

import uuid

import psycopg
import pytest

from sinks.admin import purge
from tests.sinks.support import (
    create_sequence_table,
    dangling,
    id_counts,
    kill_job,
    run_job,
    start_job,
    wait_for,
)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 3_000


def test_a_second_job_with_the_same_sink_id_is_refused_at_start(database, tmp_path):
    create_sequence_table(database)
    # about 25 s: long enough for the second job to start while it runs
    first = start_job(
        database,
        "--mode",
        "prepared",
        "--count",
        "10000",
        "--throttle-every",
        "1",
        "--throttle-ms",
        "5",
        log_path=tmp_path / "first.log",
    )
    try:
        wait_for(lambda: id_counts(database)[0] > 0, 120, "the first job to commit")
        second = run_job(
            database,
            "--mode",
            "prepared",
            "--count",
            "100",
            "--owner-wait-s",
            "2",
            "--restart-attempts",
            "3",
        )
        assert second.returncode != 0
        assert "sink 'sink_check' subtask" in second.stderr
        assert "is in use by job" in second.stderr and "share a sink id" in second.stderr
        assert first.poll() is None, "the first job ended before the second one started"
        assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            kill_job(first)
    # The second job moved no row: the first one's are there exactly once.
    assert id_counts(database) == (10000, 10000)
    assert dangling(database) == (0, 0, 0)


def zombie_session(db, job_id: str, subtask: int = 0):
    """A session standing in for attempt 0 of `job_id`'s writer of `subtask`: it holds the
    subtask's lock, is registered as its owner, and has rows written in an open transaction."""
    conn = db.connect(autocommit=True)
    conn.execute("SELECT pg_advisory_lock(hashtext('tpc:sink_check'), %s)", (subtask,))
    conn.execute(
        "INSERT INTO tpc_writer_owners (sink_id, subtask, job_id, attempt, pid, since) "
        "VALUES ('sink_check', %s, %s, 0, pg_backend_pid(), now()) "
        "ON CONFLICT (sink_id, subtask) DO UPDATE SET job_id = EXCLUDED.job_id, "
        "attempt = 0, pid = EXCLUDED.pid",
        (subtask, job_id),
    )
    conn.autocommit = False
    conn.execute("INSERT INTO sink_check (id, v) SELECT -g, 'zombie' FROM generate_series(1, 5) g")
    return conn


def control_tables(db):
    """The sink's control tables, created by a tiny run of the job, whose rows and history are
    then removed (`sinks.admin purge`): otherwise the sink id has committed, and the next
    fresh start on it would be refused."""
    result = run_job(db, "--mode", "prepared", "--count", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    with db.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE sink_check")
        purge(conn, "sink_check")


def test_a_zombie_writer_of_the_same_job_is_fenced_off_and_cannot_pre_commit(database):
    create_sequence_table(database)
    control_tables(database)
    job_id = uuid.uuid4().hex
    zombie = zombie_session(database, job_id)
    try:
        result = run_job(database, "--mode", "prepared", "--count", str(COUNT), "--job-id", job_id)
        assert result.returncode == 0, result.stderr[-3000:]
        with pytest.raises(psycopg.OperationalError):
            zombie.execute(f"PREPARE TRANSACTION 'tpc:sink_check:0:999999:{job_id}.0'")
    finally:
        zombie.close()
    assert id_counts(database) == (COUNT, COUNT)  # no zombie row
    assert dangling(database) == (0, 0, 0)


def test_control_without_a_fence_the_zombie_pre_commits(database, control_seen):
    """The at-least-once sink takes no lock: the same zombie goes on and pre-commits."""
    create_sequence_table(database)
    control_tables(database)
    job_id = uuid.uuid4().hex
    zombie = zombie_session(database, job_id)
    gid = f"tpc:sink_check:0:999999:{job_id}.0"
    try:
        result = run_job(
            database, "--mode", "at_least_once", "--count", str(COUNT), "--job-id", job_id
        )
        assert result.returncode == 0, result.stderr[-3000:]
        zombie.execute(f"PREPARE TRANSACTION '{gid}'")
    finally:
        zombie.close()
    prepared = dangling(database)[0]
    control_seen(prepared, 1, "prepared transactions of a zombie left behind")
    assert prepared == 1
    with database.connect(autocommit=True) as conn:
        conn.execute(f"ROLLBACK PREPARED '{gid}'")
