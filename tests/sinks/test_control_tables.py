"""`sinks.control_tables` without a job: a database the sink never used reads as empty (the
sink creates its tables on first use), and each reader returns typed rows of the sink ids asked
for. The readers' users are tested with it: tests/sinks/test_admin.py, tests/jobs/test_audit.py."""

from psycopg.types.json import Jsonb

from sinks import control_tables as ct
from tests.sinks.test_admin import CONTROL_TABLES


def test_a_database_the_sink_never_used_reads_as_empty(database):
    with database.connect() as conn:
        assert ct.existing_table(conn, "public", ct.COMMIT_LOG) is None
        assert ct.prepared_transactions(conn) == []
        assert ct.staged_batches(conn) == [] and ct.staged_row_count(conn) == 0
        assert ct.pending_work(conn) == []
        assert ct.commit_logs(conn) == {} and ct.dead_letter_counts(conn) == {}
        assert ct.dead_letters(conn, "public", ["a"]) is None  # no dead-letter policy yet
        assert ct.sink_sessions(conn) == []


def test_each_reader_keeps_to_the_sink_ids_asked_for(database):
    with database.connect(autocommit=True) as conn:
        conn.execute(CONTROL_TABLES)
        for sink_id, rows in (("a_1", 3), ("aX1", 5)):  # `_` is no wildcard
            gid = f"tpc:{sink_id}:0:1:x.0"
            conn.execute(
                "INSERT INTO tpc_staged_batches (gid, sink_id, subtask, counter, row_count) "
                "VALUES (%s, %s, 0, 1, %s)",
                (gid, sink_id, rows),
            )
            conn.execute("INSERT INTO tpc_staged_rows VALUES (%s, 1, 'a')", (gid,))
            conn.execute(
                "INSERT INTO tpc_commit_log (gid, sink_id, subtask, counter, row_count, mode) "
                "VALUES (%s, %s, 0, 0, %s, 'STAGED')",
                (f"tpc:{sink_id}:0:0:x.0", sink_id, rows),
            )
            conn.execute(
                "INSERT INTO tpc_dead_letters (sink_id, subtask, statement, message, fields, "
                "payload) VALUES (%s, 0, 2, 'refused', %s, '')",
                (sink_id, Jsonb({"k": sink_id})),
            )
        (batch,) = ct.staged_batches(conn, sink_id="a_1")
        assert (batch.gid, batch.sink_id, batch.rows) == ("tpc:a_1:0:1:x.0", "a_1", 3)
        assert ct.staged_row_count(conn, sink_id="a_1") == 1 and ct.staged_row_count(conn) == 2
        assert [p.kind for p in ct.pending_work(conn)] == ["staged batch"] * 2
        (log,) = ct.commit_logs(conn, sink_ids=["aX1", "other"]).values()
        assert (log.sink_id, log.commits, log.rows) == ("aX1", 1, 5)
        assert ct.dead_letter_counts(conn) == {"a_1": 1, "aX1": 1}
        (letter,) = ct.dead_letters(conn, "public", ["a_1"])
        assert (letter.sink_id, letter.statement, letter.fields) == ("a_1", 2, {"k": "a_1"})
