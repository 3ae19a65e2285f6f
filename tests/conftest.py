"""Fixtures shared by every test tier.

PostgreSQL is real: one throwaway server per test session (`postgres_server`), a fresh database
per test (`database`). Nothing here starts a JVM; Flink tests start their own.
"""
import re
import uuid

import pytest

from localenv.postgres import LocalPostgres


@pytest.fixture(scope="session")
def postgres_server():
    with LocalPostgres(max_prepared_transactions=64) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server_without_prepared_transactions():
    """A stock-configured server: max_prepared_transactions = 0, PostgreSQL's default."""
    with LocalPostgres(max_prepared_transactions=0) as server:
        yield server


@pytest.fixture
def database(postgres_server, request):
    """A new, empty database for one test; its `.password` never appears in output."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    return postgres_server.create_database(f"t_{slug}_{uuid.uuid4().hex[:6]}")
