"""Housekeeping for TwoPhaseCommitSink: list a database's sink leftovers, abort or purge them.

    python -m sinks.admin list  --db-url jdbc:postgresql://HOST:5432/DB --db-user U [--sink-id ID]
    python -m sinks.admin abort --sink-id ID --db-url ... [--yes] [--force]
    python -m sinks.admin purge --sink-id ID --db-url ... [--dead-letters] [--yes] [--force]

`list` shows, per sink id, its prepared transactions, staged batches, commit-log rows, dead
letters, source positions (sources and lines applied, `sinks/positions.py`) and connected
sessions, with ages; with `--sink-id`, also each source's position. `abort` rolls back every
prepared transaction of one sink id and deletes its staged batches: the leftovers of a job that
will not be resumed. `purge` also deletes its commit-log, writer-owner and source-position rows
(and its dead letters with `--dead-letters`): everything of a retired sink id. Both ask you to
type the sink id unless `--yes`, and refuse while a writer or committer of that sink id is
connected unless `--force`. The password comes from the environment (`--password-env`,
default PGPASSWORD). What it shows, it reads through `sinks.control_tables`.

Exit status: 0 done (or nothing to do), 1 refused, not confirmed, or not everything could be
removed, 2 usage or connection error.
"""

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

from sinks.control_tables import (
    COMMIT_LOG,
    DEAD_LETTERS,
    STAGED_BATCHES,
    STAGED_ROWS,
    WRITER_OWNERS,
    commit_logs,
    dead_letter_counts,
    existing_table,
    is_session_of,
    prefix_of,
    prepared_elsewhere,
    prepared_transactions,
    sink_sessions,
    staged_batches,
)
from sinks.positions import POSITIONS_TABLE, read_positions, sources_applied

__all__ = ["SinkLeftovers", "leftovers", "connected_sessions", "abort", "purge", "main"]

SINK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as SinkConfig.SINK_ID
SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # as SinkConfig.SCHEMA
GID_PATTERN = re.compile(r"[A-Za-z0-9_:.\-]+")  # as TransactionId.quoted
# The admin's own statements must not hang behind a lock (an orphan may hold one).
SESSION_SETTINGS = "SET lock_timeout = '10s'; SET statement_timeout = '60s'"


@dataclass
class SinkLeftovers:
    """What one sink id has in a database."""

    sink_id: str
    prepared: int = 0
    oldest_prepared: Optional[timedelta] = None
    staged_batches: int = 0
    staged_rows: int = 0
    oldest_staged: Optional[timedelta] = None
    commit_log_rows: int = 0
    last_commit: Optional[datetime] = None
    dead_letters: int = 0
    sessions: list[str] = field(default_factory=list)
    sources: int = 0  # sources with a position (sinks/positions.py)
    source_lines: int = 0


def connected_sessions(conn, sink_id: str) -> list[str]:
    """Sessions of this sink id's writers and committers connected to this database."""
    return [session.describe() for session in sink_sessions(conn, sink_id)]


def leftovers(
    conn, control_schema: str = "public", sink_id: Optional[str] = None
) -> list[SinkLeftovers]:
    """Per sink id (all, or the one given): prepared transactions in this database, staged
    batches, commit-log rows, dead letters and connected sessions."""
    found: dict[str, SinkLeftovers] = {}

    def entry(sid: str) -> SinkLeftovers:
        return found.setdefault(sid, SinkLeftovers(sid))

    for prepared in prepared_transactions(conn, sink_id):
        e = entry(prepared.sink_id)
        e.prepared += 1
        e.oldest_prepared = max(e.oldest_prepared or prepared.age, prepared.age)
    for batch in staged_batches(conn, control_schema, sink_id):
        e = entry(batch.sink_id)
        e.staged_batches += 1
        e.staged_rows += batch.rows
        e.oldest_staged = max(e.oldest_staged or batch.age, batch.age)
    for log in commit_logs(conn, control_schema, None if sink_id is None else [sink_id]).values():
        e = entry(log.sink_id)
        e.commit_log_rows, e.last_commit = log.commits, log.newest
    for sid, count in dead_letter_counts(conn, control_schema, sink_id).items():
        entry(sid).dead_letters = count
    for applied in sources_applied(conn, control_schema, sink_id).values():
        e = entry(applied.sink_id)
        e.sources, e.source_lines = applied.sources, applied.lines
    for session in sink_sessions(conn):
        for sid in [sink_id] if sink_id else list(found):
            if is_session_of(session.application_name, sid):
                entry(sid).sessions.append(session.application_name)
    if sink_id is not None:
        entry(sink_id)
    return [found[sid] for sid in sorted(found)]


def _age(value: Optional[timedelta]) -> str:
    if value is None:
        return "-"
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def render(entries: list[SinkLeftovers]) -> str:
    """A table, one line per sink id."""
    header = (
        "sink id",
        "prepared",
        "oldest prepared",
        "staged batches",
        "staged rows",
        "oldest staged",
        "commit log",
        "last commit",
        "dead letters",
        "sources (lines)",
        "sessions",
    )
    lines = [header]
    for e in entries:
        last = e.last_commit.astimezone().strftime("%Y-%m-%d %H:%M:%S") if e.last_commit else "-"
        lines.append(
            (
                e.sink_id,
                f"{e.prepared:,}",
                _age(e.oldest_prepared),
                f"{e.staged_batches:,}",
                f"{e.staged_rows:,}",
                _age(e.oldest_staged),
                f"{e.commit_log_rows:,}",
                last,
                f"{e.dead_letters:,}",
                f"{e.sources:,} ({e.source_lines:,})",
                f"{len(e.sessions):,}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


@dataclass
class Removed:
    rolled_back: int = 0
    staged_batches: int = 0
    staged_rows: int = 0
    commit_log_rows: int = 0
    writer_owners: int = 0
    dead_letters: int = 0
    positions: int = 0
    failures: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [
            f"rolled back {self.rolled_back} prepared transaction(s)",
            f"deleted {self.staged_batches} staged batch(es) ({self.staged_rows} rows)",
        ]
        if self.commit_log_rows or self.writer_owners or self.dead_letters or self.positions:
            parts.append(f"{self.commit_log_rows} commit-log row(s)")
            parts.append(f"{self.writer_owners} writer-owner row(s)")
            parts.append(f"{self.dead_letters} dead letter(s)")
            parts.append(f"{self.positions} source position(s)")
        return ", ".join(parts)


def abort(conn, sink_id: str, control_schema: str = "public") -> Removed:
    """Rolls back every prepared transaction of the sink id in this database and deletes its
    staged batches. `conn` must be in autocommit mode (ROLLBACK PREPARED cannot run inside a
    transaction block)."""
    from psycopg import sql

    _require_sink_id(sink_id)
    removed = Removed()
    for gid in [prepared.gid for prepared in prepared_transactions(conn, sink_id)]:
        if not GID_PATTERN.fullmatch(gid):
            removed.failures.append(f"{gid!r}: not a transaction id of this sink, left alone")
            continue
        try:
            conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))
            removed.rolled_back += 1
        except Exception as error:  # reported, the others still go
            removed.failures.append(f"{gid}: {_first_line(error)}")
    batches = existing_table(conn, control_schema, STAGED_BATCHES)
    rows = existing_table(conn, control_schema, STAGED_ROWS)
    with conn.transaction():
        if rows:
            removed.staged_rows = conn.execute(
                sql.SQL("DELETE FROM {} WHERE starts_with(gid, %s)").format(rows),
                (prefix_of(sink_id),),
            ).rowcount
        if batches:
            removed.staged_batches = conn.execute(
                sql.SQL("DELETE FROM {} WHERE sink_id = %s OR starts_with(gid, %s)").format(
                    batches
                ),
                (sink_id, prefix_of(sink_id)),
            ).rowcount
    return removed


def purge(
    conn, sink_id: str, control_schema: str = "public", dead_letters: bool = False
) -> Removed:
    """`abort`, then deletes the sink id's commit-log and writer-owner rows, and with
    `dead_letters` its dead letters: nothing of the sink id is left."""
    from psycopg import sql

    removed = abort(conn, sink_id, control_schema)
    with conn.transaction():
        for attribute, name, wanted in (
            ("commit_log_rows", COMMIT_LOG, True),
            ("writer_owners", WRITER_OWNERS, True),
            # Without its positions a new run of the sink id reads its sources from the start.
            ("positions", POSITIONS_TABLE, True),
            ("dead_letters", DEAD_LETTERS, dead_letters),
        ):
            table = existing_table(conn, control_schema, name)
            if table and wanted:
                setattr(
                    removed,
                    attribute,
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE sink_id = %s").format(table), (sink_id,)
                    ).rowcount,
                )
    return removed


def _require_sink_id(sink_id: str) -> None:
    if not SINK_ID_PATTERN.fullmatch(sink_id or ""):
        raise ValueError(f"sink id {sink_id!r} is invalid: 1 to 64 characters from A-Z a-z 0-9 _ -")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# --------------------------------------------------------------------------- command


def _parser() -> argparse.ArgumentParser:
    from sinks.database import add_connection_arguments

    common = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(common)
    common.add_argument(
        "--control-schema",
        default="public",
        help="schema of the sink's control tables (default public)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m sinks.admin",
        description=__doc__.splitlines()[0],
        epilog="exit status: 0 done, 1 refused or not confirmed or incomplete, "
        "2 usage or connection error",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser(
        "list",
        parents=[common],
        help="per sink id: prepared transactions, staged batches, "
        "commit log, dead letters, sessions, with ages",
    )
    listing.add_argument("--sink-id", help="only this sink id")
    for name, text in (
        ("abort", "roll back the sink id's prepared transactions and delete its staged batches"),
        (
            "purge",
            "abort, then delete the sink id's commit-log and writer-owner rows: retire the sink id",
        ),
    ):
        command = commands.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument("--sink-id", required=True)
        command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        command.add_argument(
            "--force",
            action="store_true",
            help="go on even while a writer or committer of the sink id is connected",
        )
        if name == "purge":
            command.add_argument(
                "--dead-letters",
                action="store_true",
                help="delete the sink id's dead letters too (kept by default)",
            )
    return parser


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    if args.sink_id is not None and not SINK_ID_PATTERN.fullmatch(args.sink_id):
        print(
            f"admin: sink id {args.sink_id!r} is invalid: 1 to 64 characters from A-Z a-z 0-9 _ -",
            file=sys.stderr,
        )
        return 2
    if not SCHEMA_PATTERN.fullmatch(args.control_schema):
        print(f"admin: control schema {args.control_schema!r} is invalid", file=sys.stderr)
        return 2
    from sinks.database import jdbc_to_params

    try:
        jdbc_to_params(args.db_url, args.db_user)
    except ValueError as error:
        print(f"admin: --db-url: {error}", file=sys.stderr)
        return 2
    import psycopg

    from sinks.database import CannotConnect, connect

    try:
        with connect(
            args.db_url,
            args.db_user,
            args.password_env,
            args.password_file,
            connect_timeout=10,
            autocommit=True,
        ) as conn:
            conn.execute(SESSION_SETTINGS)
            if args.command == "list":
                return _list(conn, args)
            return _remove(conn, args)
    except CannotConnect as error:  # says which check failed
        print(f"admin: {error}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"admin: cannot reach the database: {_first_line(error)}", file=sys.stderr)
        return 2
    except psycopg.Error as error:
        print(f"admin: {args.command} failed: {_first_line(error)}", file=sys.stderr)
        return 1


def _list(conn, args) -> int:
    entries = leftovers(conn, args.control_schema, args.sink_id)
    if not entries:
        print("no sink leftovers in this database")
    else:
        print(render(entries))
    if args.sink_id is not None:
        for position in read_positions(conn, args.sink_id, args.control_schema).values():
            at = position.updated_at
            when = at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-"
            print(
                f"  {position.source}: {position.lines:,} lines applied, "
                f"last position {position.last_position:,}, {position.bytes:,} bytes, at {when}"
            )
    elsewhere = prepared_elsewhere(conn)
    if elsewhere:
        print(
            f"\n{elsewhere} prepared transaction(s) with a tpc: id in other databases of this "
            "server (they hold back VACUUM here too; run this command against those "
            "databases)"
        )
    return 0


def _remove(conn, args) -> int:
    sink_id = args.sink_id
    sessions = connected_sessions(conn, sink_id)
    if sessions and not args.force:
        print(
            f"admin: refusing to {args.command} sink id '{sink_id}': a job using it is "
            f"connected to this database:\n  "
            + "\n  ".join(sessions)
            + "\nStop that job first (its writers would redo or commit what this removes), or, "
            "if these sessions are stale, pass --force.",
            file=sys.stderr,
        )
        return 1
    before = leftovers(conn, args.control_schema, sink_id)[0]
    purging = args.command == "purge"
    print(
        f"sink id '{sink_id}' in this database:\n"
        f"  {before.prepared} prepared transaction(s) (oldest {_age(before.oldest_prepared)})"
        f" to roll back\n"
        f"  {before.staged_batches} staged batch(es), {before.staged_rows} rows, to delete"
    )
    if purging:
        kept = "delete" if args.dead_letters else "keep (pass --dead-letters to delete)"
        print(
            f"  {before.commit_log_rows} commit-log row(s) and its writer-owner rows to "
            f"delete\n  {before.dead_letters} dead letter(s) to {kept}\n"
            "A job restored afterwards from a checkpoint of this sink id fails "
            "(its transactions look lost): start it without a checkpoint."
        )
    else:
        print(
            "Rows of the rolled-back transactions are never applied: do this only for a "
            "job that will not be resumed from the checkpoint that holds them."
        )
    if sessions:
        print("--force: going on although these are connected:\n  " + "\n  ".join(sessions))
    if not args.yes:
        try:
            answer = input("Type the sink id to confirm: ")
        except EOFError:
            answer = ""
        if answer.strip() != sink_id:
            print("not confirmed: nothing changed", file=sys.stderr)
            return 1
    removed = (
        purge(conn, sink_id, args.control_schema, args.dead_letters)
        if purging
        else abort(conn, sink_id, args.control_schema)
    )
    print(f"{args.command} '{sink_id}': {removed.describe()}")
    for failure in removed.failures:
        print(f"  could not roll back {failure}", file=sys.stderr)
    return 1 if removed.failures else 0


if __name__ == "__main__":
    sys.exit(main())
