"""The database connection flags, and Python-side access from them (psycopg 3): a JDBC URL, a
user, and the name of the environment variable holding the password (never the password).

One definition of the flags for every command that talks to the database: the jobs, their
checks (`jobs.reconcile`, `jobs.audit`), `sinks.admin`, the benchmarks and the test harnesses.
Here, in the sink's package, because the sink takes the same three settings and `sinks/` must
not import `jobs/`."""

import os
from typing import Optional
from urllib.parse import urlparse


def add_connection_arguments(parser, required: bool = True) -> None:
    """--db-url, --db-user (default $PGUSER) and --password-env (default PGPASSWORD).
    `required=False` for a command that can run without a database URL (a --demo)."""
    parser.add_argument("--db-url", required=required, help="jdbc:postgresql://host:port/database")
    parser.add_argument("--db-user", default=os.environ.get("PGUSER"))
    parser.add_argument(
        "--password-env",
        default="PGPASSWORD",
        help="environment variable holding the database password",
    )


def jdbc_to_conninfo(jdbc_url: str, user: Optional[str] = None) -> str:
    """psycopg conninfo for a jdbc:postgresql://host:port/db URL (password passed separately)."""
    parsed = urlparse(jdbc_url[len("jdbc:") :])
    parts = [
        f"host={parsed.hostname or '127.0.0.1'}",
        f"port={parsed.port or 5432}",
        f"dbname={parsed.path.lstrip('/')}",
    ]
    if user:
        parts.append(f"user={user}")
    return " ".join(parts)


def connect(db_url: str, db_user: Optional[str] = None, password_env: str = "PGPASSWORD", **kwargs):
    import psycopg

    return psycopg.connect(
        jdbc_to_conninfo(db_url, db_user), password=os.environ.get(password_env), **kwargs
    )
