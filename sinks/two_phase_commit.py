"""`TwoPhaseCommitSink`: exactly-once writes to PostgreSQL from a PyFlink DataStream.

    from sinks import TwoPhaseCommitSink, add_sink_jars

    add_sink_jars(env)                       # the sink's jar (JDBC driver included)
    rows = stream.map(to_row, output_type=ROW_TYPE)   # Types.ROW_NAMED(...) is required
    rows.sink_to(
        TwoPhaseCommitSink.builder()
        .set_jdbc_url("jdbc:postgresql://127.0.0.1:5432/payments")
        .set_user("app")
        .set_password_env("PGPASSWORD")      # read where the sink runs, never in the job graph
        .set_row_type(ROW_TYPE)
        .add_statement("INSERT INTO ledger (event_id, amount) VALUES (:event_id, :amount)")
        .set_sink_id("ledger")
        .set_mode("staged")
        .build())

`build()` checks what can be checked before the job starts and raises `SinkConfigurationError`
with advice: the settings (validated once, by the Java `SinkConfigBuilder` this builder hands
them to), then the driver, the database, prepared transactions and the statements against the
schema. The sink knows nothing about the rows' meaning: it runs the statements for each row.
"""

import datetime
import os
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Optional

from pyflink.datastream.connectors.base import Sink

from localenv.jars import hook_jars, sink_jar

if TYPE_CHECKING:
    from pyflink.datastream import DataStream
    from pyflink.datastream.data_stream import DataStreamSink

JAVA_SINK_CLASS = "dev.tpc.sink.PostgresTwoPhaseCommitSink"


class SinkConfigurationError(ValueError):
    """The sink cannot work as configured; raised before any data moves."""


class CommitMode(str, Enum):
    PREPARED = "prepared"  # PREPARE TRANSACTION / COMMIT PREPARED
    STAGED = "staged"  # staging table, applied at commit (hot keys, stock PostgreSQL)
    AT_LEAST_ONCE = "at_least_once"  # autocommitted batches: a baseline and a test control


def add_sink_jars(env) -> None:
    """Add the sink's jar, which holds the PostgreSQL JDBC driver, to a
    StreamExecutionEnvironment, and the jars of sink hooks `TPC_SINK_HOOK_JARS` names (the fault
    tests' fault injection, which the sink's jar does not hold: see sinks/README.md)."""
    try:
        jars = [sink_jar(), *hook_jars()]
    except RuntimeError as error:
        raise SinkConfigurationError(str(error)) from error
    env.add_jars(*(jar.resolve().as_uri() for jar in jars))


def add_kafka_jars(env) -> None:
    """Add Flink's Kafka connector and the Kafka client (sinks/kafka/pom.xml, resolved into
    var/jars/kafka/) to a StreamExecutionEnvironment: for jobs that read Kafka, next to
    `add_sink_jars`, whose jar holds the record format (dev.tpc.source.KafkaLineRecords)."""
    from localenv.jars import kafka_connector_jars

    try:
        jars = kafka_connector_jars()
    except RuntimeError as error:
        raise SinkConfigurationError(str(error)) from error
    env.add_jars(*(jar.resolve().as_uri() for jar in jars))


class CommitScope(str, Enum):
    SUBTASK = "subtask"  # each subtask's checkpoint in a transaction of its own
    CHECKPOINT = "checkpoint"  # a whole checkpoint, every subtask, in one transaction (staged)


class TwoPhaseCommitSink(Sink):
    """A PyFlink Sink wrapping the Java two-phase-commit core; create it with `builder()`."""

    def __init__(self, j_sink, summary: str = "", tables: Sequence[str] = ()):
        super().__init__(j_sink)
        self.summary = summary
        self.tables = list(tables)

    def attach(self, streams: Mapping[str, "DataStream"]) -> "DataStreamSink":
        """Connect one stream per table (`add_table`) to this sink, by table name, and return
        the sink for `.uid(...)` and `.name(...)`. Each stream carries its table's
        `Types.ROW_NAMED(...)` rows; they reach the sink, on the JVM, in an envelope that names
        their table, and all tables are committed together."""
        from py4j.protocol import Py4JJavaError
        from pyflink.datastream.data_stream import DataStreamSink
        from pyflink.java_gateway import get_gateway

        if not self.tables:
            raise SinkConfigurationError(
                "attach() is for a sink with several tables (add_table); use stream.sink_to(sink)"
            )
        unknown = sorted(set(streams) - set(self.tables))
        missing = [name for name in self.tables if name not in streams]
        if unknown or missing:
            raise SinkConfigurationError(
                f"attach() needs one stream per table {self.tables}: "
                + (f"unknown {unknown} " if unknown else "")
                + (f"missing {missing}" if missing else "")
            )
        gateway = get_gateway()
        names = gateway.new_array(gateway.jvm.String, len(streams))
        j_streams = gateway.jvm.java.util.ArrayList()
        for i, (name, stream) in enumerate(streams.items()):
            names[i] = name
            j_streams.add(stream._j_data_stream)
        try:
            j_sink = gateway.jvm.dev.tpc.sink.TableEnvelope.sinkTo(
                self.get_java_function(), names, j_streams
            )
        except Py4JJavaError as error:
            raise SinkConfigurationError(_java_message(error)) from None
        return DataStreamSink(j_sink)

    @staticmethod
    def builder() -> "TwoPhaseCommitSinkBuilder":
        return TwoPhaseCommitSinkBuilder()


class TwoPhaseCommitSinkBuilder:
    """Records the settings; `build()` hands them to the Java `SinkConfigBuilder`, which holds
    the defaults and validates every setting once (PyFlink's connectors delegate the same way).
    A setter here only converts Python values (a `timedelta`, an enum) for its Java twin of the
    same name in camel case, so a bad value is reported by `build()` or `java_config()`."""

    def __init__(self):
        self._calls: list[tuple[str, tuple]] = []  # (Java builder setter, arguments), in order
        self._password: Optional[str] = None  # kept out of _calls: never shown in a message
        self._check = True

    def _record(self, java_setter: str, *args) -> "TwoPhaseCommitSinkBuilder":
        self._calls.append((java_setter, args))
        return self

    def set_jdbc_url(self, url: str) -> "TwoPhaseCommitSinkBuilder":
        """`jdbc:postgresql://host:port/database`, without the password."""
        return self._record("setJdbcUrl", url)

    def set_user(self, user: str) -> "TwoPhaseCommitSinkBuilder":
        return self._record("setUser", user)

    def set_password(self, password: str) -> "TwoPhaseCommitSinkBuilder":
        """The password itself, for tests and tools that open connections in this process
        (`java_config()`). It is serialized into the job graph, where Flink's blob store, the
        JobManager and every TaskManager hold it: a job uses `set_password_env` or
        `set_password_file` instead."""
        self._password = password
        return self

    def set_password_env(self, variable: str = "PGPASSWORD") -> "TwoPhaseCommitSinkBuilder":
        """Read the password from this environment variable in each process that opens a
        connection, when it opens it: the TaskManagers (writers, committers) and, for the
        pre-flight check, this client's JVM. Only the name is in the job graph. On a local
        (mini cluster) run, the JVM copied the environment when it started: set the variable
        before that, or use `set_password_file`."""
        return self._record("setPasswordEnv", variable)

    def set_password_file(self, path) -> "TwoPhaseCommitSinkBuilder":
        """Read the password from this file (e.g. a mounted Kubernetes secret; a trailing
        newline is dropped) in each process that opens a connection, at every (re)connect, so a
        rotated secret is picked up. Only the path is in the job graph."""
        return self._record("setPasswordFile", os.fspath(path))

    def set_password_source(
        self, password_env: Optional[str] = "PGPASSWORD", password_file=None
    ) -> "TwoPhaseCommitSinkBuilder":
        """The connection flags' choice (`sinks.database.add_connection_arguments`):
        `set_password_file` if a file is given, else `set_password_env`."""
        if password_file is not None:
            return self.set_password_file(password_file)
        return self.set_password_env(password_env or "PGPASSWORD")

    def add_statement(self, sql: str) -> "TwoPhaseCommitSinkBuilder":
        """A statement run for every row, with `:field` parameters bound from the row."""
        return self._record("addStatement", sql)

    def set_statements(self, statements: Sequence[str]) -> "TwoPhaseCommitSinkBuilder":
        """Replaces the statements added so far."""
        return self._record("setStatements", list(statements))

    def add_table(
        self, name: str, row_type, statements: Sequence[str]
    ) -> "TwoPhaseCommitSinkBuilder":
        """A named input of the sink, with its own `Types.ROW_NAMED(...)` row type and the
        statements run for each of its rows. A sink with tables takes one stream per table
        (`sink.attach({name: stream, ...})`) and commits all of them together: with
        `set_commit_scope("checkpoint")`, one transaction per checkpoint covers every table
        and subtask. Tables are applied in the order they are added (a later table's rows may
        refer to an earlier one's). Instead of `set_row_type` and `add_statement`.

        A statement may also read a whole batch of rows at once, as the relation `tpc_batch`
        (one column per field, typed from `row_type`; no `:field` parameters then), for what
        one row at a time cannot say: "insert the rows whose key is absent and add up what
        was inserted", "record the rows that were not" (see sinks/README.md)."""
        # Checked here, not in Java: only the Python type object knows whether it has names.
        names = getattr(row_type, "get_field_names", lambda: None)()
        if not names:
            raise SinkConfigurationError(
                f"add_table({name!r}, ...) needs Types.ROW_NAMED([...], [...]) so fields have names"
            )
        if isinstance(statements, str):
            statements = [statements]
        return self._record("addTable", name, list(names), list(statements), sql_types(row_type))

    def set_row_type(self, row_type) -> "TwoPhaseCommitSinkBuilder":
        """The stream's `Types.ROW_NAMED(...)` type; its field names are the parameter names."""
        # Checked here, not in Java: only the Python type object knows whether it has names.
        names = getattr(row_type, "get_field_names", lambda: None)()
        if not names:
            raise SinkConfigurationError(
                "set_row_type needs Types.ROW_NAMED([...], [...]) so fields have names; the "
                "stream feeding the sink must use the same type as its output_type"
            )
        return self.set_field_names(names)

    def set_field_names(self, names: Sequence[str]) -> "TwoPhaseCommitSinkBuilder":
        return self._record("setFieldNames", list(names))

    def set_sink_id(self, sink_id: str) -> "TwoPhaseCommitSinkBuilder":
        """Stable id, unique per database among running jobs; part of every transaction id."""
        return self._record("setSinkId", sink_id)

    def set_mode(self, mode) -> "TwoPhaseCommitSinkBuilder":
        """A `CommitMode` or its value: 'prepared', 'staged' (default) or 'at_least_once'."""
        return self._record("setMode", mode.value if isinstance(mode, CommitMode) else str(mode))

    def set_commit_scope(self, scope) -> "TwoPhaseCommitSinkBuilder":
        """What one committing transaction covers, a `CommitScope` or its value:

        * ``"subtask"`` (default): each writer subtask's checkpoint is committed on its own;
          commits are spread over the subtasks, and a reader may see one subtask's rows of a
          checkpoint before another's.
        * ``"checkpoint"``: everything every subtask wrote for a checkpoint becomes visible in
          one transaction (staged mode only): the writers stage in parallel, one committer
          applies the whole checkpoint. Atomic visibility and the fewest transactions; that one
          committer is the commit-time bottleneck. See sinks/README.md."""
        return self._record(
            "setCommitScope", scope.value if isinstance(scope, CommitScope) else str(scope)
        )

    def set_batch_size(self, rows: int) -> "TwoPhaseCommitSinkBuilder":
        """Rows sent to PostgreSQL per JDBC batch. Default 500."""
        return self._record("setBatchSize", int(rows))

    def set_lock_timeout_ms(self, millis: int) -> "TwoPhaseCommitSinkBuilder":
        """How long a statement waits for a lock before failing (55P03) with an explanation
        (0: forever). Default 30 s."""
        return self._record("setLockTimeoutMs", int(millis))

    def set_statement_timeout_ms(self, millis: int) -> "TwoPhaseCommitSinkBuilder":
        """The server cancels any of the sink's statements that runs longer (57014). Default
        60 s; keep it above the lock timeout and below the socket timeout."""
        return self._record("setStatementTimeoutMs", int(millis))

    def set_socket_timeout_s(self, seconds: int) -> "TwoPhaseCommitSinkBuilder":
        """The client gives up on a connection that sends nothing for this long (a hung or
        vanished server). Default 90 s: above the statement timeout, below Flink's 180 s
        task-cancellation watchdog."""
        return self._record("setSocketTimeoutS", int(seconds))

    def set_connect_timeout_s(self, seconds: int) -> "TwoPhaseCommitSinkBuilder":
        """How long opening a connection may take. Default 10 s."""
        return self._record("setConnectTimeoutS", int(seconds))

    def set_commit_retry_backoff_ms(
        self, initial: int, maximum: int
    ) -> "TwoPhaseCommitSinkBuilder":
        """The committer's wait before retrying a commit that failed with a transient error:
        `initial`, doubling up to `maximum`. Default 500 ms to 10 s."""
        return self._record("setCommitRetryBackoffMs", int(initial), int(maximum))

    def set_on_row_error(self, policy: str) -> "TwoPhaseCommitSinkBuilder":
        """What to do with a row the database refuses (a constraint, a value out of range, a
        string PostgreSQL cannot store):

        * ``"fail"`` (default): stop the job, without restarts, naming the sink, the row's fields
          and the SQLSTATE; before anything of the row's checkpoint is pre-committed.
        * ``"dead_letter"``: record the row, with SQLSTATE and message, in the control schema's
          ``tpc_dead_letters`` table, in the same transaction as the rows around it (so exactly
          once), and go on.

        Errors of the statement itself (syntax, unknown column) or of the connection are never
        a row's fault: they fail or are retried whatever the policy."""
        return self._record("setOnRowError", str(policy))

    def set_idempotent_statements(self, idempotent: bool = True) -> "TwoPhaseCommitSinkBuilder":
        """Declare that applying a row a second time leaves the tables as they were: every
        statement writes a natural key if absent (``ON CONFLICT DO NOTHING``) or overwrites it
        with the same values. Only then may a start that restores no checkpoint (it replays its
        input from the beginning) write through a sink id that already committed; by default
        such a start is refused, naming the sink id and its last commit. Never declare it for
        plain running sums or counters (``balance = balance + :delta``); a statement over the
        batch (`add_table`, ``tpc_batch``) that adds up only the rows it inserted is fine."""
        return self._record("setIdempotentStatements", bool(idempotent))

    def set_owner_wait_s(self, seconds: float) -> "TwoPhaseCommitSinkBuilder":
        """How long a starting writer waits while another job's session still holds its
        (sink id, subtask), before refusing to start. Default 90 s: a job that died without
        closing its connections holds them until the server notices (TCP keepalive, about a
        minute). An earlier attempt of the same job (a zombie) is never waited for: its session
        is terminated."""
        return self._record("setOwnerWaitS", _number(seconds, 1, "set_owner_wait_s"))

    def set_commit_log_retention_hours(self, hours) -> "TwoPhaseCommitSinkBuilder":
        """How long the sink keeps its commit-log rows (hours, or a `datetime.timedelta`).
        Default 7 days (168 hours). The committer trims at its first commit and then every 10
        minutes (every retention if shorter, at most once a minute); the newest row of each job
        lineage and subtask is always kept, so the refusal to restore an older checkpoint keeps
        working. Restoring a checkpoint whose transactions
        were committed longer ago than this is not supported: see sinks/README.md."""
        return self._record(
            "setCommitLogRetentionHours", _number(hours, 3600, "set_commit_log_retention_hours")
        )

    def set_prepared_transaction_warning_s(self, seconds) -> "TwoPhaseCommitSinkBuilder":
        """Warn (log and gauge `tpcOldestPreparedTransactionAgeSeconds`) about this sink id's
        prepared transactions older than this (seconds, or a `datetime.timedelta`). Default 15
        minutes. A prepared transaction holds back VACUUM for the whole server."""
        return self._record(
            "setPreparedTransactionWarningS",
            _number(seconds, 1, "set_prepared_transaction_warning_s"),
        )

    def set_control_schema(self, schema: str) -> "TwoPhaseCommitSinkBuilder":
        """Schema of the sink's own tables (commit log, staging)."""
        return self._record("setControlSchema", schema)

    def set_connection_property(self, key: str, value: str) -> "TwoPhaseCommitSinkBuilder":
        """A pgjdbc connection property. Timeouts and keepalive have their own setters."""
        return self._record("setConnectionProperty", key, str(value))

    def set_max_commit_retries(self, retries: int) -> "TwoPhaseCommitSinkBuilder":
        """How many times the committer retries a commit that failed with a transient error,
        with back-off, before the job restarts (and commits it again). Default 10, which is also
        Flink's cap (`sink.committer.retries`): raising this needs that key raised too."""
        return self._record("setMaxCommitRetries", int(retries))

    def skip_preflight_check(self) -> "TwoPhaseCommitSinkBuilder":
        """Skip contacting the database in `build()` (e.g. when the client cannot reach it);
        the writers still check when they open."""
        self._check = False
        return self

    # ---------------------------------------------------------------------------------------
    def _check_password_env_reaches_jvm(self, gateway) -> None:
        """A variable set in Python after the JVM started is not in the JVM's environment,
        where the pre-flight check and a local run's sink read it: say so, rather than let the
        JVM report it missing while Python shows it set."""
        for setter, args in self._calls:
            if setter != "setPasswordEnv" or not isinstance(args[0], str):
                continue
            name = args[0]
            if os.environ.get(name) and not gateway.jvm.java.lang.System.getenv(name):
                raise SinkConfigurationError(
                    f"set_password_env: environment variable {name} is set in this Python "
                    "process but not in its JVM, which copied the environment when it started: "
                    "set it before the JVM starts, or use set_password_file"
                )

    def build(self) -> TwoPhaseCommitSink:
        """The sink, once the settings are valid and (unless `skip_preflight_check`) the
        database accepts them; otherwise `SinkConfigurationError`, before any data moves."""
        from py4j.protocol import Py4JJavaError
        from pyflink.java_gateway import get_gateway

        j_config = self.java_config()
        package = get_gateway().jvm.dev.tpc.sink
        try:
            summary = package.Preflight.check(j_config) if self._check else ""
            j_sink = package.PostgresTwoPhaseCommitSink(j_config)
        except Py4JJavaError as error:
            raise SinkConfigurationError(_java_message(error)) from None
        return TwoPhaseCommitSink(j_sink, summary or "", self._table_names())

    # Single-table settings a sink with tables (add_table) takes per table instead.
    _SINGLE_TABLE_SETTERS = {
        "setFieldNames": "set_row_type",
        "addStatement": "add_statement",
        "setStatements": "set_statements",
    }

    def _table_names(self) -> list[str]:
        return [args[0] for setter, args in self._calls if setter == "addTable"]

    def _check_tables(self) -> None:
        """A Python-API rule, checked here: tables (add_table) replace the single table's row
        type and statements, which the Java builder then takes from the first table."""
        if not self._table_names():
            return
        mixed = sorted(
            {python for java, python in self._SINGLE_TABLE_SETTERS.items() if self._called(java)}
        )
        if mixed:
            raise SinkConfigurationError(
                "add_table: a sink with tables takes its row types and statements per table: "
                f"drop {'/'.join(mixed)}"
            )

    def _called(self, java_setter: str) -> bool:
        return any(setter == java_setter for setter, _ in self._calls)

    def java_config(self):
        """The Java `SinkConfig` this builder describes, validated by `SinkConfigBuilder`,
        without contacting the database (`build()` uses it; tests and tools may open
        connections with it)."""
        from py4j.protocol import Py4JError, Py4JJavaError
        from pyflink.java_gateway import get_gateway
        from pyflink.util.java_utils import load_java_class

        self._check_tables()
        try:
            load_java_class(JAVA_SINK_CLASS)
        except Exception:
            raise SinkConfigurationError(
                f"{JAVA_SINK_CLASS} is not loaded in the Flink client: call "
                "sinks.add_sink_jars(env) before building the sink"
            ) from None
        gateway = get_gateway()
        self._check_password_env_reaches_jvm(gateway)
        j_builder = gateway.jvm.dev.tpc.sink.SinkConfig.builder()
        for setter, args in self._calls:
            try:
                getattr(j_builder, setter)(*args)
            except (Py4JError, AttributeError):
                # No Java setter takes these types (py4j raises AttributeError for an object it
                # cannot send at all); the values stay unshown, as they may be secret.
                types = ", ".join(type(arg).__name__ for arg in args)
                raise SinkConfigurationError(
                    f"{_python_names(setter)}: cannot take a value of type {types}"
                ) from None
        if self._password is not None:
            j_builder.setPassword(self._password)
        try:
            return j_builder.build()
        except Py4JJavaError as error:
            raise SinkConfigurationError(_java_message(error)) from None


def sql_types(row_type) -> list[str]:
    """The PostgreSQL type of each field of a `Types.ROW_NAMED(...)` row type, as a statement
    reading `tpc_batch` sees it (text for a type with no better match)."""
    from pyflink.common import Types

    known = [
        (Types.STRING(), "text"),
        (Types.LONG(), "int8"),
        (Types.INT(), "int4"),
        (Types.SHORT(), "int2"),
        (Types.BYTE(), "int2"),
        (Types.BOOLEAN(), "bool"),
        (Types.DOUBLE(), "float8"),
        (Types.FLOAT(), "float4"),
        (Types.BIG_DEC(), "numeric"),
        (Types.BIG_INT(), "numeric"),
        (Types.PRIMITIVE_ARRAY(Types.BYTE()), "bytea"),
        (Types.SQL_DATE(), "date"),
        (Types.SQL_TIME(), "time"),
        (Types.SQL_TIMESTAMP(), "timestamp"),
        (Types.INSTANT(), "timestamptz"),
    ]
    return [
        next((sql for flink, sql in known if flink == field), "text")
        for field in row_type.get_field_types()
    ]


def _number(value, unit_seconds: int, setter: str) -> float:
    """A number, or a `timedelta` in units of `unit_seconds`, as a float for the Java builder
    (which checks its range)."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds() / unit_seconds
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SinkConfigurationError(
            f"{setter}: {value!r} is not a number or a datetime.timedelta"
        ) from None


_JAVA_SETTER = re.compile(r"\b(?:set|add)[A-Z][A-Za-z]*\b")


def _python_names(message: str) -> str:
    """The Java builder's setters named in `message` (`setBatchSize`) as this builder's
    (`set_batch_size`): each Java setter is the camel-case twin of a Python one."""

    def python_name(match: re.Match) -> str:
        name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", match.group(0)).lower()
        return name if hasattr(TwoPhaseCommitSinkBuilder, name) else match.group(0)

    return _JAVA_SETTER.sub(python_name, message)


def _java_message(error) -> str:
    """The innermost message of a Java exception: the advice, without the stack, with the
    setters it names in their Python spelling."""
    throwable = error.java_exception
    message = throwable.getMessage()
    while throwable.getCause() is not None:
        throwable = throwable.getCause()
        if throwable.getClass().getName() == "dev.tpc.sink.SinkConfigurationException":
            message = throwable.getMessage()
    return _python_names(str(message))
