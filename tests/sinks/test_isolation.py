"""Two sinks in one job, and two jobs on one database, never touch each other's transactions
or staged rows -- not even while they recover from failures at the same time."""

import pytest

from tests.sinks.support import (
    create_sequence_table,
    dangling,
    id_counts,
    missing_ids,
    run_job,
    start_job,
)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 10_000
# Fail once a subtask is 60% through its half of the numbers, whatever the machine's speed.
SLOW = [
    "--throttle-every",
    "10",
    "--throttle-ms",
    "2",
    "--fail-after-seconds",
    "0",
    "--fail-after-records",
    str(COUNT * 3 // 10),
]


def foreign_gid(db):
    # Prepared-transaction ids are unique per server, not per database.
    return f"tpc:foreign:0:999999:{db.name}.0"


def plant_foreign_leftovers(db):
    """A prepared transaction and a staged batch of another sink id, both of subtask 0 and with
    a counter above anything a restore could reach: fair game if sink ids were ignored."""
    with db.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE foreign_target (x int)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO foreign_target VALUES (1)")
        conn.execute(f"PREPARE TRANSACTION '{foreign_gid(db)}'")
        conn.execute(
            "INSERT INTO tpc_staged_batches (gid, sink_id, subtask, counter, row_count) "
            "VALUES (%s, 'foreign', 0, 999999, 1)",
            (foreign_gid(db),),
        )
        conn.execute(
            "INSERT INTO tpc_staged_rows (gid, seq, payload) VALUES (%s, 0, '\\x00')",
            (foreign_gid(db),),
        )


def assert_foreign_leftovers_untouched(db):
    assert dangling(db, "foreign") == (1, 1, 1)


def remove_foreign_leftovers(db):
    with db.connect(autocommit=True) as conn:
        if conn.execute(
            "SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (foreign_gid(db),)
        ).fetchone():
            conn.execute(f"ROLLBACK PREPARED '{foreign_gid(db)}'")
        conn.execute("DELETE FROM tpc_staged_rows WHERE gid = %s", (foreign_gid(db),))
        conn.execute("DELETE FROM tpc_staged_batches WHERE gid = %s", (foreign_gid(db),))


@pytest.fixture
def foreign_leftovers(database):
    create_sequence_table(database, "warmup")
    ensure_control_tables(database)
    plant_foreign_leftovers(database)
    yield
    remove_foreign_leftovers(database)


def ensure_control_tables(db):
    # The sink creates its tables on first use; create them now to plant leftovers in them.
    result = run_job(db, "--count", "1", "--sink-id", "warmup", "--table", "warmup")
    assert result.returncode == 0, result.stderr[-2000:]


def test_two_sinks_in_one_job_recover_independently(database, foreign_leftovers, tmp_path):
    create_sequence_table(database, "via_prepared")
    create_sequence_table(database, "via_staged")
    result = run_job(
        database,
        "--count",
        str(COUNT),
        "--mode",
        "prepared",
        "--sink-id",
        "alpha",
        "--table",
        "via_prepared",
        "--second-sink",
        "beta",
        "staged",
        "via_staged",
        "--fail-once-marker",
        str(tmp_path / "failed"),
        *SLOW,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "failed").exists()
    for table in ("via_prepared", "via_staged"):
        assert id_counts(database, table) == (COUNT, COUNT), table
        assert missing_ids(database, COUNT, table) == 0
    assert dangling(database, "alpha") == (0, 0, 0)
    assert dangling(database, "beta") == (0, 0, 0)
    assert_foreign_leftovers_untouched(database)


def test_two_jobs_on_one_database_recover_independently(database, foreign_leftovers, tmp_path):
    jobs = {}
    for sink_id, mode in (("job_a", "prepared"), ("job_b", "staged")):
        create_sequence_table(database, sink_id)
        jobs[sink_id] = start_job(
            database,
            "--count",
            str(COUNT),
            "--mode",
            mode,
            "--sink-id",
            sink_id,
            "--table",
            sink_id,
            "--fail-once-marker",
            str(tmp_path / f"failed-{sink_id}"),
            *SLOW,
            log_path=tmp_path / f"{sink_id}.log",
        )
    for sink_id, process in jobs.items():
        assert process.wait(timeout=300) == 0, (tmp_path / f"{sink_id}.log").read_text()[-3000:]
        assert (tmp_path / f"failed-{sink_id}").exists()
    for sink_id in jobs:
        assert id_counts(database, sink_id) == (COUNT, COUNT), sink_id
        assert dangling(database, sink_id) == (0, 0, 0)
    assert_foreign_leftovers_untouched(database)
