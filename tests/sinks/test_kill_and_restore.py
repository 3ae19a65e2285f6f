"""`kill -9` of the whole local job between a pre-commit and the completion of its checkpoint,
then a restore from the newest retained checkpoint, at the same and at other parallelisms."""
import pytest

from tests.sinks.support import (create_sequence_table, dangling, id_counts, kill_job,
                                 missing_ids, newest_complete_checkpoint, run_job, start_job,
                                 wait_for)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 20_000
SLOW = ["--throttle-every", "10", "--throttle-ms", "2"]


def pending_in_database(db, gid):
    with db.connect() as conn:
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s",
                                (gid,)).fetchone()[0]
        staged = conn.execute("SELECT count(*) FROM tpc_staged_batches WHERE gid = %s",
                              (gid,)).fetchone()[0]
        committed = conn.execute("SELECT count(*) FROM tpc_commit_log WHERE gid = %s",
                                 (gid,)).fetchone()[0]
    return prepared, staged, committed


@pytest.mark.parametrize("mode", ["prepared", "staged"])
@pytest.mark.parametrize("restore_parallelism", [2, 1, 3])
def test_kill_9_after_pre_commit_then_restore(database, tmp_path, mode, restore_parallelism):
    create_sequence_table(database)
    checkpoints = tmp_path / "checkpoints"
    pause = tmp_path / "pause"
    job = start_job(database, "--mode", mode, "--count", str(COUNT), "--parallelism", "2",
                    "--checkpoint-dir", str(checkpoints), *SLOW,
                    extra_env={"TPC_SINK_PAUSE_AFTER_PRECOMMIT": str(pause),
                               "TPC_SINK_PAUSE_AFTER_PRECOMMIT_NTH": "5"},
                    log_path=tmp_path / "first-run.log")
    try:
        marker = wait_for(lambda: next(pause.glob("paused-*"), None), 180,
                          "a writer to pause right after a pre-commit")
        gid = marker.read_text()
        # The transaction is pre-committed (prepared or staged) and not yet committed.
        assert pending_in_database(database, gid) == ((1, 0, 0) if mode == "prepared" else (0, 1, 0))
        rows_before_kill = id_counts(database)[0]
    finally:
        kill_job(job)
    assert rows_before_kill < COUNT, "the job was killed too late to prove anything"

    checkpoint = newest_complete_checkpoint(checkpoints)
    assert checkpoint is not None, (tmp_path / "first-run.log").read_text()[-3000:]
    result = run_job(database, "--mode", mode, "--count", str(COUNT),
                     "--parallelism", str(restore_parallelism),
                     "--checkpoint-dir", str(tmp_path / "checkpoints-after-restore"),
                     "--from-checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr[-3000:]

    assert id_counts(database) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)
    # The paused transaction's checkpoint never completed: it was discarded, not committed.
    assert pending_in_database(database, gid) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_restoring_an_older_checkpoint_than_committed_is_refused(database, tmp_path, mode):
    """The operator's classic mistake: restoring a retained checkpoint older than the newest one
    that was committed. Any sink would replay (and apply twice) what was committed since; this
    one finds it in its commit log and refuses, before a single row moves."""
    create_sequence_table(database)
    checkpoints = tmp_path / "checkpoints"
    pause = tmp_path / "pause"
    job = start_job(database, "--mode", mode, "--count", str(COUNT), "--checkpoint-dir",
                    str(checkpoints), *SLOW,
                    extra_env={"TPC_SINK_PAUSE_AFTER_PRECOMMIT": str(pause),
                               "TPC_SINK_PAUSE_AFTER_PRECOMMIT_NTH": "8"},
                    log_path=tmp_path / "first-run.log")
    try:
        wait_for(lambda: next(pause.glob("paused-*"), None), 180, "a writer to pause")
    finally:
        kill_job(job)
    retained = sorted((p for p in checkpoints.glob("*/chk-*") if (p / "_metadata").exists()),
                      key=lambda p: int(p.name.split("-")[1]))
    with database.connect() as conn:
        newest_committed = conn.execute("SELECT max(counter) FROM tpc_commit_log").fetchone()[0]
    older = [p for p in retained if int(p.name.split("-")[1]) < newest_committed]
    assert older, f"no retained checkpoint older than committed {newest_committed}: {retained}"
    rows_before = id_counts(database)[0]

    result = run_job(database, "--mode", mode, "--count", str(COUNT), "--restart-attempts", "0",
                     "--from-checkpoint", str(older[-1]))
    assert result.returncode != 0
    assert "refuses to restore checkpoint" in result.stderr
    assert id_counts(database)[0] == rows_before, "rows moved although the restore was refused"

    result = run_job(database, "--mode", mode, "--count", str(COUNT),
                     "--from-checkpoint", str(retained[-1]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert id_counts(database) == (COUNT, COUNT)
    assert dangling(database) == (0, 0, 0)
