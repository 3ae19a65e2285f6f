"""Fault campaign (not in CI: `pytest -m campaign`): one job, killed with `kill -9` at random
moments again and again, each time restored from its newest retained checkpoint at a random
parallelism, until it finishes. The table must hold every id exactly once; the at-least-once
control run through the same kills must not.

All three runs follow one schedule (one seed). The first kill is not left to chance: it lands
while a writer is paused right after a checkpoint's rows became durable, before that checkpoint
completed, so the control provably writes those rows twice; the later kills land at random."""

import random
import time

import pytest

from tests.sinks.support import (
    create_sequence_table,
    dangling,
    id_counts,
    kill_job,
    missing_ids,
    newest_complete_checkpoint,
    replayed_rows,
    sink_fault,
    sink_fault_report,
    start_job,
    wait_for,
)

pytestmark = [pytest.mark.campaign, pytest.mark.minicluster, pytest.mark.chaos]

COUNT = 60_000
KILLS = 8
SEED = 11


def finished(log) -> bool:
    """The job reported its end (a finished job's checkpoints are discarded by Flink)."""
    return log.exists() and " finished: " in log.read_text(errors="replace")


def run_campaign(db, tmp_path, mode, seed=SEED) -> int:
    """Returns how many times the job was killed before it finished."""
    rng = random.Random(seed)
    create_sequence_table(db)
    checkpoint = None
    kills = 0
    for attempt in range(KILLS + 1):
        args = [
            "--mode",
            mode,
            "--count",
            str(COUNT),
            "--batch-size",
            "50",
            "--parallelism",
            str(rng.choice([1, 2, 3])),
            "--checkpoint-dir",
            str(tmp_path / f"checkpoints-{attempt}"),
            "--throttle-every",
            "5",
            "--throttle-ms",
            "2",
        ]
        if checkpoint:
            args += ["--from-checkpoint", str(checkpoint)]
        pause = tmp_path / "pause"
        first_pause = sink_fault(pause, "pause", nth=rng.randint(3, 6)) if attempt == 0 else {}
        job = start_job(db, *args, extra_env=first_pause, log_path=tmp_path / f"run-{attempt}.log")
        if first_pause:
            wait_for(lambda pause=pause: sink_fault_report(pause), 300, "the first writer to pause")
            kill_job(job)
            kills += 1
            checkpoint = newest_complete_checkpoint(tmp_path / f"checkpoints-{attempt}")
            continue
        if attempt == KILLS:
            assert job.wait(timeout=600) == 0, (tmp_path / f"run-{attempt}.log").read_text()[-3000:]
            return kills
        # A job takes about 5 s to start: kills land from start-up to deep into processing.
        log = tmp_path / f"run-{attempt}.log"
        deadline = time.monotonic() + rng.uniform(4, 14)
        while time.monotonic() < deadline and job.poll() is None and not finished(log):
            time.sleep(0.05)
        if job.poll() is not None or finished(log):
            assert job.wait(timeout=120) == 0, log.read_text()[-3000:]
            return kills  # finished before this kill
        kill_job(job)
        if finished(log):
            # Killed in the instant after its end: its checkpoints are gone with it, and
            # restoring an older one would be refused (see test_kill_and_restore).
            return kills
        kills += 1
        checkpoint = newest_complete_checkpoint(tmp_path / f"checkpoints-{attempt}") or checkpoint


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_repeated_kill_9_and_restore_is_exactly_once(database, tmp_path, mode):
    kills = run_campaign(database, tmp_path, mode)
    assert kills >= KILLS // 2, f"only {kills} kills landed before the job finished"
    assert id_counts(database) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)


def test_control_at_least_once_duplicates_under_the_same_kills(database, control_seen, tmp_path):
    assert run_campaign(database, tmp_path, "at_least_once") >= KILLS // 2
    replayed = replayed_rows(tmp_path / "pause")
    rows, distinct = id_counts(database)
    assert distinct == COUNT
    control_seen(rows - COUNT, replayed)
    assert rows >= COUNT + replayed
