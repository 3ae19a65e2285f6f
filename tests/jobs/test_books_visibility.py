"""What a reader sees while the payments job runs: in checkpoint scope (the default) every
REPEATABLE READ snapshot has balances that agree with the ledger and no duplicate without its
ledger row, through a Python exception mid-stream, a `kill -9` between pre-commit and commit
and a restore; in subtask scope (the control) the same schedule shows snapshots that disagree,
because the ledger's and the balances' transactions commit apart.

And a `--watch` job's empty checkpoints open no database transaction.

Local mini cluster in a process of its own (killed with `kill -9`), parallelism 2, real
PostgreSQL, a reader sampling every 25 ms.
"""

import sys
import threading
import time

import pytest

from localenv.postgres import LocalPostgres
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    write_inputs,
)
from tests.sinks.support import (
    kill_job,
    newest_complete_checkpoint,
    sink_fault,
    sink_fault_report,
    wait_for,
)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

SAMPLE_EVERY_S = 0.025

# Balances that disagree with the ledger: per (account, currency), sum and count of the ledger
# rows against the balance row.
DISAGREEING_BALANCES = """
SELECT count(*) FROM (
    SELECT account_id, currency, sum(amount_minor) AS total, count(*) AS events
    FROM ledger GROUP BY account_id, currency
) l FULL JOIN balances b USING (account_id, currency)
WHERE coalesce(l.total, 0) <> coalesce(b.balance_minor, 0)
   OR coalesce(l.events, 0) <> coalesce(b.event_count, 0)
"""
# A duplicate whose first occurrence is not in the ledger.
ORPHAN_DUPLICATES = """
SELECT count(*) FROM duplicates d
WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.event_id = d.event_id)
"""


class Reader(threading.Thread):
    """Samples the books in REPEATABLE READ snapshots until stopped."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db = db
        self.stopped = threading.Event()
        self.snapshots = 0
        self.nonempty = 0
        self.disagreeing: list[tuple[int, int, int]] = []  # (snapshot, balances, duplicates)
        self.error = None

    def run(self):
        try:
            with self.db.connect() as conn:
                while not self.stopped.is_set():
                    with conn.transaction():
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
                        balances = conn.execute(DISAGREEING_BALANCES).fetchone()[0]
                        orphans = conn.execute(ORPHAN_DUPLICATES).fetchone()[0]
                    self.snapshots += 1
                    self.nonempty += ledger > 0
                    if balances or orphans:
                        self.disagreeing.append((self.snapshots, balances, orphans))
                    time.sleep(SAMPLE_EVERY_S)
        except Exception as error:  # reported by the test
            self.error = error

    def stop(self):
        self.stopped.set()
        if self.ident is not None:  # started
            self.join(timeout=30)


def job_command(db, input_dir, checkpoints, scope, *extra):
    return [
        sys.executable,
        "-m",
        "tests.jobs.books_job",
        "--input",
        str(input_dir),
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-env",
        "TPC_TEST_DB_PASSWORD",
        "--parallelism",
        "2",
        "--checkpoint-interval",
        "300 ms",
        "--checkpoint-dir",
        str(checkpoints),
        "--commit-scope",
        scope,
        *extra,
    ]


def run_with_exception_kill_and_restore(db, tmp_path, scope: str) -> Reader:
    """`run_sampled`, its reader stopped whatever happens: a failed run once left two readers
    querying every 25 ms for the rest of the test session."""
    reader = Reader(db)
    try:
        run_sampled(db, tmp_path, scope, reader)
    finally:
        reader.stop()
    assert reader.error is None, reader.error
    return reader


def run_sampled(db, tmp_path, scope: str, reader: Reader) -> None:
    """The payments job with a Python exception once mid-stream (at a worker's 1,000th line, of
    about 40,000 lines in all), killed with `kill -9` right after its 15th non-empty pre-commit
    became durable (before it could commit), restored from the newest retained checkpoint and
    run to its end, while a reader samples the books."""
    import subprocess

    from localenv.flink import child_process_environment
    from localenv.paths import PROJECT_ROOT

    input_dir = write_inputs(tmp_path / "input", events=40_000, seed=5)
    expected = expected_outcome(input_dir)
    pause = tmp_path / "pause"
    marker = tmp_path / "failed-once"
    sink_id = "payments-books" if scope == "checkpoint" else "payments-ledger"
    env = child_process_environment(
        {
            "TPC_TEST_DB_PASSWORD": db.password,
            "TPC_TEST_FAIL_ONCE_MARKER": str(marker),
            **sink_fault(pause, "pause", nth=15, sink_id=sink_id),
        }
    )
    log = open(tmp_path / "first-run.log", "w")
    job = subprocess.Popen(
        job_command(db, input_dir, tmp_path / "checkpoints", scope),
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: _tables_exist(db) or job.poll() is not None, 120, "the job to create tables"
        )
        reader.start()
        wait_for(
            lambda: sink_fault_report(pause) or job.poll() is not None,
            240,
            "a writer to pause after a durable checkpoint",
        )
        assert job.poll() is None, (tmp_path / "first-run.log").read_text()[-3000:]
    finally:
        kill_job(job)
        log.close()
    assert marker.exists(), "the Python exception never fired: the test proved less"
    checkpoint = newest_complete_checkpoint(tmp_path / "checkpoints")
    assert checkpoint is not None, (tmp_path / "first-run.log").read_text()[-3000:]
    env = child_process_environment({"TPC_TEST_DB_PASSWORD": db.password})
    result = subprocess.run(
        job_command(
            db,
            input_dir,
            tmp_path / "checkpoints-after-restore",
            scope,
            "--from-checkpoint",
            str(checkpoint),
        ),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    reader.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert database_outcome(db) == expected_in_database_shape(expected)


def _tables_exist(db) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT to_regclass('duplicates') IS NOT NULL").fetchone()[0]


def test_checkpoint_scope_books_balance_in_every_snapshot(database, tmp_path, record_property):
    reader = run_with_exception_kill_and_restore(database, tmp_path, "checkpoint")
    record_property("snapshots", reader.snapshots)
    assert reader.nonempty >= 50, f"too few snapshots with rows to prove much: {reader.nonempty}"
    assert reader.disagreeing == [], (
        f"{len(reader.disagreeing)} of {reader.snapshots} snapshots disagree: "
        f"{reader.disagreeing[:10]}"
    )


def test_control_subtask_scope_shows_disagreeing_snapshots(
    database, tmp_path, control_seen, record_property
):
    """The identical run with one sink per table: exact at the end, but readers see the
    ledger and the balances (and duplicates) at different moments."""
    reader = run_with_exception_kill_and_restore(database, tmp_path, "subtask")
    record_property("snapshots", reader.snapshots)
    control_seen(len(reader.disagreeing), 1, "disagreeing snapshots")
    assert reader.disagreeing, f"none of {reader.snapshots} snapshots disagreed"


def database_transactions(db) -> int:
    """Write transactions this server has begun so far: the next transaction id it will assign
    (`pg_current_snapshot`'s xmax). Read-only transactions get no id, so the writers' one index
    lookup per checkpoint into the commit log (PgWriter.snapshotState, which lets a restore see a
    database that went back in time) does not count; anything that writes does."""
    with db.connect() as conn:
        return int(
            conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0]
        )


def newest_checkpoint_number(root) -> int:
    return max((int(p.name.split("-")[1]) for p in root.glob("*/chk-*")), default=0)


IDLE_CHECKPOINTS = 5


@pytest.fixture
def quiet_database():
    """A database on a server of its own with autovacuum off. Transaction ids are counted
    server-wide: on the session's shared server, autovacuum's ANALYZE of earlier tests'
    databases took ids too (7 during 5 idle checkpoints in one run), which this test would
    blame on the job."""
    with LocalPostgres(extra_settings={"autovacuum": "off"}) as server:
        yield server.create_database("idle_checkpoints")


def test_empty_checkpoints_open_no_transaction(quiet_database, tmp_path, record_property):
    """A `--watch` job that has committed its input and keeps checkpointing: while no line
    arrives, its checkpoints are empty, and neither the writers nor the one committer write a
    database transaction for them (the writers only read the commit log's newest counter)."""
    database = quiet_database
    import subprocess

    from localenv.flink import child_process_environment
    from localenv.paths import PROJECT_ROOT
    from tests.jobs.test_payments_faults import committed_lines

    input_dir = write_inputs(tmp_path / "input", events=1_000, seed=9)
    lines = sum(1 for path in input_dir.iterdir() for _ in path.open("rb"))
    checkpoints = tmp_path / "checkpoints"
    job = subprocess.Popen(
        [
            *job_command(database, input_dir, checkpoints, "checkpoint"),
            "--watch",
            "200 ms",
            # The command's progress line reads the database (jobs/progress.py): not while
            # this counts the sink's transactions.
            "--progress-interval",
            "3600",
        ],
        cwd=PROJECT_ROOT,
        stdout=open(tmp_path / "run.log", "w"),
        stderr=subprocess.STDOUT,
        env=child_process_environment({"TPC_TEST_DB_PASSWORD": database.password}),
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: (
                (_tables_exist(database) and committed_lines(database) == lines)
                or job.poll() is not None
            ),
            180,
            "the input to be committed",
        )
        assert job.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        time.sleep(1)  # the last commit's housekeeping
        before = database_transactions(database)
        first = newest_checkpoint_number(checkpoints)
        # A count of checkpoints, not a fixed time: on a loaded machine 3 s once held only 4.
        wait_for(
            lambda: (
                newest_checkpoint_number(checkpoints) - first >= IDLE_CHECKPOINTS
                or job.poll() is not None
            ),
            120,
            f"{IDLE_CHECKPOINTS} checkpoints while idle",
        )
        after = database_transactions(database)
        last = newest_checkpoint_number(checkpoints)
    finally:
        kill_job(job)
    record_property("idle", f"{after - before} transactions during {last - first} checkpoints")
    assert last - first >= IDLE_CHECKPOINTS, f"only {last - first} checkpoints while idle"
    # A write transaction per empty checkpoint would add at least one per checkpoint (the
    # committer), two (the writers); housekeeping may write once.
    assert after - before <= 1, f"{after - before} transactions during {last - first} checkpoints"
