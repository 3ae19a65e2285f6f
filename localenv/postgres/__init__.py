"""A throwaway PostgreSQL server for tests and the demo.

Starts the system's PostgreSQL binaries on 127.0.0.1 with a free port, password authentication
(a random password that only lives in this process and its children's environment) and
`max_prepared_transactions` set, with its data in a fresh temporary directory that `stop()`
removes. PostgreSQL refuses to run as root, so when this process is root the server runs as the
unprivileged `postgres` user (override with `TPC_POSTGRES_OS_USER`).

    with LocalPostgres() as server:
        db = server.create_database("demo")
        print(db.jdbc_url, db.conninfo)   # password: db.password / PGPASSWORD

From a shell, `python -m localenv.postgres start|status|stop` keeps one running between
commands (`localenv/postgres/command.py`).
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SUPERUSER = "tpc"


class PostgresSetupError(RuntimeError):
    """The local server could not be started; the message says what to install or change."""


def find_bin_dir() -> Path:
    """Directory holding initdb/pg_ctl: `$PG_BIN_DIR`, else the newest /usr/lib/postgresql/*/bin."""
    explicit = os.environ.get("PG_BIN_DIR")
    candidates = (
        [explicit]
        if explicit
        else sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(Path(p).parent.name),
            reverse=True,
        )
    )
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresSetupError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them "
        "(Debian: `apt-get install postgresql`) or set PG_BIN_DIR to their directory."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Database:
    """Connection facts for one database on a local server."""

    host: str
    port: int
    name: str
    user: str
    password: str
    # The password in a file readable by this user only, for `--password-file`: a JVM started
    # earlier cannot see a variable set now, and each server has its own random password.
    password_file: Optional[Path] = None

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.name}"

    @property
    def conninfo(self) -> str:
        """libpq/psycopg connection string without the password (pass it separately)."""
        return f"host={self.host} port={self.port} dbname={self.name} user={self.user}"

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.conninfo, password=self.password, **kwargs)

    def __repr__(self) -> str:  # never print the password
        return f"Database({self.jdbc_url}, user={self.user})"


class LocalPostgres:
    def __init__(
        self,
        max_prepared_transactions: int = 64,
        max_connections: int = 200,
        extra_settings: Optional[dict] = None,
        data_files: Optional[dict[str, bytes]] = None,
        password: Optional[str] = None,
    ):
        """`data_files`: name -> content of files to place in the data directory after initdb,
        before the first start, replacing initdb's (e.g. `pg_hba.conf`, or a TLS key and
        certificate that `extra_settings` name); owned by the server's user, mode 0600, which
        PostgreSQL requires of a private key."""
        self.max_prepared_transactions = max_prepared_transactions
        self.max_connections = max_connections
        self.extra_settings = dict(extra_settings or {})
        self.data_files = dict(data_files or {})
        self.password = password or secrets.token_urlsafe(18)  # a test's marker, or random
        self.host = "127.0.0.1"
        self.port: Optional[int] = None
        self._base: Optional[Path] = None
        self._bin = find_bin_dir()
        self._os_user = self._choose_os_user()

    @property
    def base(self) -> Path:
        """The server's directory (data, logs); only while it runs."""
        if self._base is None:
            raise RuntimeError("not started")
        return self._base

    @classmethod
    def attach(cls, base: Path, port: int, password: str) -> "LocalPostgres":
        """A handle on a server that `start()` started in another process (`python -m
        localenv.postgres start`): `database()`, `server_pid()` and `stop()` work as on the
        process's own."""
        server = cls()
        server._base, server.port, server.password = Path(base), port, password
        return server

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LocalPostgres":
        # The system temp dir is world-traversable, so the unprivileged server user can reach it
        # even when the project lives under root's home.
        self._base = Path(tempfile.mkdtemp(prefix="tpc-postgres-"))
        data = self.base / "data"
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(self._base, 0o755)
        if self._os_user:
            record = pwd.getpwnam(self._os_user)
            os.chown(self._base, record.pw_uid, record.pw_gid)
            os.chown(pwfile, record.pw_uid, record.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            self._run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ]
            )
            pwfile.unlink()
            settings = {
                "listen_addresses": self.host,
                "unix_socket_directories": str(self._base),
                "max_prepared_transactions": self.max_prepared_transactions,
                "max_connections": self.max_connections,
                "fsync": "off",  # a throwaway server: durability across OS crashes is not tested
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "shared_buffers": "128MB",
                **self.extra_settings,
            }
            with open(data / "postgresql.conf", "a") as conf:
                for key, value in settings.items():
                    conf.write(f"{key} = '{value}'\n")
            self._place_data_files(data)
            self._start_server(data)
        except BaseException:
            self.stop()
            raise
        return self

    def _place_data_files(self, data: Path) -> None:
        for name, content in self.data_files.items():
            path = data / name
            path.write_bytes(content)
            os.chmod(path, 0o600)
            if self._os_user:
                record = pwd.getpwnam(self._os_user)
                os.chown(path, record.pw_uid, record.pw_gid)

    def _start_server(self, data: Path) -> None:
        for _attempt in range(5):
            self.port = free_port()
            log = self.base / "server.log"
            result = self._run(
                [
                    str(self._bin / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=False,
            )
            if result.returncode == 0:
                return
            if "could not bind" not in self.log_tail():  # a port race is worth a retry
                break
        raise PostgresSetupError(f"PostgreSQL did not start:\n{self.log_tail()}")

    def restart(self) -> None:
        """Stop (fast: open sessions are disconnected) and start again on the same port."""
        data = self.base / "data"
        self._run([str(self._bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.base / "server.log"),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop_immediately(self) -> None:
        """Crash the server on purpose: `pg_ctl stop -m immediate` (no shutdown checkpoint,
        every session cut off; the next start recovers from the WAL). Data directory and port
        are kept for `start_again()`."""
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ]
        )

    def start_again(self) -> None:
        """Start a stopped server on the same port and data directory (after crash recovery)."""
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-l",
                str(self.base / "server.log"),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                "120",
                "start",
            ]
        )

    def server_pid(self) -> Optional[int]:
        """The postmaster's process id, while it runs."""
        pid_file = self.base / "data" / "postmaster.pid" if self._base else None
        if not pid_file or not pid_file.exists():
            return None
        return int(pid_file.read_text().split()[0])

    def stop(self) -> None:
        if self._base is None:
            return
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            self._run(
                [str(self._bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
            )
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = None

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------
    def database(self, name: str = "postgres") -> Database:
        if self.port is None:
            raise PostgresSetupError("server not started")
        return Database(
            self.host, self.port, name, SUPERUSER, self.password, self.client_password_file()
        )

    def client_password_file(self) -> Path:
        """The password in a file of the server's directory (mode 0600, owned by this user, so
        not by the server's), written on first use; gone with the server (`stop`)."""
        path = self.base / "client-password"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as out:
            out.write(self.password + "\n")
        return path

    def create_database(self, name: str) -> Database:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            self.database().conninfo, password=self.password, autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database(name)

    def log_tail(self, lines: int = 30) -> str:
        log = self.base / "server.log" if self._base else None
        if not log or not log.exists():
            return "(no server log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _choose_os_user() -> Optional[str]:
        if os.geteuid() != 0:
            return None
        name = os.environ.get("TPC_POSTGRES_OS_USER", "postgres")
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise PostgresSetupError(
                f"running as root, and PostgreSQL refuses to run as root, but there is no "
                f"'{name}' user to run it as. Install the postgresql package (it creates the "
                f"user) or set TPC_POSTGRES_OS_USER to an unprivileged user."
            ) from None
        return name

    def _run(self, command, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            command,
            user=self._os_user,
            capture_output=True,
            text=True,
            cwd=str(self._base),
            env={**os.environ, "LC_ALL": "C"},
        )
        if check and result.returncode != 0:
            raise PostgresSetupError(
                f"{Path(command[0]).name} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}"
            )
        return result


def wait_until_accepting(db: Database, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with db.connect(connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
