"""Exactly once through an exception and a restart, with the at-least-once control that shows
what the test would catch; and the tail of a bounded job committed at end of input.

Local mini cluster, parallelism 2, checkpoints every 500 ms, real PostgreSQL."""
import pytest

from tests.sinks.support import (create_sequence_table, dangling, id_counts, missing_ids,
                                 run_job)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 20_000
# ~2 ms per 10 records per subtask: the job spans several checkpoints, and the failure (when a
# subtask is 60% through its half) lands mid-stream, with committed checkpoints before it and
# uncommitted rows after.
SLOW = ["--throttle-every", "10", "--throttle-ms", "2"]


def run_failing_job(db, tmp_path, mode, *extra, batch_size=100):
    create_sequence_table(db)
    marker = tmp_path / "failed-once"
    result = run_job(db, "--mode", mode, "--count", str(COUNT), "--batch-size", str(batch_size),
                     "--fail-once-marker", str(marker), "--fail-after-seconds", "0",
                     "--fail-after-records", str(COUNT * 3 // 10), *SLOW, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists(), "the injected failure never fired: the test proved nothing"
    return result


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_exception_mid_stream_then_restart_is_exactly_once(database, tmp_path, mode):
    run_failing_job(database, tmp_path, mode)
    rows, distinct = id_counts(database)
    assert (rows, distinct) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)


def test_control_at_least_once_sink_duplicates_in_the_same_run(database, tmp_path):
    """The identical run through autocommitted batches: the replay after the restart writes
    rows a second time, which is exactly what the test above must never see."""
    # Batch size 1: every row that reaches the sink after the last checkpoint is in the
    # database when the failure hits (with larger batches the replayed tail may by chance
    # not have been flushed yet, and the control would prove nothing).
    run_failing_job(database, tmp_path, "at_least_once", batch_size=1)
    rows, distinct = id_counts(database)
    assert distinct == COUNT, "at-least-once must still lose nothing"
    assert rows > COUNT, "expected duplicates from the replay; the control shows none"


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_bounded_job_commits_its_tail_at_end_of_input(database, mode):
    """No periodic checkpoint fires within this short job (interval 10 min): every row is
    committed by the final checkpoint at end of input."""
    create_sequence_table(database)
    result = run_job(database, "--mode", mode, "--count", "5000",
                     "--checkpoint-interval-ms", "600000")
    assert result.returncode == 0, result.stderr[-3000:]
    assert id_counts(database) == (5000, 5000)
    assert dangling(database) == (0, 0, 0)
    with database.connect() as conn:
        committed = conn.execute("SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log").fetchone()[0]
    assert committed == 5000
