"""A primary and a streaming standby on loopback, for failover tests and drills.

`ReplicatedPostgres` starts a `LocalPostgres` primary with WAL for a replica and synchronous
commit on (the base class turns it off for speed: a standby then acknowledges nothing), copies
it with `pg_basebackup -R` into a standby on another port, and waits until the standby streams
and, in the synchronous variant, is the primary's synchronous standby
(`pg_stat_replication.sync_state = 'sync'`): from then on a commit, a PREPARE TRANSACTION and a
COMMIT PREPARED return only once the standby has the WAL. With `synchronous=False` the standby
streams asynchronously: what the primary committed in its last moments may never reach it.

    with ReplicatedPostgres() as pair:
        db = pair.create_database("demo")   # db.jdbc_url names both hosts, targetServerType=primary
        pair.kill_primary()                 # pg_ctl stop -m immediate
        pair.promote()                      # the standby becomes the read-write primary
"""

import os
import pwd
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from localenv.postgres import SUPERUSER, Database, LocalPostgres, PostgresSetupError

STANDBY_NAME = "tpc_standby"
# A standby must allow at least as many prepared transactions as its primary (PostgreSQL
# refuses to start it otherwise); both get the same.
MAX_PREPARED_TRANSACTIONS = 64


@dataclass(frozen=True)
class HaDatabase:
    """One database on a primary/standby pair, addressed by both hosts: clients connect to
    whichever of them is the read-write primary at the time."""

    hosts: tuple[tuple[str, int], ...]
    name: str
    user: str
    password: str
    # The password in a file (the primary's, which a killed primary leaves in place): what a
    # job reads where its sink runs.
    password_file: Optional[Path] = None

    @property
    def jdbc_url(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        # pgjdbc caches which host was the primary for hostRecheckSeconds (10 s by default);
        # after a failover the standby it remembers as a standby is skipped until then.
        return f"jdbc:postgresql://{hosts}/{self.name}?targetServerType=primary"

    @property
    def conninfo(self) -> str:
        """libpq/psycopg connection string without the password: both hosts, read-write only."""
        hosts = ",".join(host for host, _ in self.hosts)
        ports = ",".join(str(port) for _, port in self.hosts)
        return (
            f"host={hosts} port={ports} dbname={self.name} user={self.user} "
            "target_session_attrs=read-write connect_timeout=5"
        )

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.conninfo, password=self.password, **kwargs)

    def on(self, server: LocalPostgres) -> Database:
        """The same database on one server of the pair only."""
        return server.database(self.name)

    def __repr__(self) -> str:  # never print the password
        return f"HaDatabase({self.jdbc_url}, user={self.user})"


class ReplicatedPostgres:
    def __init__(self, synchronous: bool = True):
        self.synchronous = synchronous
        self.primary = LocalPostgres(
            max_prepared_transactions=MAX_PREPARED_TRANSACTIONS,
            extra_settings={
                "wal_level": "replica",
                "max_wal_senders": 5,
                # On, whatever the base class sets for speed: with it off a commit returns
                # before the standby confirmed it, synchronous_standby_names or not.
                "synchronous_commit": "on",
                "wal_keep_size": "256MB",
            },
        )
        self.standby = LocalPostgres(max_prepared_transactions=MAX_PREPARED_TRANSACTIONS)
        self.standby.password = self.primary.password  # a physical copy: the same users
        self.promoted = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "ReplicatedPostgres":
        try:
            self.primary.start()
            self._start_standby()
            if self.synchronous:
                # Only now: a primary that waits for a standby that is not there yet would
                # hang every commit, pg_basebackup's own included.
                with self.primary.database().connect(autocommit=True) as conn:
                    conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
                    conn.execute("SELECT pg_reload_conf()")
            self.wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_standby(self) -> None:
        standby = self.standby
        standby._base = Path(tempfile.mkdtemp(prefix="tpc-postgres-standby-"))
        base = standby._base
        base.chmod(0o755)
        if standby._os_user:
            record = pwd.getpwnam(standby._os_user)
            os.chown(base, record.pw_uid, record.pw_gid)
        data = base / "data"
        # The password reaches pg_basebackup through its environment only; -R writes it into
        # the standby's primary_conninfo, inside its data directory (mode 700, removed by stop).
        result = subprocess.run(
            [
                str(standby._bin / "pg_basebackup"),
                "-h",
                self.primary.host,
                "-p",
                str(self.primary.port),
                "-U",
                SUPERUSER,
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            user=standby._os_user,
            capture_output=True,
            text=True,
            cwd=str(base),
            env={"PGPASSWORD": self.primary.password, "LC_ALL": "C", "PATH": "/usr/bin:/bin"},
            timeout=120,
        )
        if result.returncode != 0:
            raise PostgresSetupError(f"pg_basebackup failed:\n{result.stderr[-2000:]}")
        with open(data / "postgresql.conf", "a") as conf:
            # The copy's settings are the primary's: its socket directory is not ours, and a
            # promoted standby that waited for a synchronous standby of its own would hang.
            conf.write(f"unix_socket_directories = '{base}'\n")
            conf.write(f"cluster_name = '{STANDBY_NAME}'\n")  # its walreceiver's application_name
            conf.write("synchronous_standby_names = ''\n")
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write("synchronous_standby_names = ''\n")
        standby._start_server(data)

    def wait_streaming(self, timeout: float = 60.0) -> None:
        """Until the primary streams to the standby (synchronously, in the synchronous variant)."""
        wanted = "sync" if self.synchronous else "async"
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            with self.primary.database().connect(autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                    (STANDBY_NAME,),
                ).fetchone()
            state = row
            if row and row[0] == "streaming" and row[1] == wanted:
                return
            time.sleep(0.2)
        raise PostgresSetupError(
            f"the standby did not stream ({wanted}) within {timeout:.0f} s: {state}\n"
            f"{self.standby.log_tail()}"
        )

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Until the standby replayed everything the primary wrote so far."""
        deadline = time.monotonic() + timeout
        with self.primary.database().connect(autocommit=True, connect_timeout=5) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            while True:
                behind = conn.execute(
                    "SELECT pg_wal_lsn_diff(%s, replay_lsn) FROM pg_stat_replication "
                    "WHERE application_name = %s",
                    (target, STANDBY_NAME),
                ).fetchone()
                if behind and behind[0] is not None and behind[0] <= 0:
                    return
                if time.monotonic() > deadline:
                    raise PostgresSetupError(f"the standby is still {behind} bytes behind")
                time.sleep(0.1)

    def kill_primary(self) -> None:
        """Crash the primary (`pg_ctl stop -m immediate`): every session cut off, nothing flushed
        beyond what its WAL already sent."""
        self.primary.stop_immediately()

    def promote(self, timeout: float = 60.0) -> float:
        """Promote the standby and wait until it accepts writes; returns the seconds it took."""
        started = time.monotonic()
        self.standby._run(
            [
                str(self.standby._bin / "pg_ctl"),
                "-D",
                str(self.standby.base / "data"),
                "-w",
                "-t",
                str(int(timeout)),
                "promote",
            ]
        )
        deadline = started + timeout
        while True:
            try:
                with self.standby.database().connect(autocommit=True, connect_timeout=5) as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        break
            except Exception:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise PostgresSetupError(
                    f"the standby was not read-write {timeout:.0f} s after promotion"
                )
            time.sleep(0.1)
        self.promoted = True
        return time.monotonic() - started

    def stop_standby_replication(self) -> None:
        """Stop the standby (fast shutdown): the primary goes on alone. For the asynchronous
        variant's loss: what the primary commits from now on never reaches the standby."""
        self.standby._run(
            [
                str(self.standby._bin / "pg_ctl"),
                "-D",
                str(self.standby.base / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ]
        )

    def start_standby_alone(self) -> None:
        """Start the stopped standby again (its primary is gone: it replays only what it has)."""
        self.standby.start_again()

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()

    def __enter__(self) -> "ReplicatedPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------
    def database(self, name: str = "postgres") -> HaDatabase:
        return HaDatabase(
            (
                (self.primary.host, self._port(self.primary)),
                (self.standby.host, self._port(self.standby)),
            ),
            name,
            SUPERUSER,
            self.primary.password,
            self.primary.client_password_file(),
        )

    def create_database(self, name: str) -> HaDatabase:
        current = self.standby if self.promoted else self.primary
        current.create_database(name)
        return self.database(name)

    def server_pids(self) -> list[int]:
        return [pid for pid in (self.primary.server_pid(), self.standby.server_pid()) if pid]

    @staticmethod
    def _port(server: LocalPostgres) -> int:
        if server.port is None:
            raise PostgresSetupError("server not started")
        return server.port

    def log_tails(self, lines: int = 20) -> str:
        return f"primary:\n{self.primary.log_tail(lines)}\nstandby:\n{self.standby.log_tail(lines)}"


def primary_of(db: HaDatabase) -> Optional[tuple[str, int]]:
    """The host that answers read-write now, or None."""
    import psycopg

    try:
        with db.connect(autocommit=True) as conn:
            info = conn.info
            return info.host, int(info.port)
    except psycopg.OperationalError:
        return None
