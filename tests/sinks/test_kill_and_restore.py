"""`kill -9` of the whole local job between a pre-commit and the completion of its checkpoint,
then a restore from the newest retained checkpoint, at the same and at other parallelisms; and
the at-least-once control killed at the same point (right after it flushed a checkpoint's rows),
which provably writes those rows twice."""

import pytest

from tests.sinks.support import (
    create_sequence_table,
    dangling,
    id_counts,
    kill_job,
    missing_ids,
    newest_complete_checkpoint,
    replayed_rows,
    run_job,
    sink_fault,
    sink_fault_report,
    start_job,
    wait_for,
)

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 20_000
SLOW = ["--throttle-every", "10", "--throttle-ms", "2"]


def pending_in_database(db, gid):
    with db.connect() as conn:
        prepared = conn.execute(
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s", (gid,)
        ).fetchone()[0]
        staged = conn.execute(
            "SELECT count(*) FROM tpc_staged_batches WHERE gid = %s", (gid,)
        ).fetchone()[0]
        committed = conn.execute(
            "SELECT count(*) FROM tpc_commit_log WHERE gid = %s", (gid,)
        ).fetchone()[0]
    return prepared, staged, committed


def kill_after_pause_then_restore(
    db, tmp_path, mode, restore_parallelism, *job_args: str, min_rows: int = 0
):
    """Runs the job (with `job_args` added) until a writer pauses right after its 5th non-empty
    checkpoint (or the first later one of `min_rows` rows) became durable, kills all of it with
    `kill -9`, restores the newest retained checkpoint and runs to the end. The table must
    exist. Returns the seam's report of the paused checkpoint."""
    checkpoints = tmp_path / "checkpoints"
    pause = tmp_path / "pause"
    job = start_job(
        db,
        "--mode",
        mode,
        "--count",
        str(COUNT),
        "--parallelism",
        "2",
        "--checkpoint-dir",
        str(checkpoints),
        *SLOW,
        *job_args,
        extra_env=sink_fault(pause, "pause", nth=5, min_rows=min_rows),
        log_path=tmp_path / "first-run.log",
    )
    try:
        report = wait_for(
            lambda: sink_fault_report(pause),
            180,
            "a writer to pause right after a checkpoint's rows became durable",
        )
        if mode != "at_least_once":
            # The transaction is pre-committed (prepared or staged) and not yet committed.
            assert pending_in_database(db, report["gid"]) == (
                (1, 0, 0) if mode == "prepared" else (0, 1, 0)
            )
        rows_before_kill = id_counts(db)[0]
    finally:
        kill_job(job)
    assert rows_before_kill < COUNT, "the job was killed too late to prove anything"

    checkpoint = newest_complete_checkpoint(checkpoints)
    assert checkpoint is not None, (tmp_path / "first-run.log").read_text()[-3000:]
    result = run_job(
        db,
        "--mode",
        mode,
        "--count",
        str(COUNT),
        "--parallelism",
        str(restore_parallelism),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints-after-restore"),
        "--from-checkpoint",
        str(checkpoint),
        *job_args,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return report


# Each mode restores at another parallelism in CI (prepared at 3, staged at 1); the other four
# runs (each about 30 s) are campaign only: a kill -9 then a restore at the same parallelism is
# what tests/sinks/test_poison_rows.py and tests/jobs/test_payments_kafka.py do in CI.
@pytest.mark.parametrize(
    "mode, restore_parallelism",
    [
        ("prepared", 3),
        ("staged", 1),
        pytest.param("prepared", 2, marks=pytest.mark.campaign),
        pytest.param("prepared", 1, marks=pytest.mark.campaign),
        pytest.param("staged", 2, marks=pytest.mark.campaign),
        pytest.param("staged", 3, marks=pytest.mark.campaign),
    ],
)
def test_kill_9_after_pre_commit_then_restore(database, tmp_path, mode, restore_parallelism):
    create_sequence_table(database)
    report = kill_after_pause_then_restore(database, tmp_path, mode, restore_parallelism)
    assert id_counts(database) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)
    # The paused transaction's checkpoint never completed: it was discarded, not committed.
    assert pending_in_database(database, report["gid"]) == (0, 0, 0)


def test_control_at_least_once_kill_9_after_flush_duplicates(database, control_seen, tmp_path):
    """The identical schedule through the at-least-once sink: the rows it flushed for the
    checkpoint that never completed are replayed after the restore, and written twice."""
    create_sequence_table(database)
    kill_after_pause_then_restore(database, tmp_path, "at_least_once", 2)
    replayed = replayed_rows(tmp_path / "pause")
    rows, distinct = id_counts(database)
    assert distinct == COUNT, "at-least-once must still lose nothing"
    control_seen(rows - COUNT, replayed)
    assert rows >= COUNT + replayed, (
        f"expected at least {replayed} duplicated rows from the replay; found {rows - COUNT}"
    )


def run_until_paused(db, tmp_path, name: str, nth: int, *job_args: str) -> None:
    """Runs the job (prepared mode unless `job_args` say otherwise) with checkpoints retained
    under tmp_path/checkpoints-<name> until a writer pauses after its `nth` non-empty
    checkpoint, then kills all of it with `kill -9`."""
    job = start_job(
        db,
        "--mode",
        "prepared",
        "--count",
        str(COUNT),
        "--checkpoint-dir",
        str(tmp_path / f"checkpoints-{name}"),
        *SLOW,
        *job_args,
        extra_env=sink_fault(tmp_path / f"pause-{name}", "pause", nth=nth),
        log_path=tmp_path / f"{name}.log",
    )
    try:
        wait_for(lambda: sink_fault_report(tmp_path / f"pause-{name}"), 180, "a writer to pause")
    finally:
        kill_job(job)


def retained_and_older_than_committed(db, checkpoint_root):
    """(every retained complete checkpoint, those older than the newest committed one), oldest
    first; fails the test if none is older."""
    retained = sorted(
        (p for p in checkpoint_root.glob("*/chk-*") if (p / "_metadata").exists()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    with db.connect() as conn:
        newest_committed = conn.execute("SELECT max(counter) FROM tpc_commit_log").fetchone()[0]
    older = [p for p in retained if int(p.name.split("-")[1]) < newest_committed]
    assert older, f"no retained checkpoint older than committed {newest_committed}: {retained}"
    return retained, older


# The refusal is the commit log's, the same in both modes: `prepared` with `-m campaign`.
@pytest.mark.parametrize("mode", [pytest.param("prepared", marks=pytest.mark.campaign), "staged"])
def test_restoring_an_older_checkpoint_than_committed_is_refused(database, tmp_path, mode):
    """The operator's classic mistake: restoring a retained checkpoint older than the newest one
    that was committed. Any sink would replay (and apply twice) what was committed since; this
    one finds it in its commit log and refuses, before a single row moves."""
    create_sequence_table(database)
    run_until_paused(database, tmp_path, "first", 8, "--mode", mode)
    retained, older = retained_and_older_than_committed(database, tmp_path / "checkpoints-first")
    rows_before = id_counts(database)[0]

    result = run_job(
        database,
        "--mode",
        mode,
        "--count",
        str(COUNT),
        "--restart-attempts",
        "0",
        "--from-checkpoint",
        str(older[-1]),
    )
    assert result.returncode != 0
    assert "refuses to restore checkpoint" in result.stderr
    assert id_counts(database)[0] == rows_before, "rows moved although the restore was refused"

    result = run_job(
        database, "--mode", mode, "--count", str(COUNT), "--from-checkpoint", str(retained[-1])
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert id_counts(database) == (COUNT, COUNT)
    assert dangling(database) == (0, 0, 0)


def test_after_a_scale_up_restoring_an_older_checkpoint_is_still_refused(database, tmp_path):
    """A job at parallelism 2 is killed and restored at 3 (a subtask without state joins, and
    takes the lineage of the others), runs on and is killed again; restoring an older checkpoint
    of the scaled-up run is refused."""
    create_sequence_table(database)
    run_until_paused(database, tmp_path, "p2", 3)
    run_until_paused(
        database,
        tmp_path,
        "p3",
        10,
        "--parallelism",
        "3",
        "--from-checkpoint",
        str(newest_complete_checkpoint(tmp_path / "checkpoints-p2")),
    )
    with database.connect() as conn:
        lineages = dict(conn.execute("SELECT subtask, lineage FROM tpc_writer_owners"))
    # The added subtask (no state of its own) took a sibling's lineage, so it checks too.
    assert sorted(lineages) == [0, 1, 2] and lineages[2] in (lineages[0], lineages[1])
    assert all(lineages.values())
    _, older = retained_and_older_than_committed(database, tmp_path / "checkpoints-p3")
    rows_before = id_counts(database)[0]

    result = run_job(
        database,
        "--mode",
        "prepared",
        "--count",
        str(COUNT),
        "--parallelism",
        "3",
        "--restart-attempts",
        "0",
        "--from-checkpoint",
        str(older[0]),
    )
    assert result.returncode != 0
    assert "refuses to restore checkpoint" in result.stderr
    assert id_counts(database)[0] == rows_before, "rows moved although the restore was refused"
