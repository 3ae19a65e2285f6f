"""Any job's tables, declared once as `transforms.tables.Table`s: created when missing, checked
when present, never silently altered.

    python -m jobs.schema --tables transforms.tables:TABLES --db-url jdbc:postgresql://host/db
    python -m jobs.schema --tables my_rules.tables:TABLES --db-url ... --check   # create nothing

`--tables MODULE:NAME` names a mapping (or a sequence) of `Table`s in an importable module: a
job's own tables module. A job calls `ensure_schema(conn, tables)` before it builds its sinks,
so it fails at the start, with the statement that migrates the table, rather than on its first
insert. Two jobs may share a database as long as their table names differ.
"""

import argparse
import importlib
import sys
from collections.abc import Iterable, Mapping

from psycopg.errors import LockNotAvailable

from sinks.database import CannotConnect, add_connection_arguments, connect
from transforms.tables import Table, create_index_sql, create_table_sql, expected_columns

__all__ = ["SchemaMismatch", "create_missing_indexes", "ensure_schema", "load_tables", "main"]


class SchemaMismatch(RuntimeError):
    pass


def ensure_schema(conn, tables: Iterable[Table], create: bool = True) -> list[str]:
    """Create the missing ones of `tables` (with `create`; else a missing table is refused) and
    their missing indexes; verify the existing ones. Returns the names of tables created."""
    tables = list(tables)
    created = []
    for table in tables:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table.name,),
        ).fetchall()
        if not columns:
            if not create:
                raise SchemaMismatch(
                    f"table {table.name} is missing (python -m jobs.schema without --check, or "
                    "the job itself, creates it)"
                )
            conn.execute(create_table_sql(table))
            created.append(table.name)
            continue
        check_columns(table, columns)
    if create:
        create_missing_indexes(conn, tables)
    conn.commit()
    return created


def check_columns(table: Table, columns: list[tuple[str, str]]) -> None:
    """Refuses an existing table that lacks or mistypes a declared column, with the statements
    that add the columns a newer version declared (the job never alters a table itself)."""
    missing = [c for c in expected_columns(table) if c not in columns]
    if not missing:
        return
    names = {name for name, _ in columns}
    added = "; ".join(
        f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"
        for name, kind in missing
        if name not in names
    )
    raise SchemaMismatch(
        f"table {table.name} exists but lacks or mistypes columns {missing} (it has "
        f"{columns}); the job never alters tables: migrate it by hand"
        + (f" (columns added by a newer version: {added})" if added else "")
        + " or use another database"
    )


def create_missing_indexes(conn, tables: Iterable[Table]) -> None:
    """The tables' declared lookup indexes: created once, when missing.

    Only when missing: CREATE INDEX locks its table even when the index exists, and a prepared
    transaction of a killed job holds its tables' locks until the job, restarted, commits it.
    For the same reason the creation waits 10 s at most for its lock."""
    existing = {
        row[0]
        for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchall()
    }
    for declared in tables:
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


def load_tables(spec: str) -> list[Table]:
    """The `Table`s named by ``MODULE:NAME`` (a mapping or a sequence of them)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"--tables {spec!r}: expected MODULE:NAME, e.g. transforms.tables:TABLES")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SystemExit(f"--tables {spec!r}: {error}") from error
    tables = list(found.values()) if isinstance(found, Mapping) else list(found)
    strays = [t for t in tables if not isinstance(t, Table)]
    if not tables or strays:
        raise SystemExit(
            f"--tables {spec!r}: expected transforms.tables.Table declarations, found "
            f"{strays[:1] or 'none'}"
        )
    return tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.schema",
        description="create (or only check, with --check) a job's declared tables",
    )
    parser.add_argument(
        "--tables",
        required=True,
        help="MODULE:NAME of the job's Table declarations, e.g. transforms.tables:TABLES",
    )
    parser.add_argument(
        "--check", action="store_true", help="create nothing; a missing table is an error"
    )
    add_connection_arguments(parser)
    args = parser.parse_args(argv)
    tables = load_tables(args.tables)
    try:
        with connect(
            args.db_url, args.db_user, args.password_env, args.password_file, connect_timeout=10
        ) as conn:
            created = ensure_schema(conn, tables, create=not args.check)
    except SchemaMismatch as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except CannotConnect as error:  # says which check failed
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = ", ".join(table.name for table in tables)
    print(f"created: {', '.join(created) or 'nothing'}; present and as declared: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
