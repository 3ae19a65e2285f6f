"""Fixtures shared by every test tier.

PostgreSQL is real: one throwaway server per test session (`postgres_server`), a fresh database
per test (`database`). A real standalone Flink cluster per test module that asks for one
(`cluster`); nothing else here starts a JVM: mini-cluster tests start their own.

Nothing a test starts may outlive it. Every process of this session carries
`TPC_TEST_SESSION=<id>` in its environment (children inherit it, and keep it when their parent
dies), so after each test whatever it started and left running is found, killed and reported
as an error of that test; and at the end of the session anything still running fails the run.
"""

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Optional

import psycopg
import pytest
from psycopg import sql

from localenv.cluster import Cluster, port_free
from localenv.flink import JavaNotFoundError, prepare_process_environment
from localenv.postgres import LocalPostgres, free_port
from localenv.processes import command_line, descendants, kill, parent_of, tagged
from tests.localenv.support import cluster_command

SESSION_TAG = "TPC_TEST_SESSION"
os.environ[SESSION_TAG] = uuid.uuid4().hex  # before anything starts a process
# A job's JVM and Python workers take a few seconds to wind down after its client returns.
LEFTOVER_GRACE_SECONDS = 30


def session_processes() -> set:
    return tagged(SESSION_TAG, os.environ[SESSION_TAG])


def describe(pids) -> str:
    return "\n".join(f"  {pid}: {command_line(pid)[:160]}" for pid in sorted(pids))


def outliving(allowed: set, grace: float) -> set:
    """Processes of this session other than `allowed` and their descendants, once they had
    `grace` seconds to end."""
    deadline = time.monotonic() + grace
    while True:
        left = session_processes() - allowed - descendants(allowed)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def pytest_configure(config):
    # Whichever test first needs Java starts this process's JVM (a fixture arming the sink's
    # fault seam can come before any job): it must start with the project's log directory,
    # temp directory and class archive, as a job's would.
    try:
        prepare_process_environment()
    except JavaNotFoundError:
        pass  # the tests that need Java say so themselves


@pytest.hookimpl(trylast=True)  # after pytest's own ordering by fixture scope
def pytest_collection_modifyitems(items):
    # Beam tests first, whatever folder they are in: once a PyFlink job ran in this process,
    # Beam's DirectRunner fails (see tests/transforms/conftest.py, require_clean_beam_worker).
    # The sort is stable: every other test keeps its place relative to the others.
    items.sort(key=lambda item: item.get_closest_marker("beam") is None)


def jvm_log() -> Optional[Path]:
    """This process's JVM log (see localenv.flink.prepare_process_environment), if any."""
    directory = os.environ.get("FLINK_LOG_DIR")
    ident = os.environ.get("FLINK_IDENT_STRING")
    if not directory or not ident:
        return None
    return next(Path(directory).glob(f"flink-{ident}-python-*.log"), None)


# What a failed test shows of this process's JVM log: errors, and tasks stuck in cancellation
# (a task that never cancels costs the mini cluster its TaskManager, and the job then fails
# with NoResourceAvailableException after every restart, which says nothing of the cause).
TROUBLE = re.compile(r" ERROR |FATAL|did not react to cancelling|did not exit gracefully")
TROUBLE_LINES = 200


def jvm_log_trouble(log: Path, offset: int) -> str:
    with log.open(errors="replace") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    shown: list[str] = []
    for i, line in enumerate(lines):
        if TROUBLE.search(line):
            shown.append(line[:400])
            for follow in lines[i + 1 : i + 25]:  # its stack trace, if any
                if not follow[:1].isspace() and not follow.startswith(("Caused by", "app//")):
                    break
                shown.append(follow[:400])
    if len(shown) > TROUBLE_LINES:
        shown = shown[: TROUBLE_LINES // 2] + ["[...]"] + shown[-TROUBLE_LINES // 2 :]
    return "\n".join(shown)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "setup":
        log = jvm_log()
        item.stash[LOG_OFFSET] = log.stat().st_size if log else 0
    elif report.when == "call" and report.failed:
        log = jvm_log()
        trouble = log and jvm_log_trouble(log, item.stash.get(LOG_OFFSET, 0))
        if trouble:
            report.sections.append((f"this process's Flink log ({log}): trouble", trouble))


LOG_OFFSET = pytest.StashKey[int]()


# What jobs run inside the test process start once and keep for the session: PyFlink's JVM, and
# the warm pool their Python workers are forked from (localenv/warm_workers.py).
SESSION_LONG_CHILDREN = ("PythonGatewayServer", "localenv.warm_workers")


def session_long_children() -> set:
    """The JVM (and the warm worker pool) of jobs run inside the test process."""
    return {
        pid
        for pid in session_processes()
        if parent_of(pid) == os.getpid()
        and any(name in command_line(pid) for name in SESSION_LONG_CHILDREN)
    }


@pytest.fixture
def control_seen(record_property):
    """Records what an at-least-once control observed; the run's summary lists every control."""

    def seen(duplicated: int, at_least: int, what: str = "duplicated rows") -> None:
        record_property("control", f"{duplicated} {what} (at least {at_least} expected)")

    return seen


def pytest_terminal_summary(terminalreporter):
    lines = [
        f"{report.nodeid}: {value}"
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if report.when == "call"
        for key, value in report.user_properties
        if key == "control"
    ]
    if lines:
        terminalreporter.section("at-least-once controls")
        for line in lines:
            terminalreporter.line(line)


# Set by tests and by the jobs they run in this process; each test gets them back as they were,
# so no test depends on what an earlier one left (a password, a Python worker mode).
PER_TEST_VARIABLES = re.compile(r"TPC_TEST_.*|_python_worker_execution_mode")


@pytest.fixture(autouse=True)
def environment_restored():
    before = {k: v for k, v in os.environ.items() if PER_TEST_VARIABLES.fullmatch(k)}
    yield
    for key in [k for k in os.environ if PER_TEST_VARIABLES.fullmatch(k)]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


# Processes that a test started on behalf of a longer-lived fixture, which stops them: e.g. a
# module's PostgreSQL server that the test crashed and started again (a new postmaster).
ADOPTED: set = set()


@pytest.fixture
def adopt_process():
    """`adopt_process(pid)`: the process belongs to a longer-lived fixture, not to this test."""
    return ADOPTED.add


@pytest.fixture(autouse=True)
def nothing_outlives_the_test():
    # Higher-scoped fixtures (servers, clusters) are set up before this one: they are allowed.
    before = session_processes()
    yield
    left = outliving(before | session_long_children() | ADOPTED, LEFTOVER_GRACE_SECONDS)
    if left:
        listing = describe(left)
        kill(left)
        pytest.fail(
            f"{len(left)} process(es) outlived the test and were killed:\n{listing}", pytrace=False
        )


def pytest_sessionfinish(session):
    left = outliving(session_long_children(), LEFTOVER_GRACE_SECONDS)
    if left:
        listing = describe(left)
        kill(left)
        session.config.get_terminal_writer().line(
            f"\nFAILED: {len(left)} process(es) of this test session were still running at its "
            f"end and were killed:\n{listing}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    """A new, empty database for one test; its `.password` never appears in output.

    Afterwards, whatever the test left prepared there is rolled back: a failed job's prepared
    transactions would otherwise stay on the shared server, holding its locks and showing up
    in later tests that count the server's `tpc:` transactions."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    db = postgres_server.create_database(f"t_{slug}_{uuid.uuid4().hex[:6]}")
    yield db
    try:
        conn = db.connect(autocommit=True)
    except psycopg.OperationalError:
        return  # the test left the server stopped, and has said so itself
    with conn:
        for (gid,) in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall():
            conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))


@pytest.fixture(scope="module")
def cluster(request):
    """A standalone cluster of the test module (a JobManager and two TaskManagers on 127.0.0.1,
    started and stopped with `python -m localenv.cluster`, on free ports if 8081/6123 are
    taken), named after this process so that it never touches a developer's own cluster.
    Always stopped when the module is done; its logs are kept if a test failed."""
    failed_before = request.session.testsfailed
    name = f"pytest-{os.getpid()}"
    rest_port = 8081 if port_free(8081) else free_port()
    rpc_port = 6123 if port_free(6123) else free_port()
    handle = Cluster(name, rest_port, rpc_port)
    started = time.monotonic()
    try:
        result = cluster_command(
            name, "--rest-port", str(rest_port), "--rpc-port", str(rpc_port), "start"
        )
        assert result.returncode == 0, "cluster did not start"
        assert f"Web UI: http://127.0.0.1:{rest_port}" in result.stdout
        print(f"cluster up in {time.monotonic() - started:.1f} s")
        yield handle
    finally:
        cluster_command(name, "stop", timeout=120)  # idempotent: also after the last test
        if request.session.testsfailed == failed_before:
            shutil.rmtree(handle.home, ignore_errors=True)  # its logs are kept on failure
