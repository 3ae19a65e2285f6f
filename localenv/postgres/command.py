"""`python -m localenv.postgres start|status|stop`: a throwaway PostgreSQL that outlives the
command, for trying a job or its tools from a shell (the tests and the demo start their own).

    python -m localenv.postgres start [--database payments]   # prints the JDBC URL and user
    export PGPASSWORD="$(cat var/postgres/default/password)"
    python -m jobs.payments --db-url jdbc:postgresql://127.0.0.1:PORT/payments --db-user tpc ...
    python -m localenv.postgres stop                           # and its data is gone

The server is `LocalPostgres` (127.0.0.1, a free port, data in a temp dir, running as the
`postgres` user when this is root). What the next command needs to find it is kept in
`var/postgres/NAME/`: `server.json` (directory, port, database) and `password`, readable by
this user only. The password is never printed: the commands give the file's path, and a job
reads the password from an environment variable (`--password-env`, default PGPASSWORD) or from
that file (`--password-file`), where its sink runs.
`start` on a running server prints its facts again; `stop` on none says so; both succeed.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.postgres import LocalPostgres, PostgresSetupError
from localenv.processes import alive


def state_dir(name: str) -> Path:
    return sub_dir("postgres", name)


def saved_server(name: str) -> Optional[tuple[LocalPostgres, str]]:
    """The server `start` left under `name` and its database, running or not; None if none."""
    try:
        state = json.loads((state_dir(name) / "server.json").read_text())
        password = (state_dir(name) / "password").read_text().strip()
    except (OSError, ValueError):
        return None
    return LocalPostgres.attach(Path(state["base"]), state["port"], password), state["database"]


def running_server(name: str) -> Optional[tuple[LocalPostgres, str]]:
    """The saved server if it still runs (not after a crash or a reboot)."""
    saved = saved_server(name)
    pid = saved[0].server_pid() if saved else None
    return saved if pid and alive([pid]) else None


def stop(name: str) -> bool:
    """Stop the server and remove its data and state; False if none was running."""
    running = running_server(name)
    saved = saved_server(name)
    if saved:
        saved[0].stop()  # also the data of one that crashed
    shutil.rmtree(state_dir(name), ignore_errors=True)
    return running is not None


def start(name: str, database: str) -> tuple[LocalPostgres, str]:
    running = running_server(name)
    if running:
        return running
    stop(name)  # what a crashed server left behind
    server = LocalPostgres().start()
    try:
        if database != "postgres":
            server.create_database(database)
        password_file = state_dir(name) / "password"
        # Created with mode 600: never readable by others, not even for an instant.
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(server.password + "\n")
        state = {"base": str(server.base), "port": server.port, "database": database}
        (state_dir(name) / "server.json").write_text(json.dumps(state, indent=2) + "\n")
    except BaseException:
        server.stop()
        shutil.rmtree(state_dir(name), ignore_errors=True)
        raise
    return server, database


def describe(name: str, server: LocalPostgres, database: str) -> str:
    db = server.database(database)
    password_file = state_dir(name) / "password"
    shown = (
        password_file.relative_to(PROJECT_ROOT)
        if password_file.is_relative_to(PROJECT_ROOT)
        else password_file
    )
    return (
        f"PostgreSQL '{name}' runs at {db.jdbc_url} (user {db.user}, server pid "
        f"{server.server_pid()})\n"
        f"password: in {shown} (readable by you only); for a job or psql:\n"
        f'  export PGPASSWORD="$(cat {shown})"\n'
        f"  --db-url {db.jdbc_url} --db-user {db.user} --password-env PGPASSWORD\n"
        f"  (or, for a job on a cluster, whose TaskManagers read it: --password-file "
        f"{password_file})\n"
        f"  psql 'host={db.host} port={db.port} dbname={db.name} user={db.user}'"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localenv.postgres", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--name", default="default", help="several servers can run side by side, by name"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_command = commands.add_parser("start", help="start a server unless one runs")
    start_command.add_argument(
        "--database", default="postgres", help="create this database (default: postgres)"
    )
    commands.add_parser("status", help="say whether it runs and where; exit status 1 if not")
    commands.add_parser("stop", help="stop the server and remove its data")
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            server, database = start(args.name, args.database)
        except PostgresSetupError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if database != args.database:
            print(f"note: already running with database {database}", file=sys.stderr)
        print(describe(args.name, server, database))
    elif args.command == "status":
        found = running_server(args.name)
        if not found:
            print(f"PostgreSQL '{args.name}' is not running")
            return 1
        print(describe(args.name, *found))
    else:
        stopped = stop(args.name)
        print(
            f"PostgreSQL '{args.name}' "
            + ("stopped, its data removed" if stopped else "was not running")
        )
    return 0
