"""`jobs.schema`: any job's declared tables created when missing and checked when present, from
the job's code or from the command line (`python -m jobs.schema --tables MODULE:NAME`)."""

import pytest

from jobs.schema import SchemaMismatch, ensure_schema, load_tables, main
from transforms.tables import Column, Table

# Another job's table, declared as a job of its own would declare it (see tests/jobs/.. for
# the payments tables, which go through the same code).
STOCK = Table(
    "stock_moves",
    (
        Column("order_id", str, "STRING", "text", "text", "PRIMARY KEY"),
        Column("sku", str, "STRING", "text", "text", "NOT NULL"),
        Column("quantity", int, "LONG", "bigint", "bigint", "NOT NULL"),
    ),
    indexes=(("sku",),),
)
SHIPMENT_TABLES = {STOCK.name: STOCK}
WIDER_STOCK = Table(
    STOCK.name, STOCK.columns + (Column("warehouse", str, "STRING", "text", "text"),)
)


def columns(db, table):
    with db.connect() as conn:
        return conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        ).fetchall()


def test_another_jobs_tables_are_created_once_then_checked(database):
    with database.connect() as conn:
        assert ensure_schema(conn, [STOCK]) == ["stock_moves"]
        assert ensure_schema(conn, [STOCK]) == []
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'stock_moves'"
        ).fetchall()
    assert ("stock_moves_sku_idx",) in indexes
    assert columns(database, "stock_moves") == [("order_id",), ("sku",), ("quantity",)]


def test_a_column_a_newer_version_declares_is_refused_with_its_migration(database):
    with database.connect() as conn:
        ensure_schema(conn, [STOCK])
        with pytest.raises(SchemaMismatch) as refused:
            ensure_schema(conn, [WIDER_STOCK])
    assert "ALTER TABLE stock_moves ADD COLUMN warehouse text" in str(refused.value)


def test_check_only_refuses_a_missing_table_and_creates_nothing(database):
    with database.connect() as conn:
        with pytest.raises(SchemaMismatch, match="table stock_moves is missing"):
            ensure_schema(conn, [STOCK], create=False)
    assert columns(database, "stock_moves") == []


def test_the_command_takes_a_jobs_declarations_by_module_and_name(database, capsys, monkeypatch):
    monkeypatch.setenv("TPC_TEST_SCHEMA_PASSWORD", database.password)
    connection = [
        "--db-url",
        database.jdbc_url,
        "--db-user",
        database.user,
        "--password-env",
        "TPC_TEST_SCHEMA_PASSWORD",
    ]
    tables = f"{__name__}:SHIPMENT_TABLES"
    assert main(["--tables", tables, "--check", *connection]) == 1
    assert "table stock_moves is missing" in capsys.readouterr().err
    assert main(["--tables", tables, *connection]) == 0
    assert "created: stock_moves; present and as declared: stock_moves" in capsys.readouterr().out
    assert main(["--tables", "transforms.tables:TABLES", *connection]) == 0
    out = capsys.readouterr().out
    assert "created: ledger, balances, rejected, duplicates" in out, out
    assert main(["--tables", tables, "--check", *connection]) == 0
    assert database.password not in capsys.readouterr().out


@pytest.mark.parametrize(
    "spec, message",
    [
        ("transforms.tables", "expected MODULE:NAME"),
        ("transforms.no_such_module:TABLES", "No module named"),
        ("transforms.tables:NO_SUCH", "NO_SUCH"),
        ("transforms.tables:FLINK_TYPES", "expected transforms.tables.Table declarations"),
    ],
)
def test_a_wrong_tables_argument_says_what_is_expected(spec, message):
    with pytest.raises(SystemExit) as refused:
        load_tables(spec)
    assert message in str(refused.value)
