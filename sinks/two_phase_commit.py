"""`TwoPhaseCommitSink`: exactly-once writes to PostgreSQL from a PyFlink DataStream.

    from sinks import TwoPhaseCommitSink, add_sink_jars

    add_sink_jars(env)                       # the sink's jar (JDBC driver included)
    rows = stream.map(to_row, output_type=ROW_TYPE)   # Types.ROW_NAMED(...) is required
    rows.sink_to(
        TwoPhaseCommitSink.builder()
        .set_jdbc_url("jdbc:postgresql://127.0.0.1:5432/payments")
        .set_user("app")
        .set_password_env("PGPASSWORD")      # read here, never logged
        .set_row_type(ROW_TYPE)
        .add_statement("INSERT INTO ledger (event_id, amount) VALUES (:event_id, :amount)")
        .set_sink_id("ledger")
        .set_mode("staged")
        .build())

`build()` checks what can be checked before the job starts (driver, database, prepared
transactions, the statements against the schema) and raises `SinkConfigurationError` with
advice. The sink knows nothing about the rows' meaning: it runs the statements for each row.
"""

import datetime
import math
import os
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Optional

from pyflink.datastream.connectors.base import Sink

from sinks.build import sink_jar

if TYPE_CHECKING:
    from pyflink.datastream import DataStream
    from pyflink.datastream.data_stream import DataStreamSink

JAVA_SINK_CLASS = "dev.tpc.sink.PostgresTwoPhaseCommitSink"
SINK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAMED_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# pgjdbc properties the sink sets on every connection, and the setter that owns each.
_OWN_PROPERTIES = {
    "connectTimeout": "set_connect_timeout_s",
    "socketTimeout": "set_socket_timeout_s",
    "tcpKeepAlive": "(always on)",
}


class SinkConfigurationError(ValueError):
    """The sink cannot work as configured; raised before any data moves."""


class CommitMode(str, Enum):
    PREPARED = "prepared"  # PREPARE TRANSACTION / COMMIT PREPARED
    STAGED = "staged"  # staging table, applied at commit (hot keys, stock PostgreSQL)
    AT_LEAST_ONCE = "at_least_once"  # autocommitted batches: a baseline and a test control


def add_sink_jars(env) -> None:
    """Add the sink's jar, which holds the PostgreSQL JDBC driver, to a
    StreamExecutionEnvironment."""
    try:
        jar = sink_jar()
    except RuntimeError as error:
        raise SinkConfigurationError(str(error)) from error
    env.add_jars(jar.resolve().as_uri())


def add_kafka_jars(env) -> None:
    """Add Flink's Kafka connector and the Kafka client (sinks/kafka/pom.xml, resolved into
    var/jars/kafka/) to a StreamExecutionEnvironment: for jobs that read Kafka, next to
    `add_sink_jars`, whose jar holds the record format (dev.tpc.source.KafkaLineRecords)."""
    from sinks.build import kafka_connector_jars

    try:
        jars = kafka_connector_jars()
    except RuntimeError as error:
        raise SinkConfigurationError(str(error)) from error
    env.add_jars(*(jar.resolve().as_uri() for jar in jars))


def statement_parameters(sql: str) -> list[str]:
    """Named `:field` parameters of a statement (an approximation of the Java parser's rules,
    good enough for early errors; the Java side is authoritative)."""
    without_literals = re.sub(
        r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S
    )
    return _NAMED_PARAMETER.findall(without_literals)


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
    def __init__(self):
        self._jdbc_url: Optional[str] = None
        self._user: Optional[str] = None
        self._password: Optional[str] = None
        self._password_env: Optional[str] = None
        self._statements: list[str] = []
        self._field_names: Optional[list[str]] = None
        self._sink_id: Optional[str] = None
        self._mode = CommitMode.STAGED
        self._batch_size = 500
        # Defaults and the reasoning behind them: SinkConfig.java (DEFAULT_*), sinks/README.md.
        self._lock_timeout_ms = 30_000
        self._statement_timeout_ms = 60_000
        self._socket_timeout_s = 90
        self._connect_timeout_s = 10
        self._control_schema = "public"
        self._connection_properties: dict[str, str] = {}
        self._max_commit_retries = 10
        self._commit_retry_initial_ms = 500
        self._commit_retry_max_ms = 10_000
        self._on_row_error = "fail"
        self._commit_log_retention_s = 7 * 24 * 3600
        self._prepared_warning_s = 15 * 60
        self._owner_wait_s: Optional[float] = None  # None: SinkConfig's default (90 s)
        self._commit_scope = CommitScope.SUBTASK
        self._tables: list[tuple[str, list[str], list[str]]] = []
        self._check = True

    def set_jdbc_url(self, url: str) -> "TwoPhaseCommitSinkBuilder":
        self._jdbc_url = url
        return self

    def set_user(self, user: str) -> "TwoPhaseCommitSinkBuilder":
        self._user = user
        return self

    def set_password(self, password: str) -> "TwoPhaseCommitSinkBuilder":
        """Prefer `set_password_env`; a password passed here must itself come from config."""
        self._password = password
        return self

    def set_password_env(self, variable: str = "PGPASSWORD") -> "TwoPhaseCommitSinkBuilder":
        """Read the password from this environment variable when `build()` runs."""
        self._password_env = variable
        return self

    def add_statement(self, sql: str) -> "TwoPhaseCommitSinkBuilder":
        """A statement run for every row, with `:field` parameters bound from the row."""
        self._statements.append(sql)
        return self

    def set_statements(self, statements: Sequence[str]) -> "TwoPhaseCommitSinkBuilder":
        self._statements = list(statements)
        return self

    def add_table(
        self, name: str, row_type, statements: Sequence[str]
    ) -> "TwoPhaseCommitSinkBuilder":
        """A named input of the sink, with its own `Types.ROW_NAMED(...)` row type and the
        statements run for each of its rows. A sink with tables takes one stream per table
        (`sink.attach({name: stream, ...})`) and commits all of them together: with
        `set_commit_scope("checkpoint")`, one transaction per checkpoint covers every table
        and subtask. Tables are applied in the order they are added (a later table's rows may
        refer to an earlier one's). Instead of `set_row_type` and `add_statement`."""
        names = getattr(row_type, "get_field_names", lambda: None)()
        if not names:
            raise SinkConfigurationError(
                f"add_table({name!r}, ...) needs Types.ROW_NAMED([...], [...]) so fields have names"
            )
        if isinstance(statements, str):
            statements = [statements]
        self._tables.append((str(name), list(names), list(statements)))
        return self

    def set_row_type(self, row_type) -> "TwoPhaseCommitSinkBuilder":
        """The stream's `Types.ROW_NAMED(...)` type; its field names are the parameter names."""
        names = getattr(row_type, "get_field_names", lambda: None)()
        if not names:
            raise SinkConfigurationError(
                "set_row_type needs Types.ROW_NAMED([...], [...]) so fields have names; the "
                "stream feeding the sink must use the same type as its output_type"
            )
        self._field_names = list(names)
        return self

    def set_field_names(self, names: Sequence[str]) -> "TwoPhaseCommitSinkBuilder":
        self._field_names = list(names)
        return self

    def set_sink_id(self, sink_id: str) -> "TwoPhaseCommitSinkBuilder":
        """Stable id, unique per database among running jobs; part of every transaction id."""
        self._sink_id = sink_id
        return self

    def set_mode(self, mode) -> "TwoPhaseCommitSinkBuilder":
        try:
            self._mode = CommitMode(
                mode.value if isinstance(mode, CommitMode) else str(mode).lower()
            )
        except ValueError:
            raise SinkConfigurationError(
                f"unknown commit mode {mode!r}: use 'prepared', 'staged' or 'at_least_once'"
            ) from None
        return self

    def set_commit_scope(self, scope) -> "TwoPhaseCommitSinkBuilder":
        """What one committing transaction covers:

        * ``"subtask"`` (default): each writer subtask's checkpoint is committed on its own;
          commits are spread over the subtasks, and a reader may see one subtask's rows of a
          checkpoint before another's.
        * ``"checkpoint"``: everything every subtask wrote for a checkpoint becomes visible in
          one transaction (staged mode only): the writers stage in parallel, one committer
          applies the whole checkpoint. Atomic visibility and the fewest transactions; that one
          committer is the commit-time bottleneck. See sinks/README.md."""
        try:
            self._commit_scope = CommitScope(
                scope.value if isinstance(scope, CommitScope) else str(scope).lower()
            )
        except ValueError:
            raise SinkConfigurationError(
                f"unknown commit scope {scope!r}: use 'subtask' or 'checkpoint'"
            ) from None
        return self

    def set_batch_size(self, rows: int) -> "TwoPhaseCommitSinkBuilder":
        self._batch_size = int(rows)
        return self

    def set_lock_timeout_ms(self, millis: int) -> "TwoPhaseCommitSinkBuilder":
        """How long a statement waits for a lock before failing (55P03) with an explanation
        (0: forever). Default 30 s."""
        self._lock_timeout_ms = int(millis)
        return self

    def set_statement_timeout_ms(self, millis: int) -> "TwoPhaseCommitSinkBuilder":
        """The server cancels any of the sink's statements that runs longer (57014). Default
        60 s; keep it above the lock timeout and below the socket timeout."""
        self._statement_timeout_ms = int(millis)
        return self

    def set_socket_timeout_s(self, seconds: int) -> "TwoPhaseCommitSinkBuilder":
        """The client gives up on a connection that sends nothing for this long (a hung or
        vanished server). Default 90 s: above the statement timeout, below Flink's 180 s
        task-cancellation watchdog."""
        self._socket_timeout_s = int(seconds)
        return self

    def set_connect_timeout_s(self, seconds: int) -> "TwoPhaseCommitSinkBuilder":
        """How long opening a connection may take. Default 10 s."""
        self._connect_timeout_s = int(seconds)
        return self

    def set_commit_retry_backoff_ms(
        self, initial: int, maximum: int
    ) -> "TwoPhaseCommitSinkBuilder":
        """The committer's wait before retrying a commit that failed with a transient error:
        `initial`, doubling up to `maximum`. Default 500 ms to 10 s."""
        self._commit_retry_initial_ms, self._commit_retry_max_ms = int(initial), int(maximum)
        return self

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
        policy = str(policy).lower()
        if policy not in ("fail", "dead_letter"):
            raise SinkConfigurationError(
                f"unknown row error policy {policy!r}: use 'fail' or 'dead_letter'"
            )
        self._on_row_error = policy
        return self

    def set_owner_wait_s(self, seconds: float) -> "TwoPhaseCommitSinkBuilder":
        """How long a starting writer waits while another job's session still holds its
        (sink id, subtask), before refusing to start. Default 90 s: a job that died without
        closing its connections holds them until the server notices (TCP keepalive, about a
        minute). An earlier attempt of the same job (a zombie) is never waited for: its session
        is terminated."""
        self._owner_wait_s = float(seconds)
        return self

    def set_commit_log_retention_hours(self, hours) -> "TwoPhaseCommitSinkBuilder":
        """How long the sink keeps its commit-log rows (hours, or a `datetime.timedelta`).
        Default 7 days (168 hours). The committer trims at its first commit and then every 10
        minutes; the newest row of each job lineage and subtask is always kept, so the refusal
        to restore an older checkpoint keeps working. Restoring a checkpoint whose transactions
        were committed longer ago than this is not supported: see sinks/README.md."""
        self._commit_log_retention_s = _seconds(hours, 3600, "commit-log retention")
        return self

    def set_prepared_transaction_warning_s(self, seconds) -> "TwoPhaseCommitSinkBuilder":
        """Warn (log and gauge `tpcOldestPreparedTransactionAgeSeconds`) about this sink id's
        prepared transactions older than this (seconds, or a `datetime.timedelta`). Default 15
        minutes. A prepared transaction holds back VACUUM for the whole server."""
        self._prepared_warning_s = _seconds(seconds, 1, "prepared-transaction warning threshold")
        return self

    def set_control_schema(self, schema: str) -> "TwoPhaseCommitSinkBuilder":
        """Schema of the sink's own tables (commit log, staging)."""
        self._control_schema = schema
        return self

    def set_connection_property(self, key: str, value: str) -> "TwoPhaseCommitSinkBuilder":
        """A pgjdbc connection property. Timeouts and keepalive have their own setters."""
        if key in _OWN_PROPERTIES:
            raise SinkConfigurationError(
                f"connection property {key!r} is set by the sink on every connection; use "
                f"{_OWN_PROPERTIES[key]} instead"
            )
        self._connection_properties[key] = str(value)
        return self

    def set_max_commit_retries(self, retries: int) -> "TwoPhaseCommitSinkBuilder":
        """How many times the committer retries a commit that failed with a transient error,
        with back-off, before the job restarts (and commits it again). Default 10, which is also
        Flink's cap (`sink.committer.retries`): raising this needs that key raised too."""
        self._max_commit_retries = int(retries)
        return self

    def skip_preflight_check(self) -> "TwoPhaseCommitSinkBuilder":
        """Skip contacting the database in `build()` (e.g. when the client cannot reach it);
        the writers still check when they open."""
        self._check = False
        return self

    # ---------------------------------------------------------------------------------------
    def _validate(self) -> None:
        if not self._jdbc_url or not self._jdbc_url.startswith("jdbc:postgresql:"):
            raise SinkConfigurationError(
                "set_jdbc_url needs a jdbc:postgresql://host:port/database URL, "
                f"got {self._jdbc_url!r}"
            )
        if re.search(r"(?i)password=", self._jdbc_url):
            raise SinkConfigurationError(
                "do not put the password in the JDBC URL (it would reach logs and the web UI); "
                "use set_password_env('PGPASSWORD')"
            )
        if not self._sink_id or not SINK_ID_PATTERN.fullmatch(self._sink_id):
            raise SinkConfigurationError(
                f"sink id {self._sink_id!r} is invalid: use 1 to 64 characters from "
                "A-Z a-z 0-9 _ - "
                "(it becomes part of PostgreSQL transaction ids)"
            )
        if self._tables:
            if self._statements or self._field_names:
                raise SinkConfigurationError(
                    "a sink with tables (add_table) takes its row types and statements per "
                    "table: drop set_row_type/add_statement"
                )
            names = [name for name, _, _ in self._tables]
            if len(set(names)) != len(names):
                raise SinkConfigurationError(f"a table name is added twice: {names}")
            for name, fields, statements in self._tables:
                if not statements:
                    raise SinkConfigurationError(f"table {name!r}: give at least one statement")
                _check_statements(statements, fields, f"table {name!r}: ")
        else:
            if not self._statements:
                raise SinkConfigurationError("add at least one statement with add_statement(sql)")
            if not self._field_names:
                raise SinkConfigurationError(
                    "set_row_type(Types.ROW_NAMED(...)) is required: the sink binds :name "
                    "parameters from the row's field names"
                )
            _check_statements(self._statements, self._field_names, "")
        if self._batch_size < 1:
            raise SinkConfigurationError("batch size must be at least 1")

    def _resolve_password(self) -> Optional[str]:
        if self._password is not None:
            return self._password
        if self._password_env:
            value = os.environ.get(self._password_env)
            if value is None:
                raise SinkConfigurationError(
                    f"environment variable {self._password_env} (the database password) is not set"
                )
            return value
        return None

    def build(self) -> TwoPhaseCommitSink:
        from py4j.protocol import Py4JJavaError
        from pyflink.java_gateway import get_gateway

        j_config = self.java_config()
        package = get_gateway().jvm.dev.tpc.sink
        try:
            summary = package.Preflight.check(j_config) if self._check else ""
            j_sink = package.PostgresTwoPhaseCommitSink(j_config)
        except Py4JJavaError as error:
            raise SinkConfigurationError(_java_message(error)) from None
        return TwoPhaseCommitSink(j_sink, summary or "", [name for name, _, _ in self._tables])

    def java_config(self):
        """The validated Java `SinkConfig` this builder describes, without contacting the
        database (`build()` uses it; tests and tools may open connections with it)."""
        self._validate()
        from py4j.protocol import Py4JJavaError
        from pyflink.java_gateway import get_gateway
        from pyflink.util.java_utils import load_java_class

        try:
            load_java_class(JAVA_SINK_CLASS)
        except Exception:
            raise SinkConfigurationError(
                f"{JAVA_SINK_CLASS} is not loaded in the Flink client: call "
                "sinks.add_sink_jars(env) before building the sink"
            ) from None
        gateway = get_gateway()
        jvm = gateway.jvm

        def java_list(values):
            result = jvm.java.util.ArrayList()
            for value in values:
                result.add(value)
            return result

        # With tables, the constructor gets the first one's (it only has to be valid).
        first = self._tables[0] if self._tables else None
        statements = java_list(first[2] if first else self._statements)
        fields = java_list(first[1] if first else self._field_names)
        properties = jvm.java.util.HashMap()
        for key, value in self._connection_properties.items():
            properties.put(key, value)
        try:
            config = (
                jvm.dev.tpc.sink.SinkConfig(
                    self._jdbc_url,
                    self._user,
                    self._resolve_password(),
                    self._sink_id,
                    self._mode.value,
                    statements,
                    fields,
                    int(self._batch_size),
                    int(self._lock_timeout_ms),
                    self._control_schema,
                    properties,
                    int(self._max_commit_retries),
                    int(self._statement_timeout_ms),
                    int(self._socket_timeout_s),
                    int(self._connect_timeout_s),
                    int(self._commit_retry_initial_ms),
                    int(self._commit_retry_max_ms),
                )
                .withRowErrorPolicy(self._on_row_error)
                .withCommitLogRetentionSeconds(int(self._commit_log_retention_s))
                .withPreparedTransactionWarningSeconds(int(self._prepared_warning_s))
                .withCommitScope(self._commit_scope.value)
            )
            if self._owner_wait_s is not None:
                config.withOwnerWaitMillis(int(self._owner_wait_s * 1000))
            for name, table_fields, table_statements in self._tables:
                config.withTable(name, java_list(table_fields), java_list(table_statements))
            return config
        except Py4JJavaError as error:
            raise SinkConfigurationError(_java_message(error)) from None


def _check_statements(statements: Sequence[str], fields: Sequence[str], where: str) -> None:
    for sql in statements:
        if "?" in re.sub(r"'(?:[^']|'')*'", "", sql):
            raise SinkConfigurationError(f"{where}use :field parameters, not '?', in: {sql}")
        missing = [p for p in statement_parameters(sql) if p not in fields]
        if missing:
            raise SinkConfigurationError(
                f"{where}statement names field(s) {missing} that the rows lack; rows have "
                f"{list(fields)}: {sql}"
            )


def _seconds(value, unit_seconds: int, what: str) -> int:
    """Whole seconds (at least 1) of a `timedelta` or a number of `unit_seconds`."""
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    else:
        try:
            seconds = float(value) * unit_seconds
        except (TypeError, ValueError):
            raise SinkConfigurationError(f"{what}: not a number or timedelta: {value!r}") from None
    if not math.isfinite(seconds) or seconds < 1:
        raise SinkConfigurationError(f"{what} must be at least 1 second, got {value!r}")
    return math.ceil(round(seconds, 6))


def _java_message(error) -> str:
    """The innermost message of a Java exception: the advice, without the stack."""
    throwable = error.java_exception
    message = throwable.getMessage()
    while throwable.getCause() is not None:
        throwable = throwable.getCause()
        if throwable.getClass().getName() == "dev.tpc.sink.SinkConfigurationException":
            message = throwable.getMessage()
    return str(message)
