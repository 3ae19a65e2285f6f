"""`python -m sinks.admin`: lists a database's sink leftovers per sink id, and aborts or purges
those of one sink id, after confirmation, and never while that sink id's job is connected.

The leftovers are made by hand: prepared transactions with `tpc:` ids, staged batches,
commit-log rows, dead letters and writer-owner rows of two sink ids, `pay_1` and `payX1`. In a
`LIKE` pattern the `_` of `pay_1` matches the `X`: every test that touches `pay_1` checks that
`payX1` kept everything."""

import io
import subprocess
import sys

import pytest

from localenv.paths import PROJECT_ROOT
from sinks import admin
from sinks.control_tables import is_session_of
from sinks.positions import ensure_positions_table, read_positions

SINKS = ("pay_1", "payX1")
PASSWORD_ENV = "TPC_TEST_ADMIN_PASSWORD"

CONTROL_TABLES = """
CREATE TABLE tpc_commit_log (gid text PRIMARY KEY, sink_id text NOT NULL, subtask int NOT NULL,
    counter bigint NOT NULL, row_count bigint NOT NULL, mode text NOT NULL,
    lineage text NOT NULL DEFAULT '', written_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tpc_staged_batches (gid text PRIMARY KEY, sink_id text NOT NULL,
    subtask int NOT NULL, counter bigint NOT NULL, row_count bigint NOT NULL,
    lineage text NOT NULL DEFAULT '', staged_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tpc_staged_rows (gid text NOT NULL, seq bigint NOT NULL, payload bytea NOT NULL,
    PRIMARY KEY (gid, seq));
CREATE TABLE tpc_dead_letters (id bigserial PRIMARY KEY, sink_id text NOT NULL,
    subtask int NOT NULL, gid text, statement int NOT NULL, sqlstate text, message text NOT NULL,
    fields jsonb NOT NULL, payload bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tpc_writer_owners (sink_id text NOT NULL, subtask int NOT NULL,
    job_id text NOT NULL, attempt int NOT NULL, pid int NOT NULL, since timestamptz NOT NULL,
    PRIMARY KEY (sink_id, subtask));
CREATE TABLE target (k text PRIMARY KEY);
"""
# Source positions (sinks/positions.py) of pay_1 only: two files, 30 lines applied.
POSITIONS = """
INSERT INTO tpc_source_positions (sink_id, source, last_position, lines, bytes, digest) VALUES
    ('pay_1', '/in/a.jsonl', 10, 10, 900, 1), ('pay_1', '/in/b.jsonl', 20, 20, 1800, 2);
"""


def gid(sink_id, subtask, counter):
    return f"tpc:{sink_id}:{subtask}:{counter}:0123456789abcdef.0"


@pytest.fixture
def db(database, monkeypatch):
    """A database with leftovers of both sink ids; rolls back what a test leaves prepared."""
    monkeypatch.setenv(PASSWORD_ENV, database.password)
    with database.connect(autocommit=True) as conn:
        conn.execute(CONTROL_TABLES)
        ensure_positions_table(conn)
        conn.execute(POSITIONS)
        for n, sink_id in enumerate(SINKS):
            for subtask in (0, 1):  # 2 prepared transactions per sink id
                conn.execute("BEGIN")
                conn.execute("INSERT INTO target VALUES (%s)", (f"{sink_id}-{subtask}",))
                conn.execute(f"PREPARE TRANSACTION '{gid(sink_id, subtask, 7)}'")
            for counter in (3, 4, 5):  # 3 staged batches of 2 rows
                g = gid(sink_id, 0, counter)
                conn.execute(
                    "INSERT INTO tpc_staged_batches (gid, sink_id, subtask, counter, "
                    "row_count, staged_at) VALUES (%s, %s, 0, %s, 2, "
                    "now() - interval '2 hours')",
                    (g, sink_id, counter),
                )
                conn.execute(
                    "INSERT INTO tpc_staged_rows VALUES (%s, 1, 'a'), (%s, 2, 'b')", (g, g)
                )
            conn.execute(
                "INSERT INTO tpc_commit_log (gid, sink_id, subtask, counter, "
                "row_count, mode, written_at) SELECT 'tpc:' || %s || ':0:' || c || "
                "':x.0', %s, 0, c, 1, 'STAGED', now() - c * interval '1 day' "
                "FROM generate_series(1, %s) c",
                (sink_id, sink_id, 4 + n),
            )
            conn.execute(
                "INSERT INTO tpc_dead_letters (sink_id, subtask, statement, message, "
                "fields, payload) VALUES (%s, 0, 1, 'refused', '{}', '')",
                (sink_id,),
            )
            conn.execute(
                "INSERT INTO tpc_writer_owners VALUES (%s, 0, 'job', 0, 1, now())", (sink_id,)
            )
    yield database
    with database.connect(autocommit=True) as conn:
        for (g,) in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall():
            conn.execute(f"ROLLBACK PREPARED '{g}'")


def run(db, *args, stdin=None, monkeypatch=None, capsys=None):
    """main() in this process: (exit status, stdout, stderr)."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = admin.main(
        [*args, "--db-url", db.jdbc_url, "--db-user", db.user, "--password-env", PASSWORD_ENV]
    )
    out, err = capsys.readouterr()
    return status, out, err


def state(db, sink_id):
    """(prepared, staged batches, staged rows, commit-log rows, dead letters, owners)."""
    prefix = admin.prefix_of(sink_id)
    with db.connect() as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() "
            "AND starts_with(gid, %(p)s)), "
            "(SELECT count(*) FROM tpc_staged_batches WHERE sink_id = %(s)s), "
            "(SELECT count(*) FROM tpc_staged_rows WHERE starts_with(gid, %(p)s)), "
            "(SELECT count(*) FROM tpc_commit_log WHERE sink_id = %(s)s), "
            "(SELECT count(*) FROM tpc_dead_letters WHERE sink_id = %(s)s), "
            "(SELECT count(*) FROM tpc_writer_owners WHERE sink_id = %(s)s)",
            {"p": prefix, "s": sink_id},
        ).fetchone()


FULL = {"pay_1": (2, 3, 6, 4, 1, 1), "payX1": (2, 3, 6, 5, 1, 1)}


def test_list_shows_each_sink_id_with_counts_and_ages(db, capsys):
    status, out, _ = run(db, "list", capsys=capsys)
    assert status == 0, out
    # The table, without the note on other databases of the shared server that may follow it.
    lines = out.split("\n\n")[0].splitlines()
    assert lines[0].split()[:3] == ["sink", "id", "prepared"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(SINKS)
    # sink id, prepared, oldest, batches, staged rows, oldest staged (2h 0m), commit log,
    # last commit (date, time), dead letters, sources (lines), sessions
    for sink_id, log_rows, sources in (("pay_1", "4", ["2", "(30)"]), ("payX1", "5", ["0", "(0)"])):
        row = rows[sink_id]
        assert row[1] == "2" and row[2].endswith("s"), row
        assert row[3:8] == ["3", "6", "2h", "0m", log_rows], row
        assert row[-4:] == ["1", *sources, "0"], row
    status, out, _ = run(db, "list", "--sink-id", "pay_1", capsys=capsys)
    table = out.split("\n\n")[0].splitlines()
    assert status == 0 and [line.split()[0] for line in table[1:3]] == ["pay_1", "/in/a.jsonl:"]
    assert "/in/b.jsonl: 20 lines applied, last position 20, 1,800 bytes, at " in out
    assert state(db, "pay_1") == FULL["pay_1"]  # listing changes nothing


def test_the_readmes_like_recipe_needs_the_escape(db):
    """sinks/README.md: `_` is a LIKE wildcard; the escaped pattern and starts_with agree."""
    with db.connect() as conn:

        def count(condition):
            return conn.execute(
                "SELECT count(*) FROM pg_prepared_xacts WHERE database = "
                "current_database() AND " + condition
            ).fetchone()[0]

        assert count("gid LIKE 'tpc:pay_1:%'") == 4  # payX1's too
        assert count(r"gid LIKE 'tpc:pay\_1:%'") == 2
        assert count("starts_with(gid, 'tpc:pay_1:')") == 2


def test_abort_asks_for_the_sink_id_and_touches_only_that_sink(db, capsys, monkeypatch):
    status, out, err = run(
        db, "abort", "--sink-id", "pay_1", stdin="pay1\n", monkeypatch=monkeypatch, capsys=capsys
    )
    assert status == 1 and "not confirmed" in err
    assert "2 prepared transaction(s)" in out and "Type the sink id" in out
    assert state(db, "pay_1") == FULL["pay_1"]
    status, out, err = run(
        db, "abort", "--sink-id", "pay_1", stdin="", monkeypatch=monkeypatch, capsys=capsys
    )  # end of input: not confirmed
    assert status == 1 and state(db, "pay_1") == FULL["pay_1"]

    status, out, err = run(
        db, "abort", "--sink-id", "pay_1", stdin="pay_1\n", monkeypatch=monkeypatch, capsys=capsys
    )
    assert status == 0, err
    assert "rolled back 2 prepared transaction(s), deleted 3 staged batch(es) (6 rows)" in out
    # the commit log, dead letters and owners stay; the other sink id keeps everything
    assert state(db, "pay_1") == (0, 0, 0, 4, 1, 1)
    assert state(db, "payX1") == FULL["payX1"]
    with db.connect() as conn:  # the row locks went with the rollback, not payX1's
        conn.execute("SET lock_timeout = '2s'")
        conn.execute("INSERT INTO target VALUES ('pay_1-0'), ('pay_1-1')")
        with pytest.raises(Exception, match="lock timeout"):
            conn.execute("INSERT INTO target VALUES ('payX1-0')")


def test_purge_with_yes_retires_the_sink_id_and_keeps_dead_letters_unless_asked(db, capsys):
    status, out, err = run(db, "purge", "--sink-id", "pay_1", "--yes", capsys=capsys)
    assert status == 0, err
    assert "Type the sink id" not in out
    assert "4 commit-log row(s), 1 writer-owner row(s), 0 dead letter(s), 2 source" in out
    assert state(db, "pay_1") == (0, 0, 0, 0, 1, 0)
    with db.connect() as conn:  # a new run of the sink id would read its sources from the start
        assert read_positions(conn, "pay_1") == {}
    assert state(db, "payX1") == FULL["payX1"]
    status, out, err = run(
        db, "purge", "--sink-id", "pay_1", "--yes", "--dead-letters", capsys=capsys
    )
    assert status == 0, err
    assert state(db, "pay_1") == (0, 0, 0, 0, 0, 0)
    assert state(db, "payX1") == FULL["payX1"]


def test_refuses_while_a_session_of_the_sink_id_is_connected(db, capsys):
    import psycopg

    with psycopg.connect(
        db.conninfo, password=db.password, application_name="tpc-sink-pay_1-1-writer"
    ):
        status, out, err = run(db, "abort", "--sink-id", "pay_1", "--yes", capsys=capsys)
        assert status == 1
        assert "refusing to abort sink id 'pay_1'" in err and "tpc-sink-pay_1-1-writer" in err
        assert state(db, "pay_1") == FULL["pay_1"]
        # a session of another sink id, even one LIKE would confuse, does not stop payX1
        status, out, err = run(db, "abort", "--sink-id", "payX1", "--yes", capsys=capsys)
        assert status == 0, err
        status, out, _ = run(db, "list", "--sink-id", "pay_1", capsys=capsys)
        assert out.splitlines()[1].split()[-1] == "1"  # the session is listed
        status, out, err = run(db, "purge", "--sink-id", "pay_1", "--yes", "--force", capsys=capsys)
        assert status == 0, err
        assert "--force: going on" in out
    assert state(db, "pay_1") == (0, 0, 0, 0, 1, 0)


def test_session_names_are_matched_exactly():
    assert is_session_of("tpc-sink-a-0-writer", "a")
    assert is_session_of("tpc-sink-a-12-committer", "a")
    assert not is_session_of("tpc-sink-a-b-0-writer", "a")  # sink id 'a-b'
    assert not is_session_of("tpc-sink-aXb-0-writer", "a_b")
    long_id = "x" * 64  # the server keeps 63 bytes of the name
    assert is_session_of(f"tpc-sink-{long_id}-0-writer"[:63], long_id)


def test_command_line_exit_codes(db):
    base = [sys.executable, "-m", "sinks.admin"]
    connection = ["--db-url", db.jdbc_url, "--db-user", db.user, "--password-env", PASSWORD_ENV]
    env = {"PATH": "/usr/bin:/bin", PASSWORD_ENV: db.password}

    def cli(*args):
        return subprocess.run(
            [*base, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    listed = cli("list", *connection)
    assert listed.returncode == 0 and "pay_1" in listed.stdout, listed.stderr
    assert cli("abort", *connection).returncode == 2  # --sink-id required
    assert cli("abort", "--sink-id", "bad:id", *connection).returncode == 2
    unreachable = ["--db-url", "jdbc:postgresql://127.0.0.1:1/x", "--db-user", "u"]
    nobody = cli("list", *unreachable)
    assert nobody.returncode == 2
    assert (
        "admin: cannot connect to jdbc:postgresql://127.0.0.1:1/x: nothing accepts connections "
        "at host 127.0.0.1 port 1 (Connection refused)"
    ) in nobody.stderr, nobody.stderr
    refused = cli("list", "--db-url", f"{db.jdbc_url}?sslMode=require", "--db-user", db.user)
    assert refused.returncode == 2
    assert "admin: --db-url: JDBC URL parameter sslMode is not understood" in refused.stderr
    aborted = subprocess.run(
        [*base, "abort", "--sink-id", "payX1", *connection],
        input="payX1\n",
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert aborted.returncode == 0, aborted.stderr
    assert state(db, "payX1")[:3] == (0, 0, 0)
