"""Stands in for the Python interpreter that a local Flink job starts for each Python worker,
and has the warm worker pool (`localenv.warm_workers`) fork the worker instead.

Flink runs ``<python.executable> -m pyflink.fn_execution.beam.beam_boot --id=... ...`` for every
Python worker. Run as that executable (through the script `localenv.warm_workers` writes), this
file hands its arguments, environment, working directory and standard streams to the pool over
a Unix socket and waits for the forked worker's exit status, which becomes its own. Anything
else, or a pool that cannot be reached, runs the real interpreter with the same arguments: the
worker then starts cold, as it would without the pool.

It runs with ``python -S`` and imports only the standard library, so it starts in milliseconds.

    warm_worker_launcher.py SOCKET REAL_PYTHON BOOT_MODULE -- ARGS...

BOOT_MODULE is PyFlink's boot module; only ``-m BOOT_MODULE`` goes to the pool.
"""

import json
import os
import signal
import socket
import struct
import sys

CONNECT_TIMEOUT_SECONDS = 5.0
PARENT_CHECK_SECONDS = 0.5


def run_cold(real_python: str, args: list[str]) -> None:
    os.execv(real_python, [real_python, *args])


def main(argv: list[str]) -> int:
    socket_path, real_python, boot_module, separator, *args = argv
    assert separator == "--", argv
    if args[:2] != ["-m", boot_module]:
        run_cold(real_python, args)
    pool = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pool.settimeout(CONNECT_TIMEOUT_SECONDS)
    try:
        pool.connect(socket_path)
        request = json.dumps(
            {"args": args[2:], "env": dict(os.environ), "cwd": os.getcwd()}
        ).encode()
        socket.send_fds(pool, [struct.pack("!I", len(request)) + request], [0, 1, 2])
    except OSError:
        pool.close()
        run_cold(real_python, args)
    # From here the worker runs; it ends with this process's connection (the pool kills a worker
    # whose launcher is gone), so a launcher stopped by Flink stops its worker as well. Flink
    # stops a worker by killing the shell it started, which leaves this process orphaned: so
    # an orphaned launcher ends too. (A worker started cold would linger until its channels to
    # the JVM failed, which can take a minute when it had not connected yet.)
    parent = os.getppid()
    # SIGINT is not among them: the JVM that started this process ignores Ctrl-C, and so does
    # every worker it starts (this one too, as it inherited that).
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda *_: sys.exit(143))
    pool.settimeout(PARENT_CHECK_SECONDS)
    status = b""
    while len(status) < 4:
        try:
            chunk = pool.recv(4 - len(status))
        except socket.timeout:
            if os.getppid() != parent:
                return 143
            continue
        if not chunk:  # the pool went away with the worker
            return 1
        status += chunk
    return struct.unpack("!i", status)[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
