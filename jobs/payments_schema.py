"""The payments tables: created when missing, checked when present, never silently altered.

python -m jobs.payments_schema --db-url jdbc:postgresql://host:port/db   # create or check
"""

import argparse
import sys

from psycopg.errors import LockNotAvailable

from sinks.database import add_connection_arguments, connect
from transforms.tables import TABLES as PAYMENT_TABLES
from transforms.tables import create_index_sql, create_table_sql, expected_columns

# Derived from the tables' declarations in transforms/tables.py (edit them there).
TABLES: dict[str, str] = {name: create_table_sql(table) for name, table in PAYMENT_TABLES.items()}
EXPECTED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    name: expected_columns(table) for name, table in PAYMENT_TABLES.items()
}


class SchemaMismatch(RuntimeError):
    pass


def ensure_schema(conn) -> list[str]:
    """Create missing tables; verify existing ones. Returns the names of tables created."""
    created = []
    for table, ddl in TABLES.items():
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        if not columns:
            conn.execute(ddl)
            created.append(table)
            continue
        missing = [c for c in EXPECTED_COLUMNS[table] if c not in columns]
        if missing:
            names = {name for name, _ in columns}
            added = "; ".join(
                f"ALTER TABLE {table} ADD COLUMN {name} {kind}"
                for name, kind in missing
                if name not in names
            )
            raise SchemaMismatch(
                f"table {table} exists but lacks or mistypes columns {missing} (it has "
                f"{columns}); the job never alters tables: migrate it by hand"
                + (f" (columns added by a newer version: {added})" if added else "")
                + " or use another database"
            )
    create_missing_indexes(conn)
    conn.commit()
    return created


def create_missing_indexes(conn) -> None:
    """The lookups by line (transforms/tables.py, LINE_KEY): created once, when missing.

    Only when missing: CREATE INDEX locks its table even when the index exists, and a prepared
    transaction of a killed job holds its tables' locks until the job, restarted, commits it.
    For the same reason the creation waits 10 s at most for its lock."""
    existing = {
        row[0]
        for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchall()
    }
    for declared in PAYMENT_TABLES.values():
        for name, ddl in create_index_sql(declared):
            if name in existing:
                continue
            conn.execute("SET LOCAL lock_timeout = '10s'")
            try:
                conn.execute(ddl)
            except LockNotAvailable as error:
                raise SchemaMismatch(
                    f"cannot create index {name} on table {declared.name}: the table is locked "
                    f"({error}). A prepared transaction of a killed job holds such locks until "
                    "the job is resumed (python -m sinks.admin list shows them): resume the "
                    "job once with --from-checkpoint (or roll them back with python -m "
                    "sinks.admin abort), or run this again when nothing holds the table."
                ) from error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="create or check the payments tables")
    add_connection_arguments(parser)
    args = parser.parse_args(argv)
    with connect(args.db_url, args.db_user, args.password_env) as conn:
        created = ensure_schema(conn)
    print(
        f"created: {', '.join(created) or 'nothing'}; all payments tables present and as expected"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
