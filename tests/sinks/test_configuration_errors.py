"""Misconfiguration fails in `build()`, before any job runs, with a message that says what to do."""

from dataclasses import replace
from pathlib import Path

import pytest

from localenv.postgres import free_port

pytestmark = [pytest.mark.minicluster]

ROW_FIELDS = ["id", "v"]


@pytest.fixture(scope="module")
def flink_env():
    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(parallelism=1)
    add_sink_jars(env)
    return env


@pytest.fixture
def out_table(database):
    with database.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE out (id bigint, v text)")
    return database


def builder(db, monkeypatch, mode="staged", sink_id="cfg", statement=None):
    from sinks import TwoPhaseCommitSink

    b = TwoPhaseCommitSink.builder().set_jdbc_url(db.jdbc_url).set_user(db.user)
    if db.password_file is not None:  # this JVM started before the server's password existed
        b.set_password_file(db.password_file)
    return (
        b.set_field_names(ROW_FIELDS)
        .add_statement(statement or "INSERT INTO out (id, v) VALUES (:id, :v)")
        .set_sink_id(sink_id)
        .set_mode(mode)
    )


def assert_config_error(build, *needles):
    from sinks import SinkConfigurationError

    with pytest.raises(SinkConfigurationError) as error:
        build()
    message = str(error.value)
    for needle in needles:
        assert needle in message, message
    # the advice alone: no Java stack, no py4j wrapping
    assert error.value.__cause__ is None, repr(error.value.__cause__)
    for noise in ("py4j", "An error occurred while calling", "\tat "):
        assert noise not in message, message
    return message


def test_valid_configuration_builds_and_reports_the_server(flink_env, out_table, monkeypatch):
    sink = builder(out_table, monkeypatch, mode="prepared").build()
    assert "PostgreSQL 15" in sink.summary or "PostgreSQL" in sink.summary


def test_unreachable_database(flink_env, out_table, monkeypatch):
    unreachable = replace(out_table, port=free_port())
    assert_config_error(
        builder(unreachable, monkeypatch).build, "unreachable", f"127.0.0.1:{unreachable.port}"
    )


def test_wrong_password_is_reported_without_echoing_it(flink_env, out_table, monkeypatch, tmp_path):
    (tmp_path / "wrong").write_text("not-the-password\n")
    wrong = replace(out_table, password_file=tmp_path / "wrong")
    message = assert_config_error(builder(wrong, monkeypatch).build, "authentication failed")
    assert "not-the-password" not in message


def test_missing_password_variable(flink_env, out_table, monkeypatch):
    monkeypatch.delenv("TPC_CFG_UNSET_PASSWORD", raising=False)
    b = builder(replace(out_table, password_file=None), monkeypatch)
    b.set_password_env("TPC_CFG_UNSET_PASSWORD")
    assert_config_error(
        b.build, "environment variable TPC_CFG_UNSET_PASSWORD", "not set in this process"
    )


def test_password_variable_set_after_the_jvm_started(flink_env, out_table, monkeypatch):
    """The mini cluster's pitfall: the JVM copied the environment when it started."""
    monkeypatch.setenv("TPC_CFG_LATE_PASSWORD", out_table.password)
    b = builder(replace(out_table, password_file=None), monkeypatch)
    b.set_password_env("TPC_CFG_LATE_PASSWORD")
    message = assert_config_error(
        b.build, "TPC_CFG_LATE_PASSWORD is set in this Python process but not in its JVM"
    )
    assert out_table.password not in message


def test_unreadable_or_empty_password_file(flink_env, out_table, monkeypatch, tmp_path):
    missing = tmp_path / "no-such-secret"
    message = assert_config_error(
        builder(replace(out_table, password_file=missing), monkeypatch).build,
        f"cannot read the password file {missing}",
    )
    (tmp_path / "empty").write_text("\n")
    empty = replace(out_table, password_file=tmp_path / "empty")
    assert_config_error(builder(empty, monkeypatch).build, f"{tmp_path / 'empty'} is empty")
    assert out_table.password not in message


def test_one_password_source(flink_env, out_table, monkeypatch):
    b = builder(out_table, monkeypatch).set_password_env("PGPASSWORD")
    assert_config_error(b.build, "only one of", "set_password_env", "set_password_file")


def test_prepared_transactions_disabled(
    flink_env, postgres_server_without_prepared_transactions, monkeypatch
):
    db = postgres_server_without_prepared_transactions.create_database("no_prepared")
    with db.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE out (id bigint, v text)")
    assert_config_error(
        builder(db, monkeypatch, mode="prepared").build, "max_prepared_transactions", "staged"
    )
    # The same stock server is fine for staged mode, which needs no prepared transactions.
    builder(db, monkeypatch, mode="staged").build()


@pytest.mark.parametrize("sink_id", ["bad id!", "", "x" * 65, "quote'd", "tpc:colon"])
def test_bad_sink_id(flink_env, out_table, monkeypatch, sink_id):
    assert_config_error(builder(out_table, monkeypatch, sink_id=sink_id).build, "sink id")


def test_statement_naming_a_field_the_rows_lack(flink_env, out_table, monkeypatch):
    statement = "INSERT INTO out (id, v) VALUES (:id, :amount)"
    assert_config_error(
        builder(out_table, monkeypatch, statement=statement).build,
        "add_statement: ",
        "':amount' that the rows lack",
        "[id, v]",
    )


def test_statement_the_database_rejects(flink_env, out_table, monkeypatch):
    statement = "INSERT INTO no_such_table (id) VALUES (:id)"
    assert_config_error(
        builder(out_table, monkeypatch, statement=statement).build,
        "statement rejected by PostgreSQL",
        "no_such_table",
    )


def test_password_in_url_is_refused(flink_env, out_table, monkeypatch):
    b = builder(out_table, monkeypatch).set_jdbc_url(out_table.jdbc_url + "?password=secret")
    message = assert_config_error(b.build, "set_jdbc_url: ", "password=***", "set_password_env")
    assert "secret" not in message


def test_unknown_mode(flink_env, out_table, monkeypatch):
    assert_config_error(
        builder(out_table, monkeypatch, mode="eventually").build,
        "set_mode: unknown commit mode 'eventually'",
        "'prepared', 'staged' or 'at_least_once'",
    )


@pytest.mark.parametrize(
    "setter, args, needles",
    [
        ("set_jdbc_url", ("jdbc:mysql://db/x",), ["'jdbc:mysql://db/x'", "jdbc:postgresql://"]),
        ("set_jdbc_url", (None,), ["required"]),
        # pgjdbc would let the URL's replace the sink's own.
        (
            "set_jdbc_url",
            ("jdbc:postgresql://db/x?sslmode=require&socketTimeout=5",),
            ["sets 'socketTimeout'", "leave it out of the URL", "set_socket_timeout_s"],
        ),
        ("set_jdbc_url", (Path("db"),), ["cannot take a value of type PosixPath"]),
        ("set_sink_id", ("tpc:colon",), ["sink id 'tpc:colon' is invalid", "1 to 64"]),
        ("set_batch_size", (0,), ["batch size 0 is invalid", "at least 1"]),
        ("set_on_row_error", ("skip",), ["'skip'", "'fail' or 'dead_letter'"]),
        ("set_lock_timeout_ms", (-1,), ["-1 ms is invalid", "default 30000 ms"]),
        ("set_connect_timeout_s", (-1,), ["-1 s is invalid"]),
        ("set_socket_timeout_s", (30,), ["(30 s) must exceed", "set_statement_timeout_ms"]),
        ("set_max_commit_retries", (-1,), ["-1 commit retries", "0 or more"]),
        ("set_commit_retry_backoff_ms", (500, 100), ["from 500 ms up to 100 ms"]),
        ("set_control_schema", ("Bad-Schema",), ["'Bad-Schema'", "lower-case SQL identifier"]),
        ("set_connection_property", ("tcpKeepAlive", "false"), ["'tcpKeepAlive'", "always on"]),
        ("set_connection_property", ("socketTimeout", "0"), ["use set_socket_timeout_s"]),
        ("set_commit_log_retention_hours", (0.0001,), ["0.0001 hours", "at least 1 second"]),
        ("set_prepared_transaction_warning_s", (0,), ["of 0 s", "at least 1 second"]),
        ("set_owner_wait_s", (float("nan"),), ["NaN s", "0 (refuse at once)"]),
        ("set_field_names", ([],), ["required", "set_row_type"]),
        ("set_statements", ([],), ["at least one"]),
        ("add_statement", ("INSERT INTO out VALUES (?)",), ["'?'"]),
        ("set_commit_scope", ("job",), ["unknown commit scope 'job'", "subtask or checkpoint"]),
    ],
)
def test_a_bad_setting_is_named_before_the_database_is_contacted(
    flink_env, out_table, monkeypatch, setter, args, needles
):
    """Through the Python builder, a bad setting fails `build()` with the Java builder's
    advice, naming the Python setter and the value, before any connection is tried (the
    database here is unreachable), let alone any data moved."""
    unreachable = replace(out_table, port=free_port())
    b = getattr(builder(unreachable, monkeypatch), setter)(*args)
    named = "add_statement" if setter == "set_statements" else setter  # the one to call
    message = assert_config_error(b.build, f"{named}: ", *needles)
    assert "unreachable" not in message and unreachable.password not in message
    with out_table.connect() as conn:
        assert conn.execute("SELECT count(*) FROM out").fetchone()[0] == 0


@pytest.mark.parametrize(
    "checkpointing, needle",
    [
        ({}, "checkpointing is off"),
        (
            {
                "execution.checkpointing.interval": "1 s",
                "execution.checkpointing.mode": "AT_LEAST_ONCE",
            },
            "execution.checkpointing.mode is AT_LEAST_ONCE",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_a_job_without_exactly_once_checkpoints_is_refused_before_it_runs(
    out_table, monkeypatch, checkpointing, needle, mode
):
    from pyflink.common import Row, Types

    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(parallelism=1, settings=checkpointing)
    add_sink_jars(env)
    rows = env.from_collection(
        [Row(1, "a")], type_info=Types.ROW_NAMED(ROW_FIELDS, [Types.LONG(), Types.STRING()])
    )
    rows.sink_to(builder(out_table, monkeypatch, mode=mode).build())
    with pytest.raises(Exception) as error:
        env.execute("no-exactly-once-checkpoints")
    assert needle in str(error.value) and f"sink 'cfg' ({mode} mode)" in str(error.value)
    with out_table.connect() as conn:
        assert conn.execute("SELECT count(*) FROM out").fetchone()[0] == 0


def test_a_bounded_batch_job_needs_no_checkpoints(out_table, monkeypatch):
    from pyflink.common import Row, Types

    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(parallelism=1, settings={"execution.runtime-mode": "BATCH"})
    add_sink_jars(env)
    rows = env.from_collection(
        [Row(1, "a"), Row(2, "b")],
        type_info=Types.ROW_NAMED(ROW_FIELDS, [Types.LONG(), Types.STRING()]),
    )
    rows.sink_to(builder(out_table, monkeypatch, mode="staged").build())
    env.execute("batch-without-checkpoints")
    with out_table.connect() as conn:
        assert conn.execute("SELECT count(*) FROM out").fetchone()[0] == 2


def test_checkpoint_scope_refuses_unaligned_checkpoints_before_it_runs(out_table, monkeypatch):
    """Checkpoint scope gathers a checkpoint's batches when its barrier arrives: unaligned
    barriers would let some of them join the next checkpoint."""
    from pyflink.common import Row, Types

    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(
        parallelism=1,
        settings={
            "execution.checkpointing.interval": "1 s",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.unaligned.enabled": "true",
        },
    )
    add_sink_jars(env)
    rows = env.from_collection(
        [Row(1, "a")], type_info=Types.ROW_NAMED(ROW_FIELDS, [Types.LONG(), Types.STRING()])
    )
    rows.sink_to(builder(out_table, monkeypatch).set_commit_scope("checkpoint").build())
    with pytest.raises(Exception) as error:
        env.execute("unaligned-checkpoint-scope")
    assert "needs aligned checkpoint barriers" in str(error.value)


def test_a_bounded_batch_job_in_checkpoint_scope_commits_at_the_end(out_table, monkeypatch):
    from pyflink.common import Row, Types

    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(parallelism=2, settings={"execution.runtime-mode": "BATCH"})
    add_sink_jars(env)
    rows = env.from_collection(
        [Row(i, f"v{i}") for i in range(1, 101)],
        type_info=Types.ROW_NAMED(ROW_FIELDS, [Types.LONG(), Types.STRING()]),
    )
    rows.sink_to(builder(out_table, monkeypatch).set_commit_scope("checkpoint").build())
    env.execute("batch-checkpoint-scope")
    with out_table.connect() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM out").fetchone() == (100, 100)
        logged = conn.execute(
            "SELECT count(DISTINCT written_at), array_agg(DISTINCT mode) FROM tpc_commit_log "
            "WHERE sink_id = 'cfg'"
        ).fetchone()
    assert logged == (1, ["CHECKPOINT"])


def serialized_sink(sink) -> bytes:
    """The sink's bytes as the job graph carries them (Java serialization of the operator's
    sink object)."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    return bytes(
        jvm.org.apache.flink.util.InstantiationUtil.serializeObject(sink.get_java_function())
    )


def test_the_serialized_sink_holds_where_the_password_is_not_the_password(
    flink_env, out_table, monkeypatch
):
    """CI's guard for tests/sinks/test_no_password_in_the_job.py (a campaign): the sink as the
    job graph serializes it holds the file's path, not the password it read."""
    password = out_table.password.encode()
    by_file = serialized_sink(builder(out_table, monkeypatch).build())
    assert password not in by_file
    assert str(out_table.password_file).encode() in by_file
    # The control: a password given as a value travels in the job graph.
    explicit = builder(replace(out_table, password_file=None), monkeypatch)
    assert password in serialized_sink(explicit.set_password(out_table.password).build())
