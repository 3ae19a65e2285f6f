"""The payments tables: created when missing, checked when present, never altered by the job;
a table of an older version of the job is refused with the statement that migrates it."""

import re

import pytest

from jobs.payments_schema import TABLES, SchemaMismatch, ensure_schema

OLD_REJECTED = """
    CREATE TABLE rejected (
        id          bigserial PRIMARY KEY,
        reason      text NOT NULL,
        raw         text NOT NULL,
        source      text,
        line_number bigint,
        detail      text NOT NULL DEFAULT ''
    )"""


def test_missing_tables_are_created_and_then_accepted(database):
    with database.connect() as conn:
        assert sorted(ensure_schema(conn)) == sorted(TABLES)
        assert ensure_schema(conn) == []


def test_a_table_of_an_older_version_is_refused_with_the_migration(database):
    with database.connect() as conn:
        conn.execute(OLD_REJECTED)
        conn.commit()
        with pytest.raises(SchemaMismatch) as error:
            ensure_schema(conn)
        conn.rollback()
        printed = re.search(r"columns added by a newer version: ([^)]*)\)", str(error.value))
        migrations = printed.group(1).split("; ")
        assert "ALTER TABLE rejected ADD COLUMN raw_bytes bytea" in migrations
        for migration in migrations:  # the printed migration is all it takes
            conn.execute(migration)
        conn.commit()
        ensure_schema(conn)


def test_a_prepared_transaction_holding_a_table_never_hangs_the_schema_step(database):
    """A killed job's prepared transaction keeps its tables locked until the job is resumed,
    and the resumed job runs the schema step first: an index that exists costs no table lock
    (the ledger's here), and one that is missing (rejected's) is given up after 10 s, with
    what holds the table."""
    with database.connect(autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute("DROP INDEX rejected_source_line_number_idx")
    holder = database.connect()
    holder.execute(
        "INSERT INTO ledger (event_id, account_id, type, amount_minor, currency, occurred_at) "
        "VALUES ('e', 'a', 'charge', 1, 'EUR', now())"
    )
    holder.execute("INSERT INTO rejected (reason, raw) VALUES ('bad_json', '{')")
    holder.execute("PREPARE TRANSACTION 'tpc:test-holder'")
    try:
        with database.connect() as conn:
            conn.execute("SET statement_timeout = '60s'")  # a hang fails the test instead
            with pytest.raises(SchemaMismatch) as refused:
                ensure_schema(conn)
        message = str(refused.value)
        assert "cannot create index rejected_source_line_number_idx" in message, message
        assert "prepared transaction of a killed job" in message
    finally:
        holder.close()
        with database.connect(autocommit=True) as conn:
            conn.execute("ROLLBACK PREPARED 'tpc:test-holder'")
    with database.connect() as conn:
        assert ensure_schema(conn) == []  # nothing holds the table now: the index is made
