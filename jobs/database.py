"""Python-side database access for the jobs' tools (psycopg 3), from the same flags the jobs
take: a JDBC URL, a user, and the name of the environment variable holding the password."""

import os
from typing import Optional
from urllib.parse import urlparse


def add_connection_arguments(parser) -> None:
    parser.add_argument("--db-url", required=True, help="jdbc:postgresql://host:port/database")
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
