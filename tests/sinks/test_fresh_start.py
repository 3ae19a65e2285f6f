"""`sinks.fresh_start` without a job: what the commit log says a sink id applied, and which
retained checkpoint a refused start is pointed to. The refusal itself, through whole jobs, is in
tests/jobs/test_reruns.py."""

import os
import time

import pytest

from sinks.fresh_start import (
    FreshStartRefused,
    applied_runs,
    newest_retained_checkpoint,
    refuse_fresh_start,
)

LOG_DDL = """
    CREATE TABLE tpc_commit_log (
        gid text PRIMARY KEY, sink_id text NOT NULL, subtask int NOT NULL, counter bigint NOT NULL,
        row_count bigint NOT NULL, mode text NOT NULL, lineage text NOT NULL DEFAULT '',
        written_at timestamptz NOT NULL DEFAULT now())"""


def test_the_newest_complete_checkpoint_is_named(tmp_path):
    assert newest_retained_checkpoint(str(tmp_path / "none")) is None
    assert newest_retained_checkpoint(None) is None
    for job, number, complete, age in [
        ("a" * 32, 3, True, 30),
        ("a" * 32, 4, False, 10),  # the newest chk-N of a killed job may lack _metadata
        ("b" * 32, 7, True, 20),
        ("b" * 32, 2, True, 40),
    ]:
        directory = tmp_path / job / f"chk-{number}"
        directory.mkdir(parents=True)
        if complete:
            (directory / "_metadata").write_bytes(b"x")
            then = time.time() - age
            os.utime(directory / "_metadata", (then, then))
    assert newest_retained_checkpoint(str(tmp_path)) == tmp_path / ("b" * 32) / "chk-7"


def test_only_sink_ids_that_committed_are_refused(database):
    with database.connect() as conn:
        assert applied_runs(conn, ["s"]) == []  # no control tables yet: nothing applied
        conn.execute(LOG_DDL)
        conn.execute(
            "INSERT INTO tpc_commit_log (gid, sink_id, subtask, counter, row_count, mode, "
            "written_at) VALUES ('tpc:s:0:1:j.0', 's', 0, 1, 5, 'STAGED', "
            "'2026-12-04 16:40:12+00'), ('tpc:s:1:1:j.0', 's', 1, 1, 5, 'STAGED', "
            "'2026-12-04 16:40:11+00')"
        )
        (entry,) = applied_runs(conn, ["t", "s", "s"])
        assert (entry.sink_id, entry.commits) == ("s", 2)
        # Another sink id: nothing to refuse, and no hint is made.
        refuse_fresh_start(conn, ["t"], lambda: pytest.fail("no refusal, no hint"))
        with pytest.raises(FreshStartRefused) as refused:
            refuse_fresh_start(conn, ["t", "s"], lambda: "Resume it.")
    assert str(refused.value) == (
        "sink 's' refuses a fresh start: it already committed input of an earlier run "
        "(2 transactions in its commit log, the newest at 2026-12-04 16:40:12 UTC). A start "
        "that restores no checkpoint reads its input from the beginning and would apply what "
        "was applied then a second time. Nothing was written. Resume it."
    )
