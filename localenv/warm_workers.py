"""Python workers forked from a warm process, for jobs on the local mini cluster.

In process mode Flink starts a new interpreter for every Python worker, and each one spends about
a second of CPU importing Beam's harness, PyFlink's operations and the job's transforms before it
can take its first record: on two cores, two such workers are a second of every local job's
start-up, and again after every restart. Here one process (the pool) makes those imports once,
while the JVM starts, and forks a worker for each one Flink asks for. The forked worker runs
PyFlink's own boot code (`pyflink.fn_execution.beam.beam_boot`) with the arguments, environment,
working directory and standard streams Flink gave the process it started, so it is the same
worker, started warm.

Flink asks through `python.executable`: for a local job it becomes a small script that runs
`localenv/warm_worker_launcher.py`, which hands the request to the pool and waits for the
worker's exit status. Any other use of that executable, or a pool that cannot be reached, runs
the real interpreter instead.

Lifetimes: a worker ends when its gRPC channels to the JVM close, as an unforked one does, or
when its launcher is gone (the pool kills it); the pool ends, killing any worker left, when the
job's process closes its standard input or dies.

`TPC_WARM_WORKERS=off` turns it off (each worker then starts cold, as Flink does by default).

    python -m localenv.warm_workers LISTENER_FD BOOT_MODULE [MODULE ...]  # the pool, see `Pool`
"""

import atexit
import gc
import importlib
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Optional

from localenv.paths import PROJECT_ROOT
from localenv.processes import kill

OPT_OUT_VARIABLE = "TPC_WARM_WORKERS"
BOOT_MODULE = "pyflink.fn_execution.beam.beam_boot"
# What every worker imports before its first record, besides the boot code (gRPC, Beam's protos):
# Beam's harness with PyFlink's coders and operations, and the project's transforms (what the
# job's pickled functions are made of).
PRELOADED = (
    "pyflink.fn_execution.beam.beam_sdk_worker_main",
    "pyflink.fn_execution.datastream.process.operations",
    "pyflink.fn_execution.datastream.operations",
    "transforms.flink_adapters",
    "transforms.payments_flink",
)
REQUEST_TIMEOUT_SECONDS = 5.0
DIRECTORY_PREFIX = "tpc-warm-"
POLL_SECONDS = 0.05


def enabled() -> bool:
    return os.environ.get(OPT_OUT_VARIABLE, "").lower() not in ("off", "0", "false", "no")


# --------------------------------------------------------------------------- the job's side


class Pool:
    """The pool process and the executable that hands it Flink's requests (the module a
    worker runs and what the pool imports first are parameters for tests)."""

    def __init__(
        self, python: str, boot_module: str = BOOT_MODULE, preload: tuple[str, ...] = PRELOADED
    ):
        # A short directory: a Unix socket's path may not exceed about 100 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX))
        socket_path = self.directory / "pool.sock"
        # Listening before the pool process even starts: a launcher that comes early waits in
        # the backlog instead of finding no socket (and starting its worker cold).
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(socket_path))
            listener.listen(64)
            self.process = subprocess.Popen(
                [python, "-m", "localenv.warm_workers", str(listener.fileno()), boot_module]
                + list(preload),
                stdin=subprocess.PIPE,
                pass_fds=[listener.fileno()],
                # Ctrl-C in a terminal reaches every process of the job's group. PyFlink's JVM,
                # and with it every worker it starts, ignores it (the job's process decides:
                # stop with a savepoint, say); so do the pool and its forks.
                preexec_fn=_ignore_interrupts,
                cwd=PROJECT_ROOT,
                env={**os.environ, "PYTHONPATH": _with_project_root(os.environ.get("PYTHONPATH"))},
            )
        launcher = Path(__file__).with_name("warm_worker_launcher.py")
        self.executable = self.directory / "python"
        self.executable.write_text(
            f'#!/bin/sh\nexec "{python}" -S "{launcher}" "{socket_path}" "{python}" '
            f'"{boot_module}" -- "$@"\n'
        )
        self.executable.chmod(0o755)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()  # the pool's signal to stop
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _with_project_root(python_path: Optional[str]) -> str:
    return os.pathsep.join([str(PROJECT_ROOT), *([python_path] if python_path else [])])


_pool: Optional[Pool] = None


def launcher(python: str = sys.executable) -> str:
    """The `python.executable` that makes a local job's Python workers forks of the warm pool,
    which is started (once per process) by the first call."""
    global _pool
    if _pool is None or _pool.process.poll() is not None:
        _pool = Pool(python)
        atexit.register(_pool.close)
    return str(_pool.executable)


# --------------------------------------------------------------------------- the pool


def _receive_request(connection: socket.socket) -> tuple[dict, list[int]]:
    connection.settimeout(REQUEST_TIMEOUT_SECONDS)
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    if len(fds) != 3 or len(data) < 4:
        raise ConnectionError("a launcher sent an incomplete request")
    size = struct.unpack("!I", data[:4])[0]
    body = data[4:]
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ConnectionError("a launcher went away mid-request")
        body += chunk
    connection.settimeout(None)
    return json.loads(body), fds


def _run_worker(request: dict, boot_module: str) -> None:
    """In the forked child: become the worker Flink started, then run PyFlink's boot code."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for entry in reversed(request["env"].get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    sys.argv = [boot_module, *request["args"]]
    runpy.run_module(boot_module, run_name="__main__", alter_sys=True)


def _fork_worker(request: dict, fds: list[int], inherited: list[int], boot_module: str) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _run_worker(request, boot_module)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise AssertionError("unreachable")


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def serve(listener: socket.socket, boot_module: str, preload: list[str]) -> None:
    for module in preload:
        try:
            importlib.import_module(module)
        except Exception as error:  # the worker will meet it again, and report it there
            print(f"warm worker pool: cannot preload {module}: {error!r}", file=sys.stderr)
    gc.freeze()  # the forks then share these objects' pages instead of copying them on GC
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    workers: dict[int, socket.socket] = {}
    try:
        while True:
            for key, _ in selector.select(POLL_SECONDS):
                if key.data == "parent":
                    return  # the job's process closed our stdin, or died
                if key.data == "accept":
                    connection, _ = listener.accept()
                    try:
                        request, fds = _receive_request(connection)
                    except (OSError, ValueError) as error:
                        print(f"warm worker pool: {error}", file=sys.stderr)
                        connection.close()
                        continue
                    inherited = [
                        listener.fileno(),
                        sys.stdin.fileno(),
                        *(c.fileno() for c in workers.values()),
                        connection.fileno(),
                    ]
                    pid = _fork_worker(request, fds, inherited, boot_module)
                    for fd in fds:
                        os.close(fd)
                    workers[pid] = connection
                    selector.register(connection, selectors.EVENT_READ, pid)
                else:  # a launcher's connection: closed, so its worker must go too
                    if key.data in workers:
                        kill([key.data])
            _reap(workers, selector)
    finally:
        kill(workers)
        _remove_own_directory(listener)


def _remove_own_directory(listener: socket.socket) -> None:
    """The job's process removes the directory at its exit; a job killed with `kill -9` never
    does, so the pool, which outlives it by its stdin's EOF, removes it too."""
    directory = Path(listener.getsockname()).parent
    if directory.name.startswith(DIRECTORY_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def _reap(workers: dict[int, socket.socket], selector: selectors.BaseSelector) -> None:
    while workers:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = workers.pop(pid, None)
        if connection is None:
            continue
        selector.unregister(connection)
        try:
            connection.sendall(struct.pack("!i", _exit_status(wait_status)))
        except OSError:
            pass
        connection.close()


def main(argv: Optional[list[str]] = None) -> int:
    listener_fd, boot_module, *preload = sys.argv[1:] if argv is None else argv
    serve(socket.socket(fileno=int(listener_fd)), boot_module, [boot_module, *preload])
    return 0


if __name__ == "__main__":
    sys.exit(main())
