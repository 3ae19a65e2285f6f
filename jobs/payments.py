"""The payments job: JSON-lines files to PostgreSQL, every line applied exactly once.

    python -m jobs.payments --demo
    python -m jobs.payments --input DIR --db-url URL [--parallelism N]
        [--checkpoint-interval DURATION] [--watch [INTERVAL]] [--currencies FILE]
        [--from-savepoint PATH] [--savepoint-dir DIR] [--mode thread|process]
        [--progress-interval SECONDS]
    python -m jobs.payments --source kafka --bootstrap-servers HOST:PORT --topic payments
        --db-url URL [--group-id ID] [--starting-offsets earliest|latest|committed] [--bounded]

While the job runs, the command says what it does (jobs/progress.py): a progress line (lines
read, committed, rejected and duplicates in this run, restarts, the last checkpoint's age, a
Kafka source's lag), rewritten in place every 2 s on a terminal, a plain line every 10 s in a
log; every restart with its cause; and a last line with the committed counts, or, when the job
fails for good, its root cause and how to go on (exit status 1, after the whole trace).

Upgrading (see README, "Upgrading a running job"): a job started with --savepoint-dir stops
with a savepoint on SIGTERM or Ctrl-C and prints its path; the next version starts with
--from-savepoint PATH.

files ─FileSource─▶ skip applied ─▶ parse/validate ─▶ payments ──────────▶ sink "books": one
                   lines  │        (Python, batches   └ rejected ───────▶ transaction a checkpoint
                          │         of 500 lines)                         for the four tables
                          └ positions per file (JVM) ─────────────────▶

The books sink's statements (transforms/tables.py) make the database the dedupe and the last
line of defence: a ledger row is inserted only if its event id is absent, balances add up only
the rows inserted, a payment whose event id the ledger holds becomes a duplicate or a
conflicting duplicate, and every line is recorded only if no table holds it yet. The positions
commit with the rows, and a start without a checkpoint skips what they say is applied. So the
same command run twice, or a restart without its checkpoint, applies nothing twice. With
--commit-scope subtask: one sink per table, the dedupe and the balance sums on the JVM, and a
start without a checkpoint on sink ids that committed is refused instead.

Python runs once per batch of lines, in one stateless operator; everything after it runs on the
JVM or in the database.

Kafka instead of files (--source kafka): each record is a line; rejected and duplicate rows
record `kafka:<topic>:<partition>` and the offset where a file's name and line number go.

Every line ends in exactly one table: ledger, duplicates or rejected. The business rules are in
`transforms/`; this file only wires them. Exactly-once settings come from
`flink-conf/config.yaml`, overridden by the flags below.
"""

import sys

if __name__ == "__main__":
    # The JVM boots while the imports below run: about 0.4 s off every start.
    from localenv.flink import start_jvm_early

    start_jvm_early()

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, Optional

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import DataStream
from pyflink.datastream.connectors.file_system import FileSource

from jobs.flink_config import job_defaults
from jobs.progress import JobMonitor, describe_error, restart_policy, watch
from localenv.flink import file_uri
from localenv.job_control import operator_id, runs_detached, stop_with_savepoint
from sinks.database import add_connection_arguments
from sinks.fresh_start import FreshStartRefused
from sinks.positions import (
    InputChanged,
    StartPositions,
    position_row_type,
    positions_sql,
    skip_applied,
    track_positions,
)
from transforms.flink_adapters import (
    BALANCE_ROW_TYPE,
    DUPLICATE_ROW_TYPE,
    LEDGER_ROW_TYPE,
    PAYMENT_ROW_TYPE,
    REJECTED_ROW_TYPE,
    parse_payment_lines,
)
from transforms.inputs import UnreadableInput, input_faults
from transforms.jvm_operators import deduplicate, project, sum_per_checkpoint
from transforms.tables import (
    BALANCES,
    DUPLICATES,
    LEDGER,
    REJECTED,
    Table,
    apply_payments_sql,
    insert_lines_if_absent_sql,
    insert_sql,
)

LINE_TYPE = Types.ROW_NAMED(
    ["source", "line_number", "line"],
    [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)


def payment_projection(
    table: Table, renamed: Optional[dict[str, str]] = None
) -> dict[str, Optional[str]]:
    """Which field of a payment row (PAYMENT_ROW_TYPE) feeds each column of ``table``, as
    target: source (the same name unless ``renamed``); None, written as NULL, for a nullable
    column that payment rows do not carry (yet). The tables, their row types and statements
    are declared once, in transforms/tables.py."""
    available = set(PAYMENT_ROW_TYPE.get_field_names())
    fields: dict[str, Optional[str]] = {}
    for column in table.written:
        source = (renamed or {}).get(column.name, column.name)
        if source not in available and not column.nullable:
            raise ValueError(f"{table.name}.{column.name} is NOT NULL, but payment rows lack it")
        fields[column.name] = source if source in available else None
    return fields


LEDGER_FIELDS = payment_projection(LEDGER)
DUPLICATE_FIELDS = payment_projection(DUPLICATES)
# A conflicting duplicate's rejected row: the rejection it carries, and where it came from.
CONFLICT_SOURCES = {
    "reason": "conflict_reason",
    "detail": "conflict_detail",
    "raw_bytes": "conflict_raw_bytes",
}
CONFLICT_FIELDS = payment_projection(REJECTED, CONFLICT_SOURCES)

# Checkpoint scope: what the books sink gets of an accepted payment, the ledger's columns and
# the rejection it becomes if the database already holds its event id with other content.
PAYMENT_INPUT_FIELDS = [
    *LEDGER.field_names,
    "raw",
    "conflict_reason",
    "conflict_detail",
    "conflict_raw_bytes",
]
PAYMENT_INPUT_ROW_TYPE = Types.ROW_NAMED(
    PAYMENT_INPUT_FIELDS,
    [
        PAYMENT_ROW_TYPE.get_field_types()[PAYMENT_ROW_TYPE.get_field_names().index(name)]
        for name in PAYMENT_INPUT_FIELDS
    ],
)
PAYMENT_INPUT_PROJECTION: dict[str, Optional[str]] = {name: name for name in PAYMENT_INPUT_FIELDS}

LEDGER_SQL = insert_sql(LEDGER)
BALANCE_SQL = insert_sql(BALANCES)
REJECTED_SQL = insert_sql(REJECTED)
DUPLICATE_SQL = insert_sql(DUPLICATES)


@dataclass
class PaymentsConfig:
    input: Optional[str]  # files; None with source="kafka"
    db_url: str
    db_user: Optional[str] = None
    password_env: str = "PGPASSWORD"
    parallelism: int = 2
    checkpoint_interval: Optional[str] = None  # default: flink-conf/config.yaml
    checkpoint_dir: Optional[str] = None  # default: var/checkpoints/payments
    watch: Optional[str] = None  # e.g. "5 s": keep discovering files
    from_checkpoint: Optional[str] = None  # a retained checkpoint or a savepoint
    savepoint_dir: Optional[str] = None  # where `stop_with_savepoint` writes
    currencies: Optional[str] = None  # JSON table; default transforms/currencies.json
    execution_mode: str = "process"
    state_backend: Optional[str] = None  # hashmap | rocksdb
    # Subtask scope: how long the JVM dedupe remembers an event id (`dedupe_ttl_ms`; 0: for
    # ever). `dedupe_ttl`, when set, replaces the days with a finer duration.
    dedupe_ttl_days: int = 30
    dedupe_ttl: Optional[timedelta] = None
    # checkpoint: one sink for the four tables, each checkpoint one transaction (staged mode);
    # subtask: one sink per table, each subtask's checkpoint its own transaction, modes below.
    commit_scope: str = "checkpoint"
    ledger_mode: str = "prepared"  # insert-only, distinct keys (subtask scope)
    balances_mode: str = "staged"  # hot keys: running sums
    rejected_mode: str = "staged"
    sink_id_prefix: str = "payments"
    sink_batch_size: Optional[int] = None  # default: BOOKS_BATCH_ROWS, or 500 a table sink
    # A row the database refuses (e.g. a constraint added to a table) is recorded in
    # tpc_dead_letters and the job goes on: one line must never stop the payments of a day.
    on_row_error: str = "dead_letter"
    bundle_size: Optional[int] = None  # default: BUNDLE_LINES worth of records
    batch_lines: Optional[int] = 500  # lines per record into Python; None: 1
    source: str = "files"  # files | kafka
    bootstrap_servers: Optional[str] = None  # kafka: HOST:PORT[,HOST:PORT]
    topic: Optional[str] = None
    group_id: Optional[str] = None  # default: the sink id prefix
    starting_offsets: str = "earliest"  # earliest | latest | committed
    # kafka, no checkpoint: partition -> next offset, from the database (prepare_database)
    resume_offsets: dict[int, int] = field(default_factory=dict)
    bounded: bool = False  # kafka: stop at the end offsets at start
    extra_settings: dict[str, str] = field(default_factory=dict)
    # Seconds between progress lines while `submit` waits (jobs/progress.py); default 2 on a
    # terminal, 10 otherwise.
    progress_interval: Optional[float] = None

    @property
    def dedupe_ttl_ms(self) -> int:
        """The JVM dedupe's time to live in milliseconds (subtask scope): `dedupe_ttl` if set,
        else `dedupe_ttl_days`; 0 keeps every event id for ever."""
        ttl = self.dedupe_ttl
        if ttl is None:
            ttl = timedelta(days=self.dedupe_ttl_days)
        return ttl // timedelta(milliseconds=1)


class PaymentSinks(NamedTuple):
    """Subtask scope: one sink per table. Checkpoint scope: `books`, one sink for all four
    tables (the others None)."""

    ledger: object
    balances: object
    rejected: object
    duplicates: object
    books: Any = None


TABLES = ("ledger", "balances", "rejected", "duplicates")


def sink_ids(config: "PaymentsConfig", **modes: str) -> dict[str, str]:
    """The sink id that writes each table (as `build_sinks(config, **modes)` builds them)."""
    if config.commit_scope == "checkpoint" and not modes:
        return {table: f"{config.sink_id_prefix}-books" for table in TABLES}
    return {table: f"{config.sink_id_prefix}-{table}" for table in TABLES}


def file_source(input_dir: str, watch_interval: Optional[str] = None) -> FileSource:
    """Replayable, checkpointed lines of every file under `input_dir`, with file and line: the
    files `transforms.inputs.input_files` lists (Flink skips names starting with '.' or '_')."""
    from sinks.sources import NumberedLinesFormat, list_files_checked

    builder = FileSource.for_bulk_file_format(NumberedLinesFormat(), os.path.abspath(input_dir))
    list_files_checked(builder)
    if watch_interval:
        builder.monitor_continuously(Duration.of_millis(parse_duration_ms(watch_interval)))
    return builder.build()


def file_lines(env, config: PaymentsConfig) -> DataStream:
    """The lines of `config.input`'s files as LINE_TYPE rows (see `file_source`), with the uid
    their checkpointed reading position is stored under."""
    if config.input is None:
        raise SystemExit("--input is required (or use --source kafka)")
    return env.from_source(
        file_source(config.input, config.watch),
        WatermarkStrategy.no_watermarks(),
        "payment-files",
        type_info=LINE_TYPE,
    ).uid("payment-files")


def kafka_lines(env, config: PaymentsConfig) -> DataStream:
    """The records of `config.topic` as LINE_TYPE rows: (``kafka:<topic>:<partition>``, offset,
    value bytes). Exactly once like the file source: the offsets live in Flink's checkpoints
    (committing them to the consumer group on checkpoint is informative only)."""
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource

    from sinks.sources import kafka_resume_offsets, kafka_starting_offsets, set_kafka_line_records

    starting = (
        kafka_resume_offsets(config.starting_offsets, config.topic or "", config.resume_offsets)
        if config.resume_offsets and not config.from_checkpoint
        else kafka_starting_offsets(config.starting_offsets)
    )

    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(config.bootstrap_servers)
        .set_topics(config.topic)
        .set_group_id(config.group_id or config.sink_id_prefix)
        .set_starting_offsets(starting)
        # Never read records of aborted (or still open) producer transactions.
        .set_property("isolation.level", "read_committed")
        # A broker outage: requests time out and reconnects back off, up to 10 s apart;
        # the reader keeps trying, a failing enumerator restarts the job (restart-strategy).
        .set_property("request.timeout.ms", "15000")
        .set_property("default.api.timeout.ms", "30000")
        .set_property("reconnect.backoff.ms", "200")
        .set_property("reconnect.backoff.max.ms", "10000")
        .set_property("socket.connection.setup.timeout.max.ms", "10000")
    )
    if config.bounded:
        builder.set_bounded(KafkaOffsetsInitializer.latest())
    # Raw bytes, no decoding; the record's partition and offset say where it came from.
    set_kafka_line_records(builder)
    return env.from_source(
        builder.build(), WatermarkStrategy.no_watermarks(), "payment-records", type_info=LINE_TYPE
    ).uid("payment-records")


def line_source(env, config: PaymentsConfig):
    """What `build_pipeline` reads: the files (default) or the Kafka topic."""
    if config.source == "kafka":
        return kafka_lines(env, config)
    if config.input is None:
        raise SystemExit("--input is required (or use --source kafka)")
    return file_source(config.input, config.watch)


def load_currency_table(config: PaymentsConfig):
    """The supported currencies: ``config.currencies`` (a JSON file) or the default table."""
    if not config.currencies:
        return None
    from transforms.currencies import load_currencies

    return load_currencies(config.currencies)


# Rows per statement of the books sink. Its payment statement upserts each account of a batch
# once: with 500-row batches the job took 19.6 s on 200,000 lines (before this statement 14.7 s,
# at-least-once sinks 12.6 s); with 5,000-row batches 13.48 s (before 14.27 s, at-least-once
# 12.51 s). python -m bench.before_after; bench/results/2026-12-05.
BOOKS_BATCH_ROWS = 5_000


def build_sinks(config: PaymentsConfig, **modes: str) -> PaymentSinks:
    """Checkpoint scope (the default): one TwoPhaseCommitSink for the four tables, so that a
    reader sees a checkpoint's ledger rows, balance deltas, rejections and duplicates at once.
    Subtask scope, or any `modes` override (e.g. balances="at_least_once", for controls): one
    sink per table."""
    from sinks import TwoPhaseCommitSink

    if config.commit_scope == "checkpoint" and not modes:
        books_id = sink_ids(config)["ledger"]
        # Every statement writes a line only if no table holds it yet, and the balances add up
        # only the ledger rows inserted (transforms/tables.py): a line read again, by this run
        # or any other, changes nothing. So a start without a checkpoint is safe here.
        books = (
            TwoPhaseCommitSink.builder()
            .set_jdbc_url(config.db_url)
            .set_user(config.db_user)
            .set_password_env(config.password_env)
            .add_table("ledger", PAYMENT_INPUT_ROW_TYPE, [apply_payments_sql()])
            .add_table("rejected", REJECTED_ROW_TYPE, [insert_lines_if_absent_sql(REJECTED)])
            # How far each source is applied, in the same transaction (sinks/positions.py).
            .add_table(
                "positions", position_row_type(), [positions_sql(sink_ids(config)["ledger"])]
            )
            .set_idempotent_statements()
            .set_sink_id(books_id)
            .set_mode("staged")
            .set_commit_scope("checkpoint")
            .set_batch_size(config.sink_batch_size or BOOKS_BATCH_ROWS)
            .set_on_row_error(config.on_row_error)
            .build()
        )
        return PaymentSinks(None, None, None, None, books=books)

    def sink(name, row_type, statement, mode):
        return (
            TwoPhaseCommitSink.builder()
            .set_jdbc_url(config.db_url)
            .set_user(config.db_user)
            .set_password_env(config.password_env)
            .set_row_type(row_type)
            .add_statement(statement)
            .set_sink_id(f"{config.sink_id_prefix}-{name}")
            .set_mode(modes.get(name, mode))
            .set_batch_size(config.sink_batch_size or 500)
            .set_on_row_error(config.on_row_error)
            .build()
        )

    return PaymentSinks(
        ledger=sink("ledger", LEDGER_ROW_TYPE, LEDGER_SQL, config.ledger_mode),
        balances=sink("balances", BALANCE_ROW_TYPE, BALANCE_SQL, config.balances_mode),
        rejected=sink("rejected", REJECTED_ROW_TYPE, REJECTED_SQL, config.rejected_mode),
        duplicates=sink("duplicates", DUPLICATE_ROW_TYPE, DUPLICATE_SQL, config.rejected_mode),
    )


def build_pipeline(
    env, source, sinks: PaymentSinks, config: PaymentsConfig, start: Optional[StartPositions] = None
) -> None:
    """source: a Flink Source of LINE_TYPE rows (see `file_source`), or a DataStream of such
    rows (tests put fault injection there); sinks: see `build_sinks`; start: where the
    database says the sources stand (`prepare_database`): their applied lines are skipped.

    All the Python work is one stateless operator (parse and validate, chained to the source).
    Checkpoint scope: every valid payment goes to the books sink in the order of its file, and
    the database decides, against the ledger, whether it is new, a duplicate or a conflicting
    duplicate (`apply_payments_sql`). Subtask scope: dedupe, balance sums and routing run on
    the JVM, keyed by event_id and by account."""
    if not isinstance(source, DataStream):
        source = env.from_source(
            source, WatermarkStrategy.no_watermarks(), "payment-files", type_info=LINE_TYPE
        ).uid("payment-files")
    if sinks.books is not None:
        source = skip_applied(source, start)
    parsed = parse_payment_lines(
        source, currencies=load_currency_table(config), batch_lines=config.batch_lines
    )
    if sinks.books is not None:
        payments = (
            project(
                parsed.payments,
                {name: name for name in PAYMENT_INPUT_FIELDS},
                PAYMENT_INPUT_ROW_TYPE,
            )
            .name("payment-rows")
            .uid("payment-rows")
        )
        positions = track_positions(source, start).name("source-positions").uid("source-positions")
        sinks.books.attach(
            {"ledger": payments, "rejected": parsed.rejected, "positions": positions}
        ).name("books-sink").uid("books-sink")
        return

    deduplicated = deduplicate(
        parsed.payments,
        key_field="event_id",
        fingerprint_field="fingerprint",
        ttl_ms=config.dedupe_ttl_ms,
    )
    deduplicated.first_seen.name("dedupe-by-event-id").uid("dedupe-by-event-id")
    conflicts = (
        project(deduplicated.conflicts, CONFLICT_FIELDS, REJECTED_ROW_TYPE)
        .name("conflicting-duplicates")
        .uid("conflicting-duplicates")
    )
    rejected = parsed.rejected.union(conflicts)
    duplicates = (
        project(deduplicated.duplicates, DUPLICATE_FIELDS, DUPLICATE_ROW_TYPE)
        .name("duplicate-rows")
        .uid("duplicate-rows")
    )
    ledger = (
        project(deduplicated.first_seen, LEDGER_FIELDS, LEDGER_ROW_TYPE)
        .name("ledger-rows")
        .uid("ledger-rows")
    )
    # One delta per account and checkpoint, owned by one subtask: few upserts, and no two
    # transactions of this job ever wait for each other's row locks.
    balances = (
        sum_per_checkpoint(
            deduplicated.first_seen,
            ["account_id", "currency"],
            "amount_minor",
            sum_as="balance_minor",
            count_as="event_count",
        )
        .name("balance-deltas")
        .uid("balance-deltas")
    )
    ledger.sink_to(sinks.ledger).name("ledger-sink").uid("ledger-sink")
    balances.sink_to(sinks.balances).name("balances-sink").uid("balances-sink")
    rejected.sink_to(sinks.rejected).name("rejected-sink").uid("rejected-sink")
    duplicates.sink_to(sinks.duplicates).name("duplicates-sink").uid("duplicates-sink")


# Lines Java may hand to a Python worker before it waits for their results. Every checkpoint
# waits until Python has worked off all of them, so this bounds how late a checkpoint, and with
# it the commit, comes under load. Flink's default bundle of 100,000 records (50M lines at 500
# lines a record) let that backlog grow to 6 s; throughput is the same at 10,000.
BUNDLE_LINES = 10_000


def flink_settings(config: PaymentsConfig) -> dict[str, str]:
    """flink-conf/config.yaml's job defaults, then this run's flags."""
    from localenv.paths import sub_dir

    settings = job_defaults()
    settings.setdefault(
        "execution.checkpointing.dir", (sub_dir("checkpoints", config.sink_id_prefix)).as_uri()
    )
    overrides = {
        "execution.checkpointing.interval": config.checkpoint_interval,
        "execution.checkpointing.dir": config.checkpoint_dir and file_uri(config.checkpoint_dir),
        "execution.state-recovery.path": config.from_checkpoint
        and file_uri(config.from_checkpoint),
        "state.backend.type": config.state_backend,
        "python.execution-mode": config.execution_mode,
        "python.fn-execution.bundle.size": str(
            config.bundle_size or max(1, BUNDLE_LINES // (config.batch_lines or 1))
        ),
    }
    settings.update({k: v for k, v in overrides.items() if v})
    settings.update(config.extra_settings)
    # Non-negotiable for this job: it exists to be exactly once.
    settings["execution.checkpointing.mode"] = "EXACTLY_ONCE"
    # Hand records between chained operators without a deep copy: every operator of this job
    # copies what it keeps (profiles showed the copies at a tenth of the JVM's time). Not in
    # thread mode, whose Python operators emit one reused Row object.
    if config.execution_mode != "thread":
        settings.setdefault("pipeline.object-reuse", "true")
    return settings


def parse_duration_ms(text: str) -> int:
    units = {"ms": 1, "s": 1000, "sec": 1000, "min": 60_000, "m": 60_000, "h": 3_600_000}
    number = text.strip().rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
    unit = text.strip()[len(number) :].strip() or "ms"
    if unit not in units:
        raise ValueError(f"unknown duration unit in {text!r}: use ms, s, min or h")
    return int(float(number) * units[unit])


def create_environment(config: PaymentsConfig):
    from localenv.flink import job_environment, use_python_worker_processes
    from sinks import add_kafka_jars, add_sink_jars

    use_python_worker_processes()
    env = job_environment(config.parallelism, flink_settings(config))
    add_sink_jars(env)
    if config.source == "kafka":
        add_kafka_jars(env)
    return env


def exactly_once_sink_ids(config: PaymentsConfig) -> list[str]:
    """The sink ids of this run's sinks that promise exactly once by their checkpoints alone
    (not at_least_once, and not idempotent): a fresh start on them would apply lines twice."""
    if config.commit_scope == "checkpoint":
        return []  # the books sink writes each line only if absent (build_sinks)
    modes = {
        "ledger": config.ledger_mode,
        "balances": config.balances_mode,
        "rejected": config.rejected_mode,
        "duplicates": config.rejected_mode,
    }
    return [sid for table, sid in sink_ids(config).items() if modes[table] != "at_least_once"]


def resume_hint(config: PaymentsConfig) -> str:
    """What to do instead of a fresh start, in this command's flags."""
    from urllib.parse import unquote, urlparse

    from sinks.fresh_start import newest_retained_checkpoint

    # Where this run keeps its checkpoints, as flink_settings decides it (flag, config.yaml or
    # var/checkpoints/<prefix>); only a local directory can be looked into.
    location = urlparse(flink_settings(config)["execution.checkpointing.dir"])
    checkpoint_dir = unquote(location.path) if location.scheme == "file" else location.geturl()
    newest = newest_retained_checkpoint(checkpoint_dir) if location.scheme == "file" else None
    again = "To apply the input again on purpose, use a new --sink-id-prefix."
    if newest:
        return (
            f"To resume the earlier run, start it with --from-checkpoint {newest} (the newest "
            f"retained checkpoint) or --from-savepoint PATH. {again}"
        )
    return (
        f"No retained checkpoint is under {checkpoint_dir}: if the earlier run finished, its "
        "input is applied already; if it was stopped or killed, resume it with --from-savepoint "
        f"PATH or --from-checkpoint <its newest chk-N with a _metadata file>. {again}"
    )


def prepare_database(config: PaymentsConfig) -> Optional[StartPositions]:
    """The payments tables, then, before anything is built or read: in checkpoint scope, where
    the database says the sources stand (`sinks.positions`; a file changed since it was applied
    is refused); in subtask scope, a start that restores no checkpoint is refused if its sink
    ids already applied input (`sinks.fresh_start`)."""
    from jobs.payments_schema import ensure_schema
    from sinks.database import connect
    from sinks.fresh_start import refuse_fresh_start
    from sinks.positions import ensure_positions_table, start_positions
    from transforms.inputs import input_files

    with connect(config.db_url, config.db_user, config.password_env, connect_timeout=10) as conn:
        ensure_schema(conn)
        if config.commit_scope == "checkpoint":
            ensure_positions_table(conn)
            conn.commit()
            files = []
            if config.source == "files" and config.input:
                files = [os.path.abspath(path) for path in input_files(config.input)]
            return start_positions(conn, sink_ids(config)["ledger"], files)
        if not config.from_checkpoint:
            refuse_fresh_start(conn, exactly_once_sink_ids(config), lambda: resume_hint(config))
    return None


class NothingNew(NamedTuple):
    """The run found every line of its input applied already, and started no job."""

    message: str

    def get_job_id(self):
        return None


def submit(config: PaymentsConfig, wait: bool = True):
    """Build the job and run it: to the end when `wait`, else return its JobClient.

    Waiting with ``config.savepoint_dir`` set, SIGTERM and SIGINT (Ctrl-C) stop the job with a
    savepoint there instead of killing it; the result is then a `Stopped`."""
    if config.source == "files" and not os.path.isdir(config.input or ""):
        raise SystemExit(f"--input {config.input} is not a directory")
    if config.source == "files":
        faults = input_faults(config.input or "")
        if faults:
            raise UnreadableInput(faults)
    if config.from_checkpoint and not os.path.exists(config.from_checkpoint):
        raise SystemExit(
            f"--from-savepoint/--from-checkpoint {config.from_checkpoint}: "
            "no such checkpoint or savepoint"
        )
    start = prepare_database(config)
    if start is not None and start.nothing_new and not (config.watch or config.from_checkpoint):
        return NothingNew(start.describe())
    if start is not None and config.source == "kafka":
        # A new job on these sink ids reads each partition on from where the database says.
        config = dataclasses.replace(config, resume_offsets=start.next_offsets(config.topic or ""))
    env = create_environment(config)
    build_pipeline(env, line_source(env, config), build_sinks(config), config, start)
    name = f"payments ({config.sink_id_prefix})"
    if not wait:
        return env.execute_async(name)
    if runs_detached(env) and not config.savepoint_dir:
        return env.execute(name)  # `flink run -d`: returns once the job is submitted
    # What the job does, on the terminal while it runs (jobs/progress.py); the counts it shows
    # start from what the database holds now, before the job is submitted.
    monitor = job_monitor(config)
    try:
        client = env.execute_async(name)
        if not config.savepoint_dir:
            return watch(client, monitor)
        return run_until_stopped(client, config.savepoint_dir, monitor)
    finally:
        close = getattr(monitor.committed, "close", None)
        if close:
            close()


class Stopped(NamedTuple):
    job_id: str
    savepoint: Optional[str]  # None: the job ended by itself (bounded input)

    def get_job_id(self):
        return self.job_id


def run_until_stopped(
    job_client, savepoint_dir: str, monitor: Optional[JobMonitor] = None
) -> Stopped:
    """Wait for the job; on SIGTERM/SIGINT stop it with a savepoint and print the path. With a
    `monitor`, its progress lines meanwhile and its last line at the end."""
    import signal
    import threading

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    job_id = str(job_client.get_job_id())
    print(
        f"job {job_id} running; SIGTERM or Ctrl-C stops it with a savepoint in {savepoint_dir}",
        flush=True,
    )
    say = monitor.say if monitor else lambda line: print(line, flush=True)
    try:
        result = job_client.get_job_execution_result()
        if monitor:
            monitor.start(job_client)
        while not stop.wait(0.5):
            if result.done():
                try:
                    result.result()  # raises if the job failed
                except BaseException:
                    if monitor:
                        monitor.finish("failed")
                    raise
                if monitor:
                    monitor.finish("finished")
                return Stopped(job_id, None)
        say(f"stopping job {job_id} with a savepoint ...")
        try:
            path = stop_with_savepoint(job_client, savepoint_dir)
        except BaseException:
            if monitor:
                monitor.finish("failed to stop with a savepoint")
            raise
        if monitor:
            monitor.finish("stopped")
        print(
            f"job {job_id} stopped with savepoint {path}\n"
            f"start the next version with --from-savepoint {path}",
            flush=True,
        )
        return Stopped(job_id, path)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class CommittedLines:
    """What the job's progress lines count in the database (`jobs.progress`), since this run
    started: lines committed (checkpoint scope: the lines the books sink's positions say are
    applied, `tpc_source_positions`; subtask scope: rows of ledger, rejected and duplicates),
    and of them rejected and duplicates. Earlier runs' rows do not count.

    One connection, opened on first use: 2 s to connect, 2 s a statement, no transaction held
    open; an error drops it (the next call connects again) and raises."""

    def __init__(self, config: PaymentsConfig):
        self.config = config
        self.conn: Any = None
        self.start: Optional[tuple[int, int, int]] = None
        try:
            self.start = self.counts()
        except Exception:
            self.close()  # no baseline, no counts: the progress lines go without them

    def __call__(self) -> dict[str, int]:
        if self.start is None:
            raise RuntimeError("no counts at the start of the run")
        lines, rejected, duplicates = (now - then for now, then in zip(self.counts(), self.start))
        return {"committed": lines, "rejected": rejected, "duplicates": duplicates}

    def counts(self) -> tuple[int, int, int]:
        from sinks.database import connect
        from sinks.positions import POSITIONS_TABLE

        try:
            if self.conn is None:
                self.conn = connect(
                    self.config.db_url,
                    self.config.db_user,
                    self.config.password_env,
                    connect_timeout=2,
                    autocommit=True,
                    options="-c statement_timeout=2000",
                )
            rows = "(SELECT count(*) FROM rejected), (SELECT count(*) FROM duplicates)"
            if self.config.commit_scope == "checkpoint":
                row = self.conn.execute(
                    f"SELECT (SELECT coalesce(sum(lines), 0) FROM {POSITIONS_TABLE} "
                    f"WHERE sink_id = %s), {rows}",
                    (sink_ids(self.config)["ledger"],),
                ).fetchone()
            else:
                row = self.conn.execute(f"SELECT (SELECT count(*) FROM ledger), {rows}").fetchone()
                row = (row[0] + row[1] + row[2], row[1], row[2])
        except Exception:
            self.close()
            raise
        return int(row[0]), int(row[1]), int(row[2])

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


def job_monitor(config: PaymentsConfig) -> JobMonitor:
    """The monitor `submit` waits with: this run's committed counts, and the restart strategy
    of its effective settings (restart lines say ``restart 3/70``)."""
    return JobMonitor(
        committed=CommittedLines(config),
        policy=restart_policy(flink_settings(config)),
        interval=config.progress_interval,
        announce=True,
    )


def failure_verdict(config: PaymentsConfig, error: BaseException) -> str:
    """A failed run's last line: the root cause in one line, and where to resume from."""
    from urllib.parse import unquote, urlparse

    from sinks.fresh_start import newest_retained_checkpoint

    location = urlparse(flink_settings(config)["execution.checkpointing.dir"])
    checkpoint_dir = unquote(location.path) if location.scheme == "file" else location.geturl()
    newest = newest_retained_checkpoint(checkpoint_dir) if location.scheme == "file" else None
    if config.commit_scope == "checkpoint":
        resume = "run the same command again (it goes on where the database says)" + (
            f", or resume from the newest retained checkpoint: --from-checkpoint {newest}"
            if newest
            else ""
        )
    elif newest:
        resume = f"resume with --from-checkpoint {newest} (the newest retained checkpoint)"
    else:
        resume = f"no retained checkpoint under {checkpoint_dir}: resume with --from-savepoint PATH"
    return f"the job failed: {describe_error(error)}. To go on, {resume}."


class UpgradeRefused(RuntimeError):
    """The job was refused at start, before any row moved; the message says what to do."""


# Every operator of this job that holds state, by uid. Renaming one, removing one, or changing
# the type of its state makes savepoints of earlier versions unusable (see README, "Upgrading").
STATEFUL_UIDS = (
    "payment-files",
    "payment-records",
    "dedupe-by-event-id",
    "ledger-sink",
    "balances-sink",
    "rejected-sink",
    "duplicates-sink",
    "books-sink",  # checkpoint scope: the tables' sink
    "source-positions",  # checkpoint scope: how far each source is applied
)


def explain_refusal(error: BaseException) -> Optional[str]:
    """What a refused start means and what to do, from Flink's or the sink's error; None if
    `error` is no refusal to start."""
    import re

    text = str(error)
    unmapped = re.search(r"Cannot map checkpoint/savepoint state for operator ([0-9a-f]{32})", text)
    if unmapped:
        op = unmapped.group(1)
        try:
            # A Sink V2's committer is an operator of its own, uid "Sink Committer: <uid>".
            candidates = [
                *STATEFUL_UIDS,
                *(f"Sink Committer: {u}" for u in STATEFUL_UIDS if u.endswith("-sink")),
            ]
            uid = next((u for u in candidates if operator_id(u) == op), None)
        except Exception:  # no JVM at hand: the id alone still helps
            uid = None
        what = f"operator '{uid}' (id {op})" if uid else f"operator id {op}"
        return (
            f"incompatible upgrade: the savepoint holds state of {what}, which this version "
            "of the job does not have (a stateful operator was removed or its uid changed). "
            "Nothing was written. Deploy a version that keeps that operator under the same "
            "uid, or start from a savepoint taken by this version. Dropping the state "
            "(execution.state-recovery.ignore-unclaimed-state) would forget what it "
            "remembers, e.g. which event ids were seen: do that only on purpose."
        )
    if "StateMigrationException" in text or "incompatible" in text and "serializer" in text:
        return (
            "incompatible upgrade: the type of a stateful operator's state changed, so the "
            "savepoint's state cannot be read by this version. Nothing was written. Keep "
            "the state's type (or give the new operator a new uid and start it empty, on "
            "purpose), then start from the savepoint again."
        )
    renamed = re.search(
        r"restored state belongs to sink id '([^']+)' but this sink is "
        r"'([^']+)'",
        text,
    )
    if renamed:
        return (
            f"incompatible upgrade: the savepoint holds the state of sink id "
            f"'{renamed.group(1)}', but this job's sink is '{renamed.group(2)}'. Nothing was "
            "written. Keep --sink-id-prefix (and the sinks' uids) the same across upgrades; "
            "a new sink id is a new job: start it without a savepoint."
        )
    refused = re.search(r"sink '[^']+' refuses to restore checkpoint .*?instead\.", text, re.DOTALL)
    if refused:
        return refused.group(0) + " Nothing was written."
    if isinstance(error, (FreshStartRefused, InputChanged, UnreadableInput)):
        return text
    unreadable = re.search(r"InputFileFault: (input file .*?\[[a-z0-9_]+\])", text, re.DOTALL)
    if unreadable:
        return (
            f"{unreadable.group(1)}\nThe job stopped at once: no retry can read this file. "
            "Lines committed before stay committed; the next run goes on from there."
        )
    # The writer's own refusal (the job's check above came first, unless another run committed
    # in between).
    fresh = re.search(r"sink '[^']+' refuses a fresh start: .*?new sink id\.", text, re.DOTALL)
    if fresh:
        return fresh.group(0) + " Nothing was written."
    return None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Payments files to PostgreSQL, exactly once (PyFlink).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="generate sample payments, start a local PostgreSQL, run the job on "
        "the mini cluster and print a reconciliation",
    )
    parser.add_argument(
        "--source",
        choices=["files", "kafka"],
        default="files",
        help="read --input's files, or a Kafka topic",
    )
    parser.add_argument("--input", help="directory of JSON-lines files")
    kafka = parser.add_argument_group("--source kafka")
    kafka.add_argument("--bootstrap-servers", metavar="HOST:PORT[,HOST:PORT]")
    kafka.add_argument("--topic")
    kafka.add_argument(
        "--group-id",
        help="consumer group for the informative offset commits (default: --sink-id-prefix)",
    )
    kafka.add_argument(
        "--starting-offsets",
        choices=["earliest", "latest", "committed"],
        default="earliest",
        help="where a job without restored state starts a partition the database has no "
        "position for; a restored job continues from its checkpoint's offsets",
    )
    kafka.add_argument(
        "--bounded",
        action="store_true",
        help="stop at the partitions' end offsets as of the start (default: run until cancelled)",
    )
    add_connection_arguments(parser, required=False)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-interval", help="e.g. '2 s' (default: flink-conf)")
    parser.add_argument("--checkpoint-dir")
    parser.add_argument(
        "--watch",
        nargs="?",
        const="5 s",
        metavar="INTERVAL",
        help="keep discovering new files (default interval 5 s)",
    )
    parser.add_argument(
        "--from-checkpoint",
        "--from-savepoint",
        metavar="PATH",
        dest="from_checkpoint",
        help="start from a savepoint (see --savepoint-dir) or a retained "
        "checkpoint (its chk-N directory); the sinks refuse one older "
        "than what they already committed",
    )
    parser.add_argument(
        "--savepoint-dir",
        metavar="DIR",
        help="on SIGTERM or Ctrl-C, stop the job with a savepoint in DIR and "
        "print its path (the way to upgrade the job's code)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between progress lines while the job runs (default: 2 on a terminal, "
        "rewritten in place; 10 otherwise)",
    )
    parser.add_argument(
        "--currencies",
        metavar="FILE",
        help="JSON currency table (default: transforms/currencies.json)",
    )
    parser.add_argument(
        "--mode",
        dest="execution_mode",
        default="process",
        choices=["process", "thread"],
        help="Python execution mode",
    )
    parser.add_argument("--state-backend", choices=["hashmap", "rocksdb"])
    parser.add_argument(
        "--dedupe-ttl-days",
        type=int,
        default=30,
        help="--commit-scope subtask: how long the JVM dedupe remembers an event id, counted "
        "from its first sighting, in processing time; 0: for ever (the default scope asks the "
        "ledger, which never forgets)",
    )
    parser.add_argument(
        "--commit-scope",
        default="checkpoint",
        choices=["checkpoint", "subtask"],
        help="checkpoint: the four tables in one sink, one transaction per checkpoint (atomic "
        "books); subtask: one sink per table, one transaction per subtask and checkpoint",
    )
    parser.add_argument(
        "--ledger-mode",
        default="prepared",
        choices=["prepared", "staged"],
        help="the ledger sink's commit mode (subtask scope; checkpoint scope is staged)",
    )
    parser.add_argument("--sink-id-prefix", default="payments")
    parser.add_argument("--events", type=int, default=20_000, help="--demo: generated events")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> PaymentsConfig:
    if args.source == "kafka":
        if not args.bootstrap_servers or not args.topic or not args.db_url:
            raise SystemExit("--source kafka needs --bootstrap-servers, --topic and --db-url")
    elif not args.input or not args.db_url:
        raise SystemExit("--input and --db-url are required (or use --demo)")
    return PaymentsConfig(
        input=args.input,
        db_url=args.db_url,
        db_user=args.db_user,
        password_env=args.password_env,
        parallelism=args.parallelism,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_dir=args.checkpoint_dir,
        watch=args.watch,
        from_checkpoint=args.from_checkpoint,
        savepoint_dir=args.savepoint_dir,
        currencies=args.currencies,
        execution_mode=args.execution_mode,
        state_backend=args.state_backend,
        dedupe_ttl_days=args.dedupe_ttl_days,
        commit_scope=args.commit_scope,
        ledger_mode=args.ledger_mode,
        sink_id_prefix=args.sink_id_prefix,
        source=args.source,
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        group_id=args.group_id,
        starting_offsets=args.starting_offsets,
        bounded=args.bounded,
        progress_interval=args.progress_interval,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.demo:
        from jobs.demo import run_demo

        return run_demo(args, PaymentsConfig, submit)
    config = config_from_args(args)
    try:
        result = submit(config)
    except Exception as error:
        reason = explain_refusal(error)
        if reason is None:
            # The whole trace for whoever digs, then the verdict as the last line.
            import traceback

            sys.stdout.flush()
            traceback.print_exception(type(error), error, error.__traceback__)
            print(f"error: {failure_verdict(config, error)}", file=sys.stderr, flush=True)
            return 1
        print(f"error: {reason}", file=sys.stderr)
        return 1
    if isinstance(result, NothingNew):
        print(result.message)
    # Otherwise the job's progress monitor said last how it ended (jobs/progress.py).
    return 0


if __name__ == "__main__":
    exit_code = main()
    from localenv.flink import skip_final_garbage_collection

    skip_final_garbage_collection()
    sys.exit(exit_code)
