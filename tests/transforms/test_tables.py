"""Each output table is declared once (transforms/tables.py); the Flink row types, the insert
statements, the DDL, the schema check and the Python row shapes all agree with it."""

import dataclasses
import re
import typing

import pytest
from pyflink.common import Types

from jobs import payments as job
from jobs import payments_schema
from transforms import flink_adapters as fa
from transforms import payments, tables
from transforms import payments_flink as pf

ROW_TYPES = {
    "ledger": pf.LEDGER_ROW_TYPE,
    "balances": pf.BALANCE_ROW_TYPE,
    "rejected": pf.REJECTED_ROW_TYPE,
    "duplicates": pf.DUPLICATE_ROW_TYPE,
}
STATEMENTS = {
    "ledger": job.LEDGER_SQL,
    "balances": job.BALANCE_SQL,
    "rejected": job.REJECTED_SQL,
    "duplicates": job.DUPLICATE_SQL,
}
ROW_SHAPES = {
    "ledger": payments.LedgerRow,
    "balances": payments.BalanceRow,
    "rejected": payments.RejectedRow,
}
FLINK = {
    "STRING": Types.STRING(),
    "LONG": Types.LONG(),
    "BIG_DEC": Types.BIG_DEC(),
    "BYTES": Types.PRIMITIVE_ARRAY(Types.BYTE()),
}
TABLES = list(tables.TABLES.values())


def test_the_job_writes_the_declared_tables():
    assert list(tables.TABLES) == ["ledger", "balances", "rejected", "duplicates"]
    assert list(payments_schema.TABLES) == list(tables.TABLES)
    assert sorted(ROW_TYPES) == sorted(STATEMENTS) == sorted(tables.TABLES)
    assert {c.flink for t in TABLES for c in t.columns} <= set(tables.FLINK_TYPES) == set(FLINK)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_row_type_matches_the_declaration(table):
    row_type = ROW_TYPES[table.name]
    assert row_type.get_field_names() == table.field_names
    assert [repr(t) for t in row_type.get_field_types()] == [
        repr(FLINK[c.flink]) for c in table.written
    ]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_insert_statement_writes_every_field_once(table):
    sql = STATEMENTS[table.name]
    columns = re.match(rf"INSERT INTO {table.name} \(([^)]*)\) VALUES", sql).group(1)
    assert columns.split(", ") == table.field_names
    values = sql.split(" VALUES ", 1)[1].split(" ON CONFLICT ")[0]
    assert re.findall(r":(\w+)", values) == table.field_names


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_ddl_and_schema_check_hold_every_column(table):
    ddl = payments_schema.TABLES[table.name]
    definitions = [
        line.strip().rstrip(",")
        for line in ddl.splitlines()[2:-1]
        if not line.strip().startswith(("--", "PRIMARY KEY ("))
    ]
    assert [d.split()[0] for d in definitions] == [c.name for c in table.columns]
    for definition, column in zip(definitions, table.columns):
        assert definition.split(None, 1)[1] == f"{column.sql} {column.constraints}".strip()
    expected = tables.expected_columns(table)
    assert expected == [(c.name, c.sql_reported) for c in table.columns]


@pytest.mark.parametrize("name", sorted(ROW_SHAPES))
def test_python_row_shapes_match_the_declaration(name):
    table, shape = tables.TABLES[name], ROW_SHAPES[name]
    carried = [c for c in table.written if c.name in shape._fields]
    assert list(shape._fields) == [c.name for c in carried]  # declared, in the table's order
    # A column the shape does not carry (yet) is written as NULL: it must be nullable.
    assert all(c.nullable for c in table.written if c not in carried)
    hints = typing.get_type_hints(shape)
    assert [hints[c.name] for c in carried] == [c.python for c in carried]
    for column in table.written:
        assert column.nullable == (type(None) in typing.get_args(column.python)), column.name


# `rejected` with one more nullable column, declared as a user would add it: at the end.
WITH_NOTE = dataclasses.replace(
    tables.REJECTED,
    columns=(
        *tables.REJECTED.columns,
        tables.Column("note", typing.Optional[str], "STRING", "text", "text"),
    ),
)


def test_a_declared_nullable_column_is_written_as_null_until_a_rule_fills_it():
    """Adding a nullable column is one line in transforms/tables.py: the rows the rules make
    (here a RejectedRow without the field) and the payment rows the JVM projects onto the table
    both write it as NULL, and the DDL, statement and schema check carry it."""
    rejected = payments.RejectedRow("bad_json", "{", "in.jsonl", 3, "detail", None)
    fields = dict(zip(WITH_NOTE.field_names, fa.table_row_fields(WITH_NOTE)(rejected)))
    assert fields["note"] is None
    assert all(fields[name] == value for name, value in rejected._asdict().items())
    assert list(fa.table_row(WITH_NOTE)(rejected).as_dict()) == WITH_NOTE.field_names
    assert job.payment_projection(WITH_NOTE, job.CONFLICT_SOURCES)["note"] is None
    assert tables.insert_sql(WITH_NOTE).endswith(", :note)")
    assert "note" in tables.create_table_sql(WITH_NOTE)
    assert tables.expected_columns(WITH_NOTE)[-1] == ("note", "text")


def test_a_not_null_column_needs_a_source():
    strict = dataclasses.replace(
        tables.REJECTED,
        columns=(
            *tables.REJECTED.columns,
            tables.Column("note", str, "STRING", "text", "text", "NOT NULL"),
        ),
    )
    with pytest.raises(AttributeError):
        fa.table_row_fields(strict)(payments.RejectedRow("r", "raw", "f", 1, "", None))
    with pytest.raises(ValueError, match="rejected.note is NOT NULL"):
        job.payment_projection(strict, job.CONFLICT_SOURCES)


def test_payment_rows_feed_every_field_of_their_tables():
    """The job projects its payment rows (PAYMENT_ROW_TYPE) onto the ledger, duplicates and
    (conflicting duplicates) rejected tables: every field has a source of the same type."""
    payment = dict(
        zip(pf.PAYMENT_ROW_TYPE.get_field_names(), map(repr, pf.PAYMENT_ROW_TYPE.get_field_types()))
    )
    for table, fields in [
        (tables.LEDGER, job.LEDGER_FIELDS),
        (tables.DUPLICATES, job.DUPLICATE_FIELDS),
        (tables.REJECTED, job.CONFLICT_FIELDS),
    ]:
        assert list(fields) == table.field_names
        for column in table.written:
            source = fields[column.name]
            if source is None:  # a nullable column payment rows do not carry: NULL
                assert column.nullable, column.name
            else:
                assert payment[source] == repr(FLINK[column.flink]), column.name


def test_generated_statements_are_the_ones_the_job_always_ran():
    # Stored-format guard: the sinks' statements as they were written by hand before the
    # declaration existed. A change here is a change of what the job writes.
    # The ledger records the line of each event since issue 23 (source, line_number).
    assert job.LEDGER_SQL == (
        "INSERT INTO ledger (event_id, account_id, type, amount_minor, currency, occurred_at, "
        "source, line_number) "
        "VALUES (:event_id, :account_id, :type, :amount_minor, :currency, "
        "CAST(:occurred_at AS timestamptz), :source, :line_number)"
    )
    assert job.BALANCE_SQL == (
        "INSERT INTO balances (account_id, currency, balance_minor, event_count) "
        "VALUES (:account_id, :currency, :balance_minor, :event_count) "
        "ON CONFLICT (account_id, currency) DO UPDATE SET "
        "balance_minor = balances.balance_minor + EXCLUDED.balance_minor, "
        "event_count = balances.event_count + EXCLUDED.event_count"
    )
