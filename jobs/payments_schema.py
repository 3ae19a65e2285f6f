"""The payments tables (`transforms/tables.py`): created when missing, checked when present,
never silently altered. The work is `jobs.schema`'s, which does the same for any job's tables.

python -m jobs.payments_schema --db-url jdbc:postgresql://host:port/db   # create or check
"""

import argparse
import sys

from jobs.schema import SchemaMismatch
from jobs.schema import ensure_schema as ensure_tables
from sinks.database import CannotConnect, add_connection_arguments, connect
from transforms.tables import TABLES as PAYMENT_TABLES
from transforms.tables import create_table_sql

__all__ = ["TABLES", "SchemaMismatch", "ensure_schema", "main"]

# Derived from the tables' declarations in transforms/tables.py (edit them there).
TABLES: dict[str, str] = {name: create_table_sql(table) for name, table in PAYMENT_TABLES.items()}


def ensure_schema(conn) -> list[str]:
    """Create missing payments tables; verify existing ones. Returns the names created."""
    return ensure_tables(conn, PAYMENT_TABLES.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="create or check the payments tables")
    add_connection_arguments(parser)
    args = parser.parse_args(argv)
    try:
        with connect(
            args.db_url, args.db_user, args.password_env, args.password_file, connect_timeout=10
        ) as conn:
            created = ensure_schema(conn)
    except CannotConnect as error:  # says which check failed
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"created: {', '.join(created) or 'nothing'}; all payments tables present and as expected"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
