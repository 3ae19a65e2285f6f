"""Which database errors the sink retries, and the timeouts every connection carries.

Each transient class is produced for real, on a real PostgreSQL, through a connection the sink
itself opens (`Connections.open`, so with the sink's own timeouts), and classified by the one
place that decides (`SqlStates`). Permanent errors are the control: a classifier that called
everything transient would pass the transient tests and fail these.
"""

import threading
import time
import uuid

import pytest
from py4j.protocol import Py4JJavaError

from localenv.postgres import LocalPostgres, free_port

pytestmark = [pytest.mark.minicluster]


@pytest.fixture(scope="module")
def jvm():
    from pyflink.java_gateway import get_gateway

    from localenv.flink import local_environment
    from sinks import add_sink_jars

    add_sink_jars(local_environment(parallelism=1))
    return get_gateway().jvm


@pytest.fixture(scope="module")
def own_server():
    """A server of this module's own: these tests crash it and change its settings."""
    with LocalPostgres(max_prepared_transactions=8) as server:
        yield server


def builder(db, monkeypatch, **setters):
    from sinks import TwoPhaseCommitSink

    b = (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(db.jdbc_url)
        .set_user(db.user)
        .set_password_file(db.password_file)
        .set_field_names(["id"])
        .add_statement("SELECT :id")
        .set_sink_id("errors")
    )
    for name, value in setters.items():
        getattr(b, name)(*value) if isinstance(value, tuple) else getattr(b, name)(value)
    return b


def open_connection(jvm, db, monkeypatch, name="tpc-errors-test", **setters):
    config = builder(db, monkeypatch, **setters).java_config()
    return jvm.dev.tpc.sink.Connections.open(config, name)


def java_error(jvm, action):
    """(SQLSTATE, transient?) of the SQLException that `action` raises in the JVM."""
    with pytest.raises(Py4JJavaError) as raised:
        action()
    exception = raised.value.java_exception
    states = jvm.dev.tpc.sink.SqlStates
    return states.stateOf(exception), states.isTransient(exception)


def execute(connection, sql):
    statement = connection.createStatement()
    try:
        statement.execute(sql)
    finally:
        statement.close()


def backend_pid(db, application_name):
    with db.connect() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchone()
    assert row, f"no session named {application_name}"
    return row[0]


# -- every connection carries the timeouts ---------------------------------------------------


def test_every_connection_carries_timeouts_keepalives_and_durable_commits(
    jvm, database, monkeypatch
):
    connection = open_connection(
        jvm,
        database,
        monkeypatch,
        set_lock_timeout_ms=1234,
        set_statement_timeout_ms=5678,
        set_socket_timeout_s=17,
    )
    try:
        shown = {}
        for setting in (
            "lock_timeout",
            "statement_timeout",
            "tcp_keepalives_idle",
            "tcp_keepalives_interval",
            "tcp_keepalives_count",
            "synchronous_commit",
        ):
            statement = connection.createStatement()
            result = statement.executeQuery(f"SHOW {setting}")
            result.next()
            shown[setting] = result.getString(1)
            statement.close()
        assert shown == {
            "lock_timeout": "1234ms",
            "statement_timeout": "5678ms",
            "tcp_keepalives_idle": "30",
            "tcp_keepalives_interval": "10",
            "tcp_keepalives_count": "3",
            # the test server runs with synchronous_commit = off: raised for the sink
            "synchronous_commit": "local",
        }
        assert connection.getNetworkTimeout() == 17_000  # pgjdbc's socketTimeout, in ms
    finally:
        connection.close()
    config = builder(database, monkeypatch).java_config()
    properties = config.jdbcProperties("x")
    assert properties.getProperty("tcpKeepAlive") == "true"
    assert properties.getProperty("connectTimeout") == "10"
    assert properties.getProperty("socketTimeout") == "90"
    assert database.password not in config.toString()
    assert database.password not in config.sessionOptions()


def test_socket_timeout_must_exceed_statement_timeout(jvm, database, monkeypatch):
    from sinks import SinkConfigurationError

    with pytest.raises(SinkConfigurationError, match="must exceed the statement timeout"):
        builder(
            database, monkeypatch, set_statement_timeout_ms=120_000, set_socket_timeout_s=90
        ).java_config()
    with pytest.raises(SinkConfigurationError, match="set_socket_timeout_s"):
        builder(database, monkeypatch).set_connection_property("socketTimeout", "0").java_config()


def test_commit_back_off_fits_flinks_retry_cap_and_the_checkpoint_timeout(
    jvm, database, monkeypatch
):
    config = builder(database, monkeypatch).java_config()
    delays = [config.commitRetryDelayMillis(retry) for retry in range(config.maxCommitRetries())]
    assert delays == [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000, 10_000]
    assert config.maxCommitRetries() == 10  # Flink's default sink.committer.retries
    # Long enough for a database restart or a minute's outage of the committer alone, and short
    # of the 2-minute checkpoint timeout (a sleeping committer holds up its task's checkpoint).
    assert 60_000 <= sum(delays) < 120_000


# -- transient classes, produced for real ----------------------------------------------------


def test_unreachable_server_is_transient_08001(jvm, database, monkeypatch):
    from dataclasses import replace

    nowhere = replace(database, port=free_port())
    state, transient = java_error(jvm, lambda: open_connection(jvm, nowhere, monkeypatch))
    assert (state, transient) == ("08001", True)


def test_terminated_session_is_transient_57P01(jvm, database, monkeypatch):
    connection = open_connection(jvm, database, monkeypatch, name="tpc-errors-terminated")
    try:
        pid = backend_pid(database, "tpc-errors-terminated")
        with database.connect(autocommit=True) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]
        state, transient = java_error(jvm, lambda: execute(connection, "SELECT 1"))
    finally:
        connection.close()
    assert (state, transient) == ("57P01", True)


def test_statement_timeout_is_transient_57014(jvm, database, monkeypatch):
    connection = open_connection(
        jvm, database, monkeypatch, set_statement_timeout_ms=200, set_socket_timeout_s=5
    )
    try:
        state, transient = java_error(jvm, lambda: execute(connection, "SELECT pg_sleep(3)"))
    finally:
        connection.close()
    assert (state, transient) == ("57014", True)


def test_lock_timeout_is_transient_55P03(jvm, database, monkeypatch):
    with database.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE locked (id int)")
    connection = open_connection(jvm, database, monkeypatch, set_lock_timeout_ms=200)
    try:
        with database.connect() as holder:  # holds the lock until the block ends
            holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
            state, transient = java_error(jvm, lambda: execute(connection, "SELECT * FROM locked"))
    finally:
        connection.close()
    assert (state, transient) == ("55P03", True)


def test_serialization_failure_is_transient_40001(jvm, database, monkeypatch):
    with database.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE account (id int PRIMARY KEY, n int)")
        conn.execute("INSERT INTO account VALUES (1, 0)")
    connection = open_connection(jvm, database, monkeypatch)
    try:
        connection.setAutoCommit(False)
        connection.setTransactionIsolation(4)  # REPEATABLE READ
        execute(connection, "SELECT * FROM account")  # the snapshot is taken here
        with database.connect(autocommit=True) as conn:
            conn.execute("UPDATE account SET n = n + 1 WHERE id = 1")
        state, transient = java_error(
            jvm, lambda: execute(connection, "UPDATE account SET n = n + 1 WHERE id = 1")
        )
        connection.rollback()
    finally:
        connection.close()
    assert (state, transient) == ("40001", True)


def test_too_many_connections_is_transient_53300(
    jvm, postgres_server, database, monkeypatch, tmp_path
):
    from dataclasses import replace

    role, password = f"tpc_limited_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with database.connect(autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0 PASSWORD '{password}'")
    (tmp_path / "password").write_text(password)
    try:
        limited = replace(
            database, user=role, password=password, password_file=tmp_path / "password"
        )
        state, transient = java_error(jvm, lambda: open_connection(jvm, limited, monkeypatch))
    finally:
        with database.connect(autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
    assert (state, transient) == ("53300", True)


def test_server_crash_is_transient(jvm, own_server, monkeypatch, adopt_process):
    """`pg_ctl stop -m immediate` under an open session: 57P01 (the backend said goodbye) or
    08006 (the socket broke first), both connection-level, both transient."""
    db = own_server.create_database("crash")
    connection = open_connection(jvm, db, monkeypatch)
    try:
        own_server.stop_immediately()
        try:
            state, transient = java_error(jvm, lambda: execute(connection, "SELECT 1"))
            reconnect = java_error(jvm, lambda: open_connection(jvm, db, monkeypatch))
        finally:
            own_server.start_again()
            adopt_process(own_server.server_pid())
    finally:
        connection.close()
    assert state in ("57P01", "08006") and transient, state
    assert reconnect == ("08001", True)
    open_connection(jvm, db, monkeypatch).close()  # and back after crash recovery


def test_busy_prepared_transaction_is_transient_55000(jvm, own_server, monkeypatch):
    """COMMIT PREPARED of a transaction another session is still committing: 55000 "prepared
    transaction ... is busy". This is what a committer meets when its previous connection broke
    mid-commit and that connection's backend has not finished yet. To hold a COMMIT PREPARED
    open, make it wait for a synchronous standby that does not exist."""
    db = own_server.create_database("busy")
    with db.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(1.0)  # the checkpointer publishes the new standby setting
    gid = "tpc:errors:busy"
    with db.connect() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute(f"PREPARE TRANSACTION '{gid}'")
    waiting = db.connect(autocommit=True)
    waiting.execute("SET synchronous_commit = on")
    committing = threading.Thread(
        target=lambda: waiting.execute(f"COMMIT PREPARED '{gid}'"), daemon=True
    )
    try:
        committing.start()
        with db.connect(autocommit=True) as conn:
            deadline = time.monotonic() + 20
            while not conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "COMMIT PREPARED never waited"
                time.sleep(0.05)
        connection = open_connection(jvm, db, monkeypatch)
        try:
            state, transient = java_error(
                jvm, lambda: execute(connection, f"COMMIT PREPARED '{gid}'")
            )
        finally:
            connection.close()
    finally:
        with db.connect(autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
            )
        committing.join(timeout=20)
        waiting.close()
    assert (state, transient) == ("55000", True)


# -- permanent classes: the control ----------------------------------------------------------


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT * FROM no_such_table", "42P01"),
        ("CREATE TABLE twice (id int); CREATE TABLE twice (id int)", "42P07"),
        ("SELECT 1/0", "22012"),
        ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'unique_violation'; END $$", "23505"),
    ],
)
def test_errors_that_fail_the_same_way_every_time_are_permanent(
    jvm, database, monkeypatch, sql, expected
):
    connection = open_connection(jvm, database, monkeypatch)
    try:
        assert java_error(jvm, lambda: execute(connection, sql)) == (expected, False)
    finally:
        connection.close()


def test_wrong_password_is_permanent_28P01(jvm, database, monkeypatch, tmp_path):
    from dataclasses import replace

    (tmp_path / "wrong").write_text("not-the-password")
    wrong = replace(database, password="not-the-password", password_file=tmp_path / "wrong")
    assert java_error(jvm, lambda: open_connection(jvm, wrong, monkeypatch)) == ("28P01", False)


@pytest.mark.parametrize(
    "state, transient",
    [
        (None, True),
        ("08000", True),
        ("08006", True),
        ("08P01", True),
        ("53100", True),
        ("57P02", True),
        ("57P03", True),
        ("57P05", True),
        ("25P03", True),
        ("40P01", True),
        ("40003", True),
        ("57P04", False),
        ("57000", False),
        ("55006", False),
        ("42501", False),
        ("XX000", False),
        ("0A000", False),
    ],
)
def test_classification_table(jvm, state, transient):
    """The classes that cannot be produced cheaply for real (server starting up, disk full,
    deadlock, database dropped ...), by SQLSTATE."""
    assert jvm.dev.tpc.sink.SqlStates.isTransientState(state) is transient
