"""`jobs.audit --job` / `jobs.reconcile --job` on any declared job, on a real PostgreSQL, without
Flink: the orders job's tables written straight from its reference (what a correct run holds),
then damaged by hand. Each damage is named by its row; the undamaged tables are the control
(clean). The orders job's own run is audited in tests/jobs/test_orders_job.py.
"""

import os
import re
import uuid
from pathlib import Path

import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.baseline import run as baseline_run
from jobs import audit, reconcile
from jobs.kit.audit import audit_job, row_key
from jobs.orders import JOB
from jobs.schema import ensure_schema
from tests.jobs.support import PASSWORD_ENV, write_inputs
from tests.jobs.test_audit import DEAD_LETTERS_DDL
from transforms.inputs import input_files
from transforms.lines import read_lines
from transforms.order_samples import BAD_LINES, write_jsonl
from transforms.orders import ORDER_DUPLICATES, ORDER_REJECTS, STOCK, STOCK_MOVES, TABLES


@pytest.fixture(scope="module")
def order_inputs(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("orders-input")
    (directory / "bad.jsonl").write_bytes(b"".join(line + b"\n" for line in BAD_LINES))
    write_jsonl(str(directory / "orders-0.jsonl"), 600, seed=5, id_prefix="p0")
    return directory


@pytest.fixture
def orders_db(database, order_inputs):
    """The orders tables holding exactly what the reference says, sources named as the job
    names them (absolute paths)."""
    lines = (
        line
        for path in input_files(str(order_inputs))
        for line in read_lines(path, source=os.path.abspath(path))
    )
    with database.connect() as conn:
        ensure_schema(conn, TABLES.values())
        for name, rows in JOB.reference(lines).items():
            columns = TABLES[name].field_names
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        sql.Identifier(name),
                        sql.SQL(", ").join(map(sql.Identifier, columns)),
                        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                    ),
                    [tuple(row) for row in rows],
                )
        conn.commit()
    return database


def run(db, inputs, *extra, tool=audit) -> int:
    os.environ[PASSWORD_ENV] = db.password
    return tool.main(
        ["--input", str(inputs), "--db-url", db.jdbc_url, "--db-user", db.user]
        + ["--password-env", PASSWORD_ENV, *extra]
    )


def audited(db, inputs):
    with db.connect() as conn:
        report = audit_job(conn, JOB, str(inputs))
    return report, re.sub(r"(?m)(?<=\S) {2,}", " ", report.render())


def test_rows_are_compared_by_primary_key_or_by_their_line():
    assert row_key(STOCK_MOVES) == ("order_id",)
    assert row_key(STOCK) == ("sku", "warehouse")
    assert row_key(ORDER_DUPLICATES) == row_key(ORDER_REJECTS) == ("source", "line_number")


def test_a_job_is_found_by_name_or_module_with_its_samples_and_scopes():
    """What the campaign and the benchmarks read of a job besides its tables."""
    from jobs.kit.declared import job_module, load_job

    assert load_job("orders") is load_job("jobs.orders") is JOB
    assert job_module("orders") == job_module("jobs.orders:JOB") == "jobs.orders"
    assert dict(JOB.scopes) == {"checkpoint": ()}  # the kit's one scope, no flags
    assert list(load_job("payments").scopes) == ["checkpoint", "prepared", "staged"]
    lines = JOB.sample_lines(100, seed=2, id_prefix="x")
    assert lines == JOB.sample_lines(100, seed=2, id_prefix="x") and b'"x-100"' in b"".join(lines)


def test_the_lines_applied_are_the_rows_of_the_line_tables(
    postgres_server, orders_db, order_inputs
):
    """What the benchmarks wait on: every line ends in exactly one of the job's line tables."""
    lines = sum(1 for path in input_files(str(order_inputs)) for _ in read_lines(path))
    with orders_db.connect() as conn:
        assert JOB.lines_applied(conn) == lines > 600
    fresh = postgres_server.create_database(f"no_schema_{uuid.uuid4().hex[:6]}")
    with fresh.connect() as conn:
        assert JOB.lines_applied(conn) == 0  # before the job made its tables


def test_clean_then_each_damage_named_by_its_row(orders_db, order_inputs):
    report, text = audited(orders_db, order_inputs)
    assert report.clean, text
    assert report.lines == report.accounted > 600 and report.positions is None

    with orders_db.connect() as conn:
        order_id, source, number = conn.execute(
            "DELETE FROM stock_moves WHERE order_id = "
            "(SELECT min(order_id) FROM stock_moves) RETURNING order_id, source, line_number"
        ).fetchone()
        # the same line recorded a second time, as a duplicate
        conn.execute(
            "INSERT INTO order_duplicates (order_id, source, line_number) VALUES (%s, %s, %s)",
            (order_id, source, number),
        )
        reason_key = conn.execute(
            "UPDATE order_rejects SET reason = 'unknown_kind' WHERE id = (SELECT min(id) FROM "
            "order_rejects WHERE reason <> 'unknown_kind') RETURNING source, line_number"
        ).fetchone()
    report, text = audited(orders_db, order_inputs)
    assert not report.clean
    assert "stock_moves: 1 missing" in text and f"missing order_id={order_id!r}" in text
    assert f"unexpected source={source!r} line_number={number}" in text
    assert f"source={reason_key[0]!r} line_number={reason_key[1]} reason: expected" in text
    # the line moved tables: the counts agree, the rows tell
    assert report.accounted == report.lines and "stock: " not in text
    assert text.endswith("audit: 3 DIFFERENCES")


def test_the_commands_refuse_an_unknown_job_and_the_payments_flags(database, order_inputs, capsys):
    assert run(database, order_inputs, "--job", "no_such_job") == 2
    assert "--job 'no_such_job': No module named 'jobs.no_such_job'" in capsys.readouterr().err
    assert run(database, order_inputs, "--job", "jobs.orders:TABLES") == 2
    assert "is no DeclaredJob" in capsys.readouterr().err
    assert run(database, order_inputs, "--job", "orders", "--currencies", "x.json") == 2
    assert "--currencies: the payments audit's own flags" in capsys.readouterr().err
    # the orders tables missing: which job, and what to do
    assert run(database, order_inputs, "--job", "orders", tool=reconcile) == 2
    assert "is this the orders job's database?" in capsys.readouterr().err


def test_a_books_dead_letter_of_a_statement_this_version_lacks_is_reported(
    database, tmp_path, capsys
):
    """Was a KeyError: the books sink's statements are numbered 1-3; a letter of another
    version's sink (statement 7) explains no row of these books, and says so."""
    inputs = write_inputs(tmp_path / "input", events=200)
    with database.connect() as conn:
        baseline_run(conn, str(inputs))
        conn.execute(DEAD_LETTERS_DDL)
        conn.execute(
            "INSERT INTO tpc_dead_letters (sink_id, statement, fields) "
            "VALUES ('payments-books', 7, %s)",
            (Jsonb({"event_id": "e-x"}),),
        )
        conn.commit()
    assert run(database, inputs) == 1  # the default job: payments
    out = re.sub(r"(?m)(?<=\S) {2,}", " ", capsys.readouterr().out)
    assert "dead letters that explain no difference: 1" in out
    assert "books statement 7: key=" in out and "another version" in out
