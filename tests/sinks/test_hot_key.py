"""Hot key: every record upserts the same row (total += id) over many checkpoints.

`staged` applies each checkpoint in one short transaction at commit time, so it holds no lock
across checkpoints and finishes with the exact sum. `prepared` cannot: a prepared transaction
keeps its row lock until COMMIT PREPARED, the next checkpoint's write to the same row waits for
it, and the commit is due on the very task thread that waits. The sink bounds that wait with
`lock_timeout` and fails with an explanation; it never hangs silently or loses count."""

import pytest

from tests.sinks.support import create_hot_table, dangling, expected_sum, run_job

pytestmark = [pytest.mark.minicluster]

COUNT = 20_000


def hot_row(db):
    with db.connect() as conn:
        return conn.execute("SELECT total, events FROM hot_balance WHERE k = 'hot'").fetchone()


def committed_rows(db, sink_id):
    with db.connect() as conn:
        return conn.execute(
            "SELECT coalesce(sum(row_count), 0), count(DISTINCT counter) "
            "FROM tpc_commit_log WHERE sink_id = %s",
            (sink_id,),
        ).fetchone()


def test_staged_mode_sums_a_hot_key_exactly_without_stalling(database):
    create_hot_table(database)
    result = run_job(
        database,
        "--hot-key",
        "--table",
        "hot_balance",
        "--mode",
        "staged",
        "--sink-id",
        "hot",
        "--count",
        str(COUNT),
        "--batch-size",
        "50",
        "--checkpoint-interval-ms",
        "200",
        "--throttle-every",
        "10",
        "--throttle-ms",
        "4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert hot_row(database) == (expected_sum(COUNT), COUNT)
    rows, checkpoints_with_data = committed_rows(database, "hot")
    assert rows == COUNT
    assert checkpoints_with_data >= 20, f"only {checkpoints_with_data} checkpoints carried data"
    assert dangling(database) == (0, 0, 0)


def test_prepared_mode_on_a_hot_key_fails_clearly_and_keeps_the_books_consistent(database):
    create_hot_table(database)
    result = run_job(
        database,
        "--hot-key",
        "--table",
        "hot_balance",
        "--mode",
        "prepared",
        "--sink-id",
        "hot",
        "--count",
        str(COUNT),
        "--batch-size",
        "1",
        "--lock-timeout-ms",
        "2000",
        "--restart-attempts",
        "1",
        "--checkpoint-interval-ms",
        "200",
        "--throttle-every",
        "10",
        "--throttle-ms",
        "4",
        timeout=180,
    )
    assert result.returncode != 0, "expected the prepared-mode hot key to fail"
    assert "lock timeout" in result.stderr
    assert "Use commit mode 'staged'" in result.stderr
    # Whatever was committed is consistent: the hot row counts exactly the committed rows.
    committed, _ = committed_rows(database, "hot")
    total_events = (hot_row(database) or (0, 0))[1]
    assert total_events == committed
