"""The payments sinks' dead letters, read as the rows of the payments tables they stand for.

The sink sets aside a row the database refused (`tpc_dead_letters`, read by
`sinks.control_tables.dead_letters`) with its sink id and statement number; which table that
row belongs to is the payments job's knowledge (`jobs.payments.build_sinks`), kept here for the
two tools that account for dead letters: `jobs.audit` (row by row) and `jobs.reconcile`
(counts).
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from sinks.control_tables import dead_letters

__all__ = [
    "BOOKS_SINK",
    "DeadLetter",
    "books_sink_id",
    "load_dead_letters",
    "route_payment_letters",
]

# The sink ids of the payments job (jobs.payments.build_sinks): <prefix>-<table>.
SINK_TABLES = {
    "ledger": "ledger",
    "balances": "balances",
    "rejected": "rejected",
    "duplicates": "duplicates",
}


# Checkpoint scope: one sink, <prefix>-books; its dead letters number the statements across
# its tables, in the order build_sinks adds them (one statement each). Its first statement
# applies an accepted payment: its ledger row and its share of the balance, both set aside.
BOOKS_SINK = "books"
BOOKS_STATEMENTS = {1: "ledger", 2: "rejected", 3: "positions"}


def books_sink_id(sink_id_prefix: str) -> str:
    """The checkpoint scope's one sink id (it also keeps the source positions)."""
    return f"{sink_id_prefix}-{BOOKS_SINK}"


@dataclass
class DeadLetter:
    """A row the sink could not write and set aside, with the database's reason."""

    table: str
    key: Any  # as the table's rows are keyed (jobs.audit.KEY_FIELDS)
    fields: dict[str, Any]
    sqlstate: Optional[str]
    message: Optional[str]
    # The books sink's payment statement: the line's ledger row and balance share, or, for a
    # copy of a refused event, its duplicates or rejected row (see route_payment_letters).
    payment: bool = False

    @property
    def delta(self) -> tuple[int, int]:
        """A balance delta's (balance_minor, event_count)."""
        return (
            int(Decimal(str(self.fields.get("balance_minor") or 0))),
            int(Decimal(str(self.fields.get("event_count") or 0))),
        )


def _dead_letter_key(table: str, fields: Mapping[str, Any]):
    """The key (see jobs.audit.KEY_FIELDS) of the row a dead letter stands for, from its
    fields (texts)."""
    if table == "ledger":
        return fields.get("event_id")
    if table == "balances":
        return fields.get("account_id"), fields.get("currency")
    number = fields.get("line_number")
    try:
        number = int(number) if number not in (None, "") else None
    except ValueError:
        pass  # kept as text: it then matches no row
    return fields.get("source"), number


def load_dead_letters(
    conn, control_schema: str = "public", sink_id_prefix: str = "payments"
) -> Optional[list[DeadLetter]]:
    """The payments sinks' dead letters; None when the sink has no dead-letter table."""
    tables = {f"{sink_id_prefix}-{suffix}": table for suffix, table in SINK_TABLES.items()}
    books = books_sink_id(sink_id_prefix)
    rows = dead_letters(conn, control_schema, [*tables, books])
    if rows is None:
        return None
    letters = []
    for row in rows:
        if row.sink_id == books:
            # A statement number this version does not know (another version's sink) keeps it
            # named, so that the audit reports the letter rather than failing on it.
            table = BOOKS_STATEMENTS.get(row.statement, f"books statement {row.statement}")
        else:
            table = tables[row.sink_id]
        if table == "positions":
            continue  # bookkeeping of the sink's reading, not a row of the books
        letters.append(
            DeadLetter(
                table,
                _dead_letter_key(table, row.fields),
                row.fields,
                row.sqlstate,
                row.message,
                payment=row.sink_id == books and table == "ledger",
            )
        )
    return letters


def route_payment_letters(
    letters: list[DeadLetter], expected: Mapping[str, dict[Any, Any]]
) -> list[DeadLetter]:
    """The books sink's payment letters where they belong. Every line of an event whose ledger
    row the database refused is refused too (the database, not a dedupe, tells copies apart):
    a line the input makes a duplicate or a conflicting duplicate stands for that row; the
    other, for the ledger row and its share of the balance."""
    routed = []
    for letter in letters:
        if not letter.payment:
            routed.append(letter)
            continue
        line = _dead_letter_key("duplicates", letter.fields)
        table = next((t for t in ("duplicates", "rejected") if line in expected[t]), None)
        if table:
            routed.append(dataclasses.replace(letter, table=table, key=line))
            continue
        routed.append(letter)
        fields = letter.fields
        delta = {"balance_minor": fields.get("amount_minor"), "event_count": 1}
        key = (fields.get("account_id"), fields.get("currency"))
        routed.append(DeadLetter("balances", key, delta, letter.sqlstate, letter.message))
    return routed
