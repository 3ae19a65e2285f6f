"""Exactly once through two failures and restarts, with the at-least-once control that shows
what the test would catch; and the tail of a bounded job committed at end of input.

Local mini cluster, parallelism 2, checkpoints every 500 ms, real PostgreSQL.

Every run of the failure test, twin or control, has the same schedule: a Python exception when
a subtask is 30% through its half of the numbers, and a sink failure right after the third
non-empty checkpoint's rows became durable (pre-committed, or flushed by the at-least-once
sink) and before that checkpoint could complete. The restore must replay that checkpoint's
rows, so the at-least-once control writes at least that many rows twice, on every run.
"""

import pytest

from tests.sinks.support import (
    create_sequence_table,
    dangling,
    id_counts,
    missing_ids,
    replayed_rows,
    run_job,
    sink_fault,
)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 20_000
# ~2 ms per 10 records per subtask: the job spans several checkpoints, and the failures land
# mid-stream, with committed checkpoints before them and uncommitted rows after.
SLOW = ["--throttle-every", "10", "--throttle-ms", "2"]


def run_failing_job(db, tmp_path, mode, *extra):
    create_sequence_table(db)
    marker = tmp_path / "failed-once"
    result = run_job(
        db,
        "--mode",
        mode,
        "--count",
        str(COUNT),
        "--batch-size",
        "100",
        "--fail-once-marker",
        str(marker),
        "--fail-after-seconds",
        "0",
        "--fail-after-records",
        str(COUNT * 3 // 10),
        *SLOW,
        *extra,
        extra_env=sink_fault(tmp_path / "sink-fault", "fail", nth=3),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists(), "the injected failure never fired: the test proved nothing"
    return replayed_rows(tmp_path / "sink-fault")


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_failures_mid_stream_then_restart_are_exactly_once(database, tmp_path, mode):
    run_failing_job(database, tmp_path, mode)
    rows, distinct = id_counts(database)
    assert (rows, distinct) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)


def test_control_at_least_once_sink_duplicates_in_the_same_run(database, control_seen, tmp_path):
    """The identical run through autocommitted batches: the replay after the sink failure
    writes the faulted checkpoint's rows a second time, which is exactly what the test above
    must never see."""
    replayed = run_failing_job(database, tmp_path, "at_least_once")
    rows, distinct = id_counts(database)
    assert distinct == COUNT, "at-least-once must still lose nothing"
    control_seen(rows - COUNT, replayed)
    assert rows >= COUNT + replayed, (
        f"expected at least {replayed} duplicated rows from the replay; found {rows - COUNT}"
    )


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_bounded_job_commits_its_tail_at_end_of_input(database, mode):
    """No periodic checkpoint fires within this short job (interval 10 min): every row is
    committed by the final checkpoint at end of input."""
    create_sequence_table(database)
    result = run_job(
        database, "--mode", mode, "--count", "5000", "--checkpoint-interval-ms", "600000"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert id_counts(database) == (5000, 5000)
    assert dangling(database) == (0, 0, 0)
    with database.connect() as conn:
        committed = conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log"
        ).fetchone()[0]
    assert committed == 5000
