"""Helpers for the sink's tests: run the acceptance job (`tests.harness.sink_check`) in its own
process, and read back what reached the database."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from localenv.flink import child_process_environment
from localenv.jars import HOOK_JARS, fault_injection_jar
from localenv.paths import PROJECT_ROOT
from sinks.control_tables import (
    prefix_of,
    prepared_transactions,
    staged_batches,
    staged_row_count,
)

JOB_TIMEOUT_SECONDS = 240


def create_sequence_table(db, table: str = "sink_check") -> None:
    # No primary key on purpose: duplicates must be countable, not rejected.
    with db.connect(autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigint NOT NULL, v text NOT NULL)")


def create_hot_table(db, table: str = "hot_balance") -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (k text PRIMARY KEY, total numeric NOT NULL, "
            f"events bigint NOT NULL)"
        )


def job_command(db, *args: str) -> list:
    return [
        sys.executable,
        "-m",
        "tests.harness.sink_check",
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-env",
        "TPC_TEST_DB_PASSWORD",
        *args,
    ]


def job_environment(db, extra: Optional[dict] = None) -> dict:
    return child_process_environment({"TPC_TEST_DB_PASSWORD": db.password, **(extra or {})})


def run_job(
    db, *args: str, extra_env: Optional[dict] = None, timeout: float = JOB_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess:
    """Run the job to its end; its output is returned (and shown by pytest on failure).
    On timeout the whole process group (client, JVM, Python workers) is killed."""
    process = subprocess.Popen(
        job_command(db, *args),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=job_environment(db, extra_env),
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        kill_job(process)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"job still running after {timeout:.0f} s:\n{stderr[-6000:]}"
        ) from expired
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    sys.stdout.write(result.stdout[-4000:])
    sys.stderr.write(result.stderr[-8000:])
    return result


def start_job(
    db, *args: str, extra_env: Optional[dict] = None, log_path: Optional[Path] = None
) -> subprocess.Popen:
    """Start the job in its own process group, so `kill_job` can kill -9 all of it (the Python
    client, its JVM and the Python workers)."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        job_command(db, *args),
        cwd=PROJECT_ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=job_environment(db, extra_env),
        start_new_session=True,
    )


def kill_job(process: subprocess.Popen) -> None:
    """`kill -9` of the process's whole group (its JVM and Python workers too)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone already
        pass
    process.wait(timeout=60)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def id_counts(db, table: str = "sink_check"):
    """(rows, distinct ids, missing ids out of 1..count) -- call with the expected count."""
    with db.connect() as conn:
        return conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()


def missing_ids(db, count: int, table: str = "sink_check") -> int:
    with db.connect() as conn:
        return conn.execute(
            f"SELECT count(*) FROM generate_series(1, %s) g(id) "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = g.id)",
            (count,),
        ).fetchone()[0]


def dangling(db, sink_id: Optional[str] = None):
    """(prepared transactions, staged batches, staged rows) left behind, for one sink or all."""
    prefix = prefix_of(sink_id)
    with db.connect() as conn:
        prepared = len(prepared_transactions(conn, sink_id))
        # By transaction id, as the staged rows are: a batch belongs to the sink that named it.
        batches = sum(1 for batch in staged_batches(conn) if batch.gid.startswith(prefix))
        rows = staged_row_count(conn, sink_id=sink_id)
    return prepared, batches, rows


def newest_complete_checkpoint(checkpoint_root: Path) -> Optional[Path]:
    """The newest retained chk-N that has `_metadata` (the newest one after a kill may not)."""
    candidates = [p for p in Path(checkpoint_root).glob("*/chk-*") if (p / "_metadata").exists()]
    return max(candidates, key=lambda p: int(p.name.split("-")[1]), default=None)


def expected_sum(count: int) -> int:
    return count * (count + 1) // 2


def sink_fault(
    directory: Path,
    action: str = "pause",
    nth: int = 3,
    sink_id: Optional[str] = None,
    min_rows: int = 0,
) -> dict[str, str]:
    """Settings that arm the sink's fault seam (see sinks/README.md): at the `nth` non-empty
    checkpoint (or the first later one of at least `min_rows` rows), right after its rows
    became durable and before it can complete, `pause` (for a `kill -9`) or `fail` once. Pass
    them as a job's environment, or to `sink_fault_in_this_jvm`. They name the fault-injection
    test jar (`fault_jar_setting`), which the job then ships."""
    settings = {
        **fault_jar_setting(),
        "TPC_SINK_FAULT_DIR": str(directory),
        "TPC_SINK_FAULT_NTH": str(nth),
        "TPC_SINK_FAULT_ACTION": action,
        "TPC_SINK_FAULT_MIN_ROWS": str(min_rows),
    }
    if sink_id:
        settings["TPC_SINK_FAULT_SINK_ID"] = sink_id
    return settings


def fault_jar_setting() -> dict[str, str]:
    """The setting that makes a job ship the fault-injection test jar beside the sink's (built
    on first use): the sink's jar holds no fault injection, and refuses fault settings without
    it. Part of `sink_fault`'s settings; add it to settings made by hand."""
    return {HOOK_JARS: str(fault_injection_jar())}


@contextmanager
def sink_fault_in_this_jvm(settings: dict[str, str]):
    """Arms the seam in this process's JVM (the mini cluster of in-process jobs) for a block;
    the jobs whose environment (`sinks.add_sink_jars`) is made in the block ship the
    fault-injection jar the settings name."""
    from pyflink.java_gateway import get_gateway

    system = get_gateway().jvm.java.lang.System
    for key, value in settings.items():
        if key != HOOK_JARS:
            system.setProperty(key, value)
    saved = os.environ.get(HOOK_JARS)
    if HOOK_JARS in settings:
        os.environ[HOOK_JARS] = settings[HOOK_JARS]
    try:
        yield
    finally:
        for key in settings:
            system.clearProperty(key)
        if saved is None:
            os.environ.pop(HOOK_JARS, None)
        else:
            os.environ[HOOK_JARS] = saved


def sink_fault_report(directory: Path) -> Optional[dict]:
    """What the seam reported when it acted (sink_id, subtask, gid, rows), or None."""
    marker = next(Path(directory).glob("fault-*"), None)
    if marker is None:
        return None
    report: dict[str, Any] = dict(
        line.split("=", 1) for line in marker.read_text().splitlines() if "=" in line
    )
    report["rows"] = int(report["rows"])
    return report


def replayed_rows(directory: Path) -> int:
    """Rows of the faulted checkpoint: a restore must replay them, so an at-least-once sink
    writes at least this many rows twice. Fails the test if the fault never acted."""
    report = sink_fault_report(directory)
    assert report is not None, "the injected sink fault never acted: the test proved nothing"
    assert report["rows"] > 0
    return report["rows"]
