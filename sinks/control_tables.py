"""What the sink leaves in a database, read: the one place with the SQL that reads it.

The Java core (`dev.tpc.sink.ControlTables`) keeps per sink id a commit log, staged batches and
their rows, dead letters and writer owners; besides them a sink id has prepared transactions
(`tpc:<sink id>:...` gids) and, while a job runs, sessions named `tpc-sink-<sink id>-...`.
`sinks.admin` lists and removes them, `sinks.fresh_start` asks the commit log, `jobs.audit` and
`jobs.reconcile` count dangling work and dead letters, the tests check nothing dangles: they all
read through the functions below, which return typed rows. The source positions have their
own module (`sinks/positions.py`), which creates, writes and reads that table.

A control table that does not exist yet (the sink creates them on first use) reads as empty,
or as None where "no table" means something of its own (dead letters: no dead-letter policy).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

__all__ = [
    "COMMIT_LOG",
    "DEAD_LETTERS",
    "STAGED_BATCHES",
    "STAGED_ROWS",
    "WRITER_OWNERS",
    "CommitLog",
    "DeadLetterRow",
    "Pending",
    "PreparedTransaction",
    "Session",
    "StagedBatch",
    "commit_logs",
    "dead_letter_counts",
    "dead_letters",
    "existing_table",
    "is_session_of",
    "per_sink_id",
    "pending_work",
    "prefix_of",
    "prepared_elsewhere",
    "prepared_transactions",
    "sink_sessions",
    "staged_batches",
    "staged_row_count",
]

# The control tables' names, as ControlTables.java creates them (in the sink's control schema).
COMMIT_LOG = "tpc_commit_log"
STAGED_BATCHES = "tpc_staged_batches"
STAGED_ROWS = "tpc_staged_rows"
DEAD_LETTERS = "tpc_dead_letters"
WRITER_OWNERS = "tpc_writer_owners"
# PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes.
APPLICATION_NAME_MAX = 63


def prefix_of(sink_id: Optional[str] = None) -> str:
    """Every transaction id of a sink id starts with this (sink ids hold no ':'); without one,
    the prefix of every sink's. Compare with `starts_with(gid, prefix)`: in `LIKE`, the `_` a
    sink id may hold is a wildcard."""
    return f"tpc:{sink_id}:" if sink_id else "tpc:"


def existing_table(conn, control_schema: str, name: str) -> Optional[Any]:
    """The control table as an SQL identifier, or None when it does not exist (yet)."""
    from psycopg import sql

    exists = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        (control_schema, name),
    ).fetchone()[0]
    return sql.Identifier(control_schema, name) if exists else None


def per_sink_id(
    conn, control_schema: str, name: str, aggregates: str, sink_ids: Optional[Iterable[str]]
) -> list[tuple]:
    """Rows of (sink id, *aggregates) of a control table, one per sink id among `sink_ids`
    (every sink id when None); [] when the table does not exist. `aggregates` is SQL."""
    from psycopg import sql

    table = existing_table(conn, control_schema, name)
    if table is None:
        return []
    wanted = None if sink_ids is None else list(sink_ids)
    return conn.execute(
        sql.SQL("SELECT sink_id, {} FROM {}{} GROUP BY sink_id").format(
            sql.SQL(aggregates),  # the callers' constants, never input
            table,
            sql.SQL("" if wanted is None else " WHERE sink_id = ANY(%s)"),
        ),
        () if wanted is None else (wanted,),
    ).fetchall()


# --------------------------------------------------------------------------- dangling work


@dataclass(frozen=True)
class PreparedTransaction:
    gid: str
    sink_id: str
    age: timedelta


def prepared_transactions(conn, sink_id: Optional[str] = None) -> list[PreparedTransaction]:
    """The prepared transactions of a sink id (of every sink without one) in this database,
    oldest first."""
    return [
        PreparedTransaction(gid, sid, age)
        for gid, sid, age in conn.execute(
            "SELECT gid, split_part(gid, ':', 2), now() - prepared FROM pg_prepared_xacts "
            "WHERE database = current_database() AND starts_with(gid, %s) ORDER BY prepared",
            (prefix_of(sink_id),),
        )
    ]


def prepared_elsewhere(conn) -> int:
    """`tpc:` prepared transactions in the server's other databases (they hold back VACUUM
    here too, but can only be rolled back from their own database)."""
    return conn.execute(
        "SELECT count(*) FROM pg_prepared_xacts WHERE database <> "
        "current_database() AND starts_with(gid, 'tpc:')"
    ).fetchone()[0]


@dataclass(frozen=True)
class StagedBatch:
    gid: str
    sink_id: str
    age: timedelta
    rows: int


def staged_batches(
    conn, control_schema: str = "public", sink_id: Optional[str] = None
) -> list[StagedBatch]:
    """The staged batches not yet applied, of a sink id (of every sink without one), oldest
    first."""
    from psycopg import sql

    table = existing_table(conn, control_schema, STAGED_BATCHES)
    if table is None:
        return []
    only = sql.SQL("" if sink_id is None else " WHERE sink_id = %s")
    return [
        StagedBatch(gid, sid, age, rows)
        for gid, sid, age, rows in conn.execute(
            sql.SQL(
                "SELECT gid, sink_id, now() - staged_at, row_count FROM {}{} ORDER BY staged_at"
            ).format(table, only),
            () if sink_id is None else (sink_id,),
        )
    ]


def staged_row_count(conn, control_schema: str = "public", sink_id: Optional[str] = None) -> int:
    """Rows staged for batches not yet applied, of a sink id (of every sink without one)."""
    from psycopg import sql

    table = existing_table(conn, control_schema, STAGED_ROWS)
    if table is None:
        return 0
    return conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE starts_with(gid, %s)").format(table),
        (prefix_of(sink_id),),
    ).fetchone()[0]


@dataclass(frozen=True)
class Pending:
    kind: str  # "prepared transaction" | "staged batch"
    gid: str
    age: timedelta
    rows: Optional[int] = None


def pending_work(conn, control_schema: str = "public") -> list[Pending]:
    """The sinks' dangling work in this database: prepared transactions with a `tpc:` gid and
    staged batches not yet applied (of any sink id: the books are final only without them)."""
    return [Pending("prepared transaction", p.gid, p.age) for p in prepared_transactions(conn)] + [
        Pending("staged batch", b.gid, b.age, b.rows) for b in staged_batches(conn, control_schema)
    ]


# --------------------------------------------------------------------------- commit log


@dataclass(frozen=True)
class CommitLog:
    """What a sink id's commit log holds: its transactions (those of the retention period,
    see Housekeeping.java), their rows, the newest one's time."""

    sink_id: str
    commits: int
    rows: int
    newest: datetime


def commit_logs(
    conn, control_schema: str = "public", sink_ids: Optional[Iterable[str]] = None
) -> dict[str, CommitLog]:
    """The commit log of each of `sink_ids` that has one (of every sink id when None)."""
    return {
        sink_id: CommitLog(sink_id, commits, int(rows), newest)
        for sink_id, commits, rows, newest in per_sink_id(
            conn,
            control_schema,
            COMMIT_LOG,
            "count(*), coalesce(sum(row_count), 0), max(written_at)",
            sink_ids,
        )
    }


# --------------------------------------------------------------------------- dead letters


@dataclass(frozen=True)
class DeadLetterRow:
    """A row the sink could not write and set aside: its sink id, the number of the statement
    that refused it (in the order the sink's tables were added), its fields as texts, and the
    database's reason."""

    sink_id: str
    statement: int
    fields: dict[str, Any]
    sqlstate: Optional[str]
    message: Optional[str]


def dead_letters(
    conn, control_schema: str, sink_ids: Iterable[str]
) -> Optional[list[DeadLetterRow]]:
    """The dead letters of `sink_ids`; None when the sink has no dead-letter table."""
    from psycopg import sql

    table = existing_table(conn, control_schema, DEAD_LETTERS)
    if table is None:
        return None
    return [
        DeadLetterRow(sink_id, statement, dict(fields or {}), sqlstate, message)
        for sink_id, statement, fields, sqlstate, message in conn.execute(
            sql.SQL(
                "SELECT sink_id, statement, fields, sqlstate, message FROM {} "
                "WHERE sink_id = ANY(%s)"
            ).format(table),
            (list(sink_ids),),
        )
    ]


def dead_letter_counts(
    conn, control_schema: str = "public", sink_id: Optional[str] = None
) -> dict[str, int]:
    """Dead letters per sink id (of one sink id, or of all)."""
    only = None if sink_id is None else [sink_id]
    return dict(per_sink_id(conn, control_schema, DEAD_LETTERS, "count(*)", only))


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Session:
    """A connected session of some sink's writer or committer."""

    pid: int
    application_name: str
    client: str  # the client's address, or "local"
    since: str  # backend start, to the second

    def describe(self) -> str:
        return f"{self.application_name} (pid {self.pid}, from {self.client}, since {self.since})"


def is_session_of(application_name: str, sink_id: str) -> bool:
    """Whether a session's application_name is a writer's or committer's of this sink id
    (`tpc-sink-<sink id>-<subtask>-writer|committer`, see PgWriter and PgCommitter). Sink ids
    may contain '-', so the subtask number and role must follow: `a` is not `a-b`. A name the
    server cut to 63 bytes counts when it agrees as far as it goes (better refuse than miss)."""
    if re.fullmatch(rf"tpc-sink-{re.escape(sink_id)}-\d+-(writer|committer).*", application_name):
        return True
    own = f"tpc-sink-{sink_id}-"
    return len(application_name.encode()) >= APPLICATION_NAME_MAX and (
        own.startswith(application_name) or application_name.startswith(own)
    )


def sink_sessions(conn, sink_id: Optional[str] = None) -> list[Session]:
    """The sessions of a sink id's writers and committers (of every sink's without one)
    connected to this database, this one excepted."""
    sessions = [
        Session(*row)
        for row in conn.execute(
            "SELECT pid, application_name, coalesce(host(client_addr), 'local'), "
            "date_trunc('second', backend_start)::text FROM pg_stat_activity "
            "WHERE datname = current_database() AND starts_with(application_name, 'tpc-sink-') "
            "AND pid <> pg_backend_pid()"
        )
    ]
    if sink_id is None:
        return sessions
    return [s for s in sessions if is_session_of(s.application_name, sink_id)]
