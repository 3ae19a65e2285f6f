"""What a run's progress lines count in the database (`jobs.progress`): the lines committed
since the run started, and of them those that ended in the tables the job names."""

from collections.abc import Sequence
from typing import Any, Optional

from jobs.kit.config import JobConfig

__all__ = ["CommittedLines"]


class CommittedLines:
    """Lines committed since this run started, and of them those in each table of `shown`.
    Earlier runs' rows do not count.

    `positions_sink_id`: the sink id whose source positions (`sinks.positions`) say how many
    lines are applied, committed in the same transaction as the rows; None: every line ends in
    exactly one table of `outcomes`, and their rows are the lines committed. `shown` are tables
    of `outcomes`, counted by name (e.g. rejected and duplicates).

    One connection, opened on first use: 2 s to connect, 2 s a statement, no transaction held
    open; an error drops it (the next call connects again) and raises. One statement reads all
    the counts, so that they come from one snapshot of the database."""

    def __init__(
        self,
        config: JobConfig,
        outcomes: Sequence[str],
        shown: Sequence[str],
        positions_sink_id: Optional[str] = None,
    ):
        self.config = config
        self.positions_sink_id = positions_sink_id
        self.shown = list(shown)
        # With positions, only the shown tables are counted: a count of every row of a large
        # table at every progress line is what positions spare the database.
        self.tables = self.shown if positions_sink_id else list(outcomes)
        self.conn: Any = None
        self.start: Optional[tuple[int, ...]] = None
        try:
            self.start = self.counts()
        except Exception:
            self.close()  # no baseline, no counts: the progress lines go without them

    def __call__(self) -> dict[str, int]:
        if self.start is None:
            raise RuntimeError("no counts at the start of the run")
        lines, *tables = (now - then for now, then in zip(self.counts(), self.start))
        return {"committed": lines, **dict(zip(self.shown, tables))}

    def counts(self) -> tuple[int, ...]:
        """(lines committed, rows of each shown table), as the database holds them now."""
        try:
            if self.conn is None:
                from sinks.database import connect

                self.conn = connect(
                    self.config.db_url,
                    self.config.db_user,
                    self.config.password_env,
                    self.config.password_file,
                    connect_timeout=2,
                    autocommit=True,
                    options="-c statement_timeout=2000",
                )
            row = self.conn.execute(self.statement(), self.parameters()).fetchone()
        except Exception:
            self.close()
            raise
        by_table = dict(zip(self.tables, (int(count) for count in row[1:])))
        lines = int(row[0]) if self.positions_sink_id else sum(by_table.values())
        return (lines, *(by_table[table] for table in self.shown))

    def statement(self):
        from psycopg import sql

        from sinks.positions import POSITIONS_TABLE

        applied = (
            sql.SQL("(SELECT coalesce(sum(lines), 0) FROM {} WHERE sink_id = %s)").format(
                sql.Identifier(POSITIONS_TABLE)
            )
            if self.positions_sink_id
            else sql.SQL("0")
        )
        rows = [
            sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(table))
            for table in self.tables
        ]
        return sql.SQL("SELECT ") + sql.SQL(", ").join([applied, *rows])

    def parameters(self) -> tuple[str, ...]:
        return (self.positions_sink_id,) if self.positions_sink_id else ()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
