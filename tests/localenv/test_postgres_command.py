"""`python -m localenv.postgres`: a throwaway PostgreSQL from the shell, started, found again by
the next command, reachable with the facts it prints, and gone after `stop`; the password never
on its output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from localenv.paths import PROJECT_ROOT


def command(var_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localenv.postgres", "--name", "cli-test", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TPC_VAR_DIR": str(var_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_connect_stop(tmp_path):
    assert command(tmp_path, "status").returncode == 1
    started = command(tmp_path, "start", "--database", "payments")
    try:
        assert started.returncode == 0, started.stderr
        state = tmp_path / "postgres" / "cli-test"
        password = (state / "password").read_text().strip()
        assert (state / "password").stat().st_mode & 0o077 == 0
        assert password not in started.stdout + started.stderr
        server = json.loads((state / "server.json").read_text())
        url = f"jdbc:postgresql://127.0.0.1:{server['port']}/payments"
        assert f"--db-url {url} --db-user tpc --password-env PGPASSWORD" in started.stdout

        again = command(tmp_path, "start", "--database", "payments")  # idempotent
        assert again.returncode == 0 and again.stdout == started.stdout
        assert command(tmp_path, "status").returncode == 0
        conninfo = f"host=127.0.0.1 port={server['port']} dbname=payments user=tpc"
        with psycopg.connect(conninfo, password=password) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("payments",)
    finally:
        stopped = command(tmp_path, "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not Path(server["base"]).exists()
    assert command(tmp_path, "status").returncode == 1
    assert "was not running" in command(tmp_path, "stop").stdout  # idempotent
