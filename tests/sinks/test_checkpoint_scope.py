"""Commit scope `checkpoint`: everything every subtask wrote for a checkpoint becomes visible in
one transaction, and everything that holds for subtask scope holds here too: exactly once
through a Python exception and a sink failure mid-stream, through `kill -9` between pre-commit
and commit (the writers' pre-commit, and the committer's commit) and a restore at 2, 1 and 3,
with nothing left staged; a commit that fails transiently is retried and applied once; refused
rows are dead-lettered once each.

Local mini cluster, parallelism 2, real PostgreSQL (the schedules of test_failure_recovery and
test_kill_and_restore, with `--scope checkpoint`).
"""

import pytest

from tests.sinks.support import (
    create_sequence_table,
    dangling,
    id_counts,
    kill_job,
    missing_ids,
    newest_complete_checkpoint,
    run_job,
    sink_fault,
    sink_fault_report,
    start_job,
    wait_for,
)
from tests.sinks.test_failure_recovery import run_failing_job
from tests.sinks.test_kill_and_restore import (
    COUNT,
    SLOW,
    kill_after_pause_then_restore,
    pending_in_database,
)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

SCOPE = ["--scope", "checkpoint"]


def transactions(db, sink_id: str = "sink_check"):
    """(commit-log rows, committing transactions, modes): a committing transaction is told by
    its start time, which every row it logs shares."""
    with db.connect() as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT written_at), array_agg(DISTINCT mode) "
            "FROM tpc_commit_log WHERE sink_id = %s",
            (sink_id,),
        ).fetchone()


def assert_one_transaction_per_checkpoint(db) -> None:
    logged, committed, modes = transactions(db)
    assert modes == ["CHECKPOINT"]
    # Both subtasks write in nearly every checkpoint: far fewer transactions than batches.
    assert committed < logged, (logged, committed)
    with db.connect() as conn:
        # No two transactions share a (lineage, counter): one checkpoint, one transaction.
        split = conn.execute(
            "SELECT count(*) FROM (SELECT lineage, counter FROM tpc_commit_log "
            "WHERE sink_id = 'sink_check' GROUP BY lineage, counter "
            "HAVING count(DISTINCT written_at) > 1) s"
        ).fetchone()[0]
    assert split == 0, "a checkpoint's batches were committed in more than one transaction"


def test_failures_mid_stream_then_restart_are_exactly_once(database, tmp_path):
    run_failing_job(database, tmp_path, "staged", *SCOPE)
    assert id_counts(database) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)
    assert_one_transaction_per_checkpoint(database)


# At 2 and 1: campaign only (about 30 s each), to save CI time; a scale-up in CI.
@pytest.mark.parametrize(
    "restore_parallelism",
    [3, pytest.param(2, marks=pytest.mark.campaign), pytest.param(1, marks=pytest.mark.campaign)],
)
def test_kill_9_after_pre_commit_then_restore(database, tmp_path, restore_parallelism):
    create_sequence_table(database)
    report = kill_after_pause_then_restore(
        database, tmp_path, "staged", restore_parallelism, *SCOPE
    )
    assert id_counts(database) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)
    # The paused batch's checkpoint never completed: it was discarded, not committed.
    assert pending_in_database(database, report["gid"]) == (0, 0, 0)
    assert_one_transaction_per_checkpoint(database)


def test_kill_9_in_the_committer_before_it_commits_then_restore(database, tmp_path):
    """The checkpoint completed, the committer holds it and is killed before its transaction:
    the restore commits the whole checkpoint, once."""
    create_sequence_table(database)
    checkpoints = tmp_path / "checkpoints"
    pause = tmp_path / "pause"
    job = start_job(
        database,
        "--mode",
        "staged",
        *SCOPE,
        "--count",
        str(COUNT),
        "--checkpoint-dir",
        str(checkpoints),
        *SLOW,
        extra_env={
            **sink_fault(pause, "pause", nth=4),
            "TPC_SINK_FAULT_PHASE": "commit",
        },
        log_path=tmp_path / "first-run.log",
    )
    try:
        report = wait_for(lambda: sink_fault_report(pause), 180, "the committer to pause")
        # Both subtasks' batches of that checkpoint are staged, none committed.
        with database.connect() as conn:
            staged = conn.execute(
                "SELECT count(*) FROM tpc_staged_batches WHERE sink_id = 'sink_check'"
            ).fetchone()[0]
        assert staged >= 1
    finally:
        kill_job(job)
    assert report["gid"].startswith("tpc:sink_check:checkpoint-"), report
    checkpoint = newest_complete_checkpoint(checkpoints)
    assert checkpoint is not None, (tmp_path / "first-run.log").read_text()[-3000:]
    result = run_job(
        database,
        "--mode",
        "staged",
        *SCOPE,
        "--count",
        str(COUNT),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints-after-restore"),
        "--from-checkpoint",
        str(checkpoint),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert id_counts(database) == (COUNT, COUNT)
    assert dangling(database) == (0, 0, 0)
    assert_one_transaction_per_checkpoint(database)


def test_prepared_mode_refuses_checkpoint_scope(database):
    """Checkpoint scope needs staged mode: refused while building, with the reason."""
    from pyflink.common import Types

    from localenv.flink import job_environment
    from sinks import SinkConfigurationError, TwoPhaseCommitSink, add_sink_jars

    add_sink_jars(job_environment(1, {}))
    builder = (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(database.jdbc_url)
        .set_user(database.user)
        .set_password(database.password)
        .set_row_type(Types.ROW_NAMED(["id"], [Types.LONG()]))
        .add_statement("SELECT :id")
        .set_sink_id("scope_check")
        .set_mode("prepared")
        .set_commit_scope("checkpoint")
    )
    with pytest.raises(SinkConfigurationError, match="needs commit mode 'staged'"):
        builder.java_config()


def test_a_checkpoint_whose_commit_fails_transiently_is_retried_and_applied_once(
    database, tmp_path
):
    """The committer is held just before it applies a checkpoint, its database session is
    terminated meanwhile, and it is released: the apply meets the dead session (transient),
    is retried on a new connection after a back-off, and applies the checkpoint once. The job
    runs without restarts, so only the committer's own retry can have got it through."""
    create_sequence_table(database)
    hold = tmp_path / "hold"
    job = start_job(
        database,
        "--mode",
        "staged",
        *SCOPE,
        "--count",
        str(COUNT),
        "--restart-attempts",
        "0",  # a failover would fail the run: the retry must happen inside the committer
        *SLOW,
        extra_env={**sink_fault(hold, "hold", nth=3), "TPC_SINK_FAULT_PHASE": "commit"},
        log_path=tmp_path / "run.log",
    )
    try:
        report = wait_for(lambda: sink_fault_report(hold), 180, "the committer to hold")
        assert report["gid"].startswith("tpc:sink_check:checkpoint-"), report
        with database.connect(autocommit=True) as conn:
            terminated = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'tpc-sink-sink_check-0-committer'"
            ).fetchone()[0]
        assert terminated == 1, "the committer's session (open since its earlier commits)"
        (hold / "release").touch()
        assert job.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if job.poll() is None:
            kill_job(job)
    assert id_counts(database) == (COUNT, COUNT)
    assert dangling(database) == (0, 0, 0)
    assert_one_transaction_per_checkpoint(database)


def test_dead_letters_stay_exactly_once_through_kill_9_and_restore(database, tmp_path):
    """The dead-letter policy in checkpoint scope: refused rows (a CHECK constraint, a NUL in
    text) are recorded by the committer inside the checkpoint's one transaction, once each,
    through a `kill -9` and a restore."""
    from tests.sinks.test_poison_rows import (
        POISON,
        create_table_with_check,
        dead_letters,
        refused_ids,
    )

    create_table_with_check(database)
    kill_after_pause_then_restore(
        database, tmp_path, "staged", 2, *SCOPE, "--on-row-error", "dead_letter", *POISON
    )
    refused = refused_ids(COUNT)
    assert id_counts(database) == (COUNT - len(refused),) * 2
    assert [i for i, _ in dead_letters(database)] == sorted(refused)
    assert dangling(database) == (0, 0, 0)
    assert_one_transaction_per_checkpoint(database)
