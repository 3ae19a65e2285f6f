"""The tables the payments job writes, each declared once: its columns with their Python, Flink
and SQL types and constraints.

Everything else is derived from `TABLES` here: the Flink row types the sinks take
(`transforms.flink_adapters.row_type`), the insert statements (`insert_sql`), the DDL
(`create_table_sql`) and the schema check (`expected_columns`) of `jobs.payments_schema`.
`tests/transforms/test_tables.py` checks that they, and the row shapes of
`transforms.payments` (`LedgerRow`, `BalanceRow`, `RejectedRow`), agree with it.

Plain data and the standard library only (no Beam, no Flink): jobs and transforms both import
it. Flink types are named by their `pyflink.common.Types` factory (``"STRING"``, ``"LONG"``,
``"BIG_DEC"``, ``"BYTES"`` for a byte array).

Adding a column: add it at the end of its table, nullable or with a default (rows of older
versions lack it). That is all: the job writes it as NULL until a rule fills it, which you do by
adding the field to the row shape in `transforms/payments.py` (and, for the ledger, duplicates
and conflicting duplicates, to `PAYMENT_ROW_TYPE` and `payment_fields`). An existing database
needs the ``ALTER TABLE`` that `jobs.payments_schema` prints, by hand.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

FLINK_TYPES = ("STRING", "LONG", "BIG_DEC", "BYTES")


@dataclass(frozen=True)
class Column:
    name: str
    #: What the row shapes in transforms/payments.py hold (``Optional[...]`` when nullable).
    python: object
    #: The `pyflink.common.Types` factory of the sink's row field (see FLINK_TYPES).
    flink: str
    #: The type as the DDL writes it, and as PostgreSQL's information_schema reports it.
    sql: str
    sql_reported: str
    #: What follows the type in the DDL, e.g. ``NOT NULL`` or ``PRIMARY KEY``.
    constraints: str = ""
    #: The insert's value for the column (default ``:name``, the row field).
    insert_value: Optional[str] = None
    #: SQL comment lines written above the column in the DDL.
    comment: tuple[str, ...] = ()
    #: False for a column the database fills (e.g. a bigserial id): not in the rows.
    written: bool = True

    @property
    def nullable(self) -> bool:
        return "NOT NULL" not in self.constraints and "PRIMARY KEY" not in self.constraints


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    #: A primary key over several columns (a table-level constraint in the DDL).
    primary_key: tuple[str, ...] = ()
    #: Upsert on `primary_key` adding the other written columns to the stored row.
    add_on_conflict: bool = False
    #: Column lists of the (non-unique) indexes the job looks rows up by.
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def written(self) -> tuple[Column, ...]:
        """The columns the sink writes, in the row type's order."""
        return tuple(column for column in self.columns if column.written)

    @property
    def field_names(self) -> list[str]:
        return [column.name for column in self.written]


def text_column(name: str, constraints: str = "NOT NULL") -> Column:
    """A text column (a Flink STRING); ``constraints=""`` makes it nullable."""
    python = Optional[str] if not constraints else str
    return Column(name, python, "STRING", "text", "text", constraints)


def bigint_column(name: str, constraints: str = "NOT NULL") -> Column:
    """A bigint column (a Flink LONG); ``constraints=""`` makes it nullable."""
    python = Optional[int] if not constraints else int
    return Column(name, python, "LONG", "bigint", "bigint", constraints)


#: A bigserial key the database fills: not in the rows.
SERIAL_ID = Column("id", int, "LONG", "bigserial", "bigint", "PRIMARY KEY", written=False)

LEDGER = Table(
    "ledger",
    (
        text_column("event_id", "PRIMARY KEY"),
        text_column("account_id"),
        text_column("type", "NOT NULL CHECK (type IN ('charge', 'refund'))"),
        bigint_column("amount_minor"),
        text_column("currency"),
        # The rows carry the instant as text (see transforms/README.md, "Row shapes").
        Column(
            "occurred_at",
            str,
            "STRING",
            "timestamptz",
            "timestamp with time zone",
            "NOT NULL",
            insert_value="CAST(:occurred_at AS timestamptz)",
        ),
        # The line the event was read from (a file and its line number, or a Kafka partition
        # and the offset): what tells a line read again from a duplicate of it.
        text_column("source", ""),
        bigint_column("line_number", ""),
    ),
    indexes=(("source", "line_number"),),
)

BALANCES = Table(
    "balances",
    (
        text_column("account_id"),
        text_column("currency"),
        # numeric: a sum of 64-bit amounts can leave bigint's range (hence BigDecimal in Flink).
        Column("balance_minor", int, "BIG_DEC", "numeric(40, 0)", "numeric", "NOT NULL"),
        bigint_column("event_count"),
    ),
    primary_key=("account_id", "currency"),
    add_on_conflict=True,
)


def rejected_table(name: str) -> Table:
    """A job's table of refused lines, with the columns of `transforms.lines.RejectedLine`
    (what `flink_adapters.parse_lines` emits for every `LineRejected`): any job declares its
    own under its own name."""
    return Table(
        name,
        (
            SERIAL_ID,
            text_column("reason"),
            text_column("raw"),
            text_column("source", ""),
            bigint_column("line_number", ""),
            text_column("detail", "NOT NULL DEFAULT ''"),
            Column(
                "raw_bytes",
                Optional[bytes],
                "BYTES",
                "bytea",
                "bytea",
                comment=(
                    "the line's exact bytes when raw had to escape some (invalid UTF-8, NUL, lone",
                    "surrogates); the line is coalesce(raw_bytes, convert_to(raw, 'UTF8'))",
                ),
            ),
        ),
        indexes=(("source", "line_number"),),
    )


REJECTED = rejected_table("rejected")

DUPLICATES = Table(
    "duplicates",
    (
        SERIAL_ID,
        text_column("event_id"),
        text_column("source", ""),
        bigint_column("line_number", ""),
    ),
    indexes=(("source", "line_number"),),
)

#: Every table of the payments job, in creation order.
TABLES: dict[str, Table] = {table.name: table for table in (LEDGER, BALANCES, REJECTED, DUPLICATES)}


def insert_sql(table: Table) -> str:
    """The sink's statement for one row of `table` (named parameters, ``:field``)."""
    names = ", ".join(column.name for column in table.written)
    values = ", ".join(column.insert_value or f":{column.name}" for column in table.written)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({values})"
    if table.add_on_conflict:
        added = ", ".join(
            f"{column.name} = {table.name}.{column.name} + EXCLUDED.{column.name}"
            for column in table.written
            if column.name not in table.primary_key
        )
        sql += f" ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {added}"
    return sql


#: What identifies an input line in every table that records lines: its natural key.
LINE_KEY = ("source", "line_number")
#: The tables an input line may end in: each line ends in exactly one of them.
LINE_TABLES = (LEDGER, REJECTED, DUPLICATES)


def line_recorded_elsewhere(
    table: Table, row: str, line_tables: Sequence[Table] = LINE_TABLES
) -> str:
    """SQL: the line of `row` (an alias) is recorded in one of `line_tables` (a job's tables
    that record input lines, each keyed by `LINE_KEY`; default the payments job's) other than
    `table`."""
    return " OR ".join(
        f"EXISTS (SELECT 1 FROM {other.name} o WHERE o.source = {row}.source "
        f"AND o.line_number = {row}.line_number)"
        for other in line_tables
        if other is not table
    )


def insert_lines_if_absent_sql(table: Table, line_tables: Sequence[Table] = LINE_TABLES) -> str:
    """The sink's statement for a batch of `table`'s rows (read as ``tpc_batch``, see
    `sinks.TwoPhaseCommitSink.add_table`): each row whose line (`LINE_KEY`) none of
    `line_tables` (the job's tables that record lines; default the payments job's) holds yet.
    A line applied by an earlier run, read again, changes nothing."""
    names = ", ".join(column.name for column in table.written)
    values = ", ".join(
        (column.insert_value or f":{column.name}").replace(f":{column.name}", f"b.{column.name}")
        for column in table.written
    )
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {values} FROM tpc_batch b "
        f"WHERE NOT ({line_recorded_elsewhere(table, 'b', line_tables)} "
        f"OR EXISTS (SELECT 1 FROM {table.name} o WHERE o.source = b.source "
        "AND o.line_number = b.line_number))"
    )


def apply_payments_sql() -> str:
    """The sink's statement for a batch of accepted payments (read as ``tpc_batch``: the
    ledger's columns, then the line's ``raw`` text and the rejection it becomes if it conflicts,
    as `jobs.payments` sends them). The database is the last line of defence against applying
    an event twice, whatever reaches it:

    * a payment whose ``event_id`` the ledger holds is not inserted again, and its line is
      recorded as the dedupe would have: a duplicate if the content is the same, a conflicting
      duplicate (rejected) if not; the very line the ledger row came from, read again, changes
      nothing, nor does a line already recorded in rejected or duplicates;
    * balances add up only the ledger rows this statement inserted.
    """
    ledger = ", ".join(column.name for column in LEDGER.written)
    values = ", ".join(
        (column.insert_value or f":{column.name}").replace(":", "") for column in LEDGER.written
    )
    content = "account_id, type, amount_minor, currency, occurred_at"
    return f"""WITH inserted AS (
    INSERT INTO ledger ({ledger})
    SELECT {values} FROM tpc_batch b
    WHERE NOT ({line_recorded_elsewhere(LEDGER, "b")})
    ON CONFLICT (event_id) DO NOTHING
    RETURNING {ledger}
),
balance_deltas AS (
    INSERT INTO balances (account_id, currency, balance_minor, event_count)
    SELECT account_id, currency, sum(amount_minor), count(*) FROM inserted
    GROUP BY account_id, currency
    ON CONFLICT (account_id, currency) DO UPDATE SET
        balance_minor = balances.balance_minor + EXCLUDED.balance_minor,
        event_count = balances.event_count + EXCLUDED.event_count
),
not_inserted AS (
    SELECT b.* FROM tpc_batch b WHERE NOT EXISTS (
        SELECT 1 FROM inserted i WHERE i.event_id = b.event_id
        AND i.source IS NOT DISTINCT FROM b.source
        AND i.line_number IS NOT DISTINCT FROM b.line_number)
),
held AS (
    SELECT {ledger} FROM ledger WHERE event_id IN (SELECT event_id FROM not_inserted)
    UNION ALL
    SELECT {ledger} FROM inserted WHERE event_id IN (SELECT event_id FROM not_inserted)
),
seen_again AS (
    SELECT n.*, (h.{content.replace(", ", ", h.")})
        = (n.account_id, n.type, n.amount_minor, n.currency, CAST(n.occurred_at AS timestamptz))
        AS same_content
    FROM not_inserted n JOIN held h ON h.event_id = n.event_id
    WHERE (h.source, h.line_number) IS DISTINCT FROM (n.source, n.line_number)
    AND NOT ({line_recorded_elsewhere(LEDGER, "n")})
),
duplicate_lines AS (
    INSERT INTO duplicates (event_id, source, line_number)
    SELECT event_id, source, line_number FROM seen_again WHERE same_content
)
INSERT INTO rejected (reason, raw, source, line_number, detail, raw_bytes)
SELECT conflict_reason, raw, source, line_number, conflict_detail, conflict_raw_bytes
FROM seen_again WHERE NOT same_content"""


def create_index_sql(table: Table) -> list[tuple[str, str]]:
    """``(name, DDL)`` of each of `table`'s indexes."""
    indexes = []
    for columns in table.indexes:
        name = f"{table.name}_{'_'.join(columns)}_idx"
        indexes.append((name, f"CREATE INDEX {name} ON {table.name} ({', '.join(columns)})"))
    return indexes


def create_table_sql(table: Table) -> str:
    """The DDL of `table`, laid out as jobs.payments_schema always printed it."""
    width = max(len(column.name) for column in table.columns) + 1
    indent = " " * 12
    items = []  # one per column (its comment lines, then its definition) and constraint
    for column in table.columns:
        definition = f"{column.name:<{width}}{column.sql}"
        if column.constraints:
            definition += f" {column.constraints}"
        lines = [f"{indent}-- {comment}" for comment in column.comment] + [indent + definition]
        items.append("\n".join(lines))
    if table.primary_key:
        items.append(f"{indent}PRIMARY KEY ({', '.join(table.primary_key)})")
    return f"\n        CREATE TABLE {table.name} (\n" + ",\n".join(items) + "\n        )"


def expected_columns(table: Table) -> list[tuple[str, str]]:
    """``(column_name, data_type)`` of every column, as information_schema.columns has them."""
    return [(column.name, column.sql_reported) for column in table.columns]


__all__ = [
    "BALANCES",
    "LINE_KEY",
    "LINE_TABLES",
    "SERIAL_ID",
    "bigint_column",
    "line_recorded_elsewhere",
    "rejected_table",
    "text_column",
    "apply_payments_sql",
    "create_index_sql",
    "insert_lines_if_absent_sql",
    "DUPLICATES",
    "FLINK_TYPES",
    "LEDGER",
    "REJECTED",
    "TABLES",
    "Column",
    "Table",
    "create_table_sql",
    "expected_columns",
    "insert_sql",
]
