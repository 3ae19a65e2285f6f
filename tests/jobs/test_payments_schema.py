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
