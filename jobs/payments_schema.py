"""The payments tables: created when missing, checked when present, never silently altered.

python -m jobs.payments_schema --db-url jdbc:postgresql://host:port/db   # create or check
"""

import argparse
import sys

from jobs.database import add_connection_arguments, connect

TABLES: dict[str, str] = {
    "ledger": """
        CREATE TABLE ledger (
            event_id     text PRIMARY KEY,
            account_id   text NOT NULL,
            type         text NOT NULL CHECK (type IN ('charge', 'refund')),
            amount_minor bigint NOT NULL,
            currency     text NOT NULL,
            occurred_at  timestamptz NOT NULL
        )""",
    # numeric: a sum of 64-bit amounts can leave bigint's range.
    "balances": """
        CREATE TABLE balances (
            account_id    text NOT NULL,
            currency      text NOT NULL,
            balance_minor numeric(40, 0) NOT NULL,
            event_count   bigint NOT NULL,
            PRIMARY KEY (account_id, currency)
        )""",
    "rejected": """
        CREATE TABLE rejected (
            id          bigserial PRIMARY KEY,
            reason      text NOT NULL,
            raw         text NOT NULL,
            source      text,
            line_number bigint,
            detail      text NOT NULL DEFAULT '',
            -- the line's exact bytes when raw had to escape some (invalid UTF-8, NUL, lone
            -- surrogates); the line is coalesce(raw_bytes, convert_to(raw, 'UTF8'))
            raw_bytes   bytea
        )""",
    "duplicates": """
        CREATE TABLE duplicates (
            id          bigserial PRIMARY KEY,
            event_id    text NOT NULL,
            source      text,
            line_number bigint
        )""",
}

EXPECTED_COLUMNS: dict[str, list[tuple]] = {
    "ledger": [
        ("event_id", "text"),
        ("account_id", "text"),
        ("type", "text"),
        ("amount_minor", "bigint"),
        ("currency", "text"),
        ("occurred_at", "timestamp with time zone"),
    ],
    "balances": [
        ("account_id", "text"),
        ("currency", "text"),
        ("balance_minor", "numeric"),
        ("event_count", "bigint"),
    ],
    "rejected": [
        ("id", "bigint"),
        ("reason", "text"),
        ("raw", "text"),
        ("source", "text"),
        ("line_number", "bigint"),
        ("detail", "text"),
        ("raw_bytes", "bytea"),
    ],
    "duplicates": [
        ("id", "bigint"),
        ("event_id", "text"),
        ("source", "text"),
        ("line_number", "bigint"),
    ],
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
    conn.commit()
    return created


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
