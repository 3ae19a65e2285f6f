"""The payments job: JSON-lines files to PostgreSQL, every line applied exactly once.

    python -m jobs.payments --demo
    python -m jobs.payments --input DIR --db-url URL [--parallelism N]
        [--checkpoint-interval DURATION] [--watch [INTERVAL]] [--currencies FILE]
        [--from-savepoint PATH] [--savepoint-dir DIR] [--mode thread|process]
        [--progress-interval SECONDS] [--commit-scope subtask [--dedupe-ttl DURATION]]
        [--commit-log-retention DURATION]
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
`transforms/`, the plumbing every exactly-once job shares (flags, Flink settings, sources,
pre-flight checks, running, refusals) in `jobs/kit/`; this file only wires them. Exactly-once
settings come from `flink-conf/config.yaml`, overridden by the flags below.
"""

if __name__ == "__main__":
    # The JVM boots while the imports below run: about 0.4 s off every start.
    from localenv.flink import start_jvm_early

    start_jvm_early()

import argparse
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple, Optional

from pyflink.common import Types

from jobs import payments_audit
from jobs.kit import line_sources, running
from jobs.kit.committed import CommittedLines
from jobs.kit.config import (
    JobConfig,
    add_run_arguments,
    add_source_arguments,
    duration,
    job_arguments,
    parse_duration_ms,
)
from jobs.kit.declared import DeclaredJob
from jobs.kit.line_sources import lines_from
from jobs.kit.running import exit_with, run_command, submit_job
from jobs.kit.sinks import attach_tables, connected_builder, tables_sink
from jobs.payments_dead_letters import BOOKS_SINK
from sinks.positions import StartPositions, skip_applied
from transforms import sample_data
from transforms.jvm_operators import deduplicate, project, sum_per_checkpoint
from transforms.payments_flink import (
    BALANCE_ROW_TYPE,
    DUPLICATE_ROW_TYPE,
    LEDGER_ROW_TYPE,
    PAYMENT_ROW_TYPE,
    REJECTED_ROW_TYPE,
    parse_payment_lines,
)
from transforms.tables import (
    BALANCES,
    DUPLICATES,
    LEDGER,
    LINE_TABLES,
    REJECTED,
    Table,
    apply_payments_sql,
    insert_lines_if_absent_sql,
    insert_sql,
)
from transforms.tables import TABLES as DECLARED_TABLES


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
class PaymentsConfig(JobConfig):
    """The kit's standard flags (jobs/kit/config.py), and the payments job's own."""

    sink_id_prefix: str = "payments"
    currencies: Optional[str] = None  # JSON table; default transforms/currencies.json
    # Subtask scope: how long the JVM dedupe remembers an event id (`dedupe_ttl_ms`; 0: for
    # ever). `dedupe_ttl`, when set, replaces the days with a finer duration.
    dedupe_ttl_days: int = 30
    dedupe_ttl: Optional[timedelta] = None
    # Subtask scope: each table's sink's commit mode.
    ledger_mode: str = "prepared"  # insert-only, distinct keys
    balances_mode: str = "staged"  # hot keys: running sums
    rejected_mode: str = "staged"

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

#: What `jobs.audit` and `jobs.reconcile` know of this job (`--job payments`, their default):
#: its tables, and its own checks, which need more than an exact comparison (events contested
#: across sources, dead letters that explain a shortfall, the books per currency).
JOB = DeclaredJob(
    name="payments",
    tables=DECLARED_TABLES,
    line_tables=LINE_TABLES,
    sink=BOOKS_SINK,
    audit=payments_audit.audit,
    reconcile=payments_audit.reconcile,
    sample_lines=sample_data.generate_lines,
    scopes={
        "checkpoint": (),
        "prepared": ("--commit-scope", "subtask", "--ledger-mode", "prepared"),
        "staged": ("--commit-scope", "subtask", "--ledger-mode", "staged"),
    },
)


def sink_ids(config: "PaymentsConfig", **modes: str) -> dict[str, str]:
    """The sink id that writes each table (as `build_sinks(config, **modes)` builds them)."""
    if config.commit_scope == "checkpoint" and not modes:
        return {table: f"{config.sink_id_prefix}-books" for table in TABLES}
    return {table: f"{config.sink_id_prefix}-{table}" for table in TABLES}


# The sources' uids: their checkpointed reading positions are stored under them.
FILES_UID = "payment-files"
RECORDS_UID = "payment-records"


def file_lines(env, config: PaymentsConfig):
    """The lines of `config.input`'s files, as the job reads them (jobs/kit/line_sources.py)."""
    return line_sources.file_lines(env, config, FILES_UID)


def kafka_lines(env, config: PaymentsConfig):
    """The records of `config.topic`, as the job reads them (jobs/kit/line_sources.py)."""
    return line_sources.kafka_lines(env, config, RECORDS_UID)


def line_source(env, config: PaymentsConfig):
    """What `build_pipeline` reads: the files (default) or the Kafka topic."""
    return line_sources.line_source(env, config, RECORDS_UID)


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
    if config.at_least_once:
        modes = {table: "at_least_once" for table in TABLES}
    if config.commit_scope == "checkpoint" and not modes:
        books_id = sink_ids(config)["ledger"]
        # Every statement writes a line only if no table holds it yet, and the balances add up
        # only the ledger rows inserted (transforms/tables.py): a line read again, by this run
        # or any other, changes nothing. So a start without a checkpoint is safe here.
        books = tables_sink(
            config,
            books_id,
            [
                ("ledger", PAYMENT_INPUT_ROW_TYPE, [apply_payments_sql()]),
                ("rejected", REJECTED_ROW_TYPE, [insert_lines_if_absent_sql(REJECTED)]),
            ],
            BOOKS_BATCH_ROWS,
        )
        return PaymentSinks(None, None, None, None, books=books)

    def sink(name, row_type, statement, mode):
        return (
            connected_builder(config)
            .set_row_type(row_type)
            .add_statement(statement)
            .set_sink_id(f"{config.sink_id_prefix}-{name}")
            .set_mode(modes.get(name, mode))
            .set_batch_size(config.sink_batch_size or 500)
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
    source = lines_from(env, source, FILES_UID)
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
        streams = {"ledger": payments, "rejected": parsed.rejected}
        attach_tables(sinks.books, streams, source, start, "books-sink")
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


def positions_sink_id(config: PaymentsConfig) -> Optional[str]:
    """Checkpoint scope: the books sink, which commits the sources' positions with the rows."""
    return sink_ids(config)["ledger"] if config.commit_scope == "checkpoint" else None


def prepare_database(config: PaymentsConfig) -> Optional[StartPositions]:
    """The payments tables, then where the database says the sources stand (checkpoint scope),
    or the refusal of a fresh start on sink ids that applied input (subtask scope); see
    `jobs.kit.running.prepare_database`."""
    from jobs.payments_schema import ensure_schema

    return running.prepare_database(
        config, ensure_schema, positions_sink_id(config), exactly_once_sink_ids(config)
    )


def committed_lines(config: PaymentsConfig) -> CommittedLines:
    """What the progress lines count: lines committed (checkpoint scope: the books sink's
    positions; subtask scope: rows of ledger, rejected and duplicates), rejected, duplicates."""
    return CommittedLines(
        config,
        outcomes=("ledger", "rejected", "duplicates"),
        shown=("rejected", "duplicates"),
        positions_sink_id=positions_sink_id(config),
    )


def build(env, config: PaymentsConfig, start: Optional[StartPositions]) -> None:
    build_pipeline(env, line_source(env, config), build_sinks(config), config, start)


def submit(config: PaymentsConfig, wait: bool = True):
    """Build the job and run it: to the end when `wait`, else return its JobClient
    (`jobs.kit.running.submit_job`).

    Waiting with ``config.savepoint_dir`` set, SIGTERM and SIGINT (Ctrl-C) stop the job with a
    savepoint there instead of killing it; the result is then a `jobs.kit.running.Stopped`."""
    name = f"payments ({config.sink_id_prefix})"
    return submit_job(config, prepare_database, build, name, committed_lines, wait)


# Every operator of this job that holds state, by uid. Renaming one, removing one, or changing
# the type of its state makes savepoints of earlier versions unusable (see README, "Upgrading").
STATEFUL_UIDS = (
    FILES_UID,
    RECORDS_UID,
    "dedupe-by-event-id",
    "ledger-sink",
    "balances-sink",
    "rejected-sink",
    "duplicates-sink",
    "books-sink",  # checkpoint scope: the tables' sink
    "source-positions",  # checkpoint scope: how far each source is applied
)

COMMIT_SCOPE_HELP = (
    "checkpoint: the four tables in one sink, one transaction per checkpoint (atomic "
    "books); subtask: one sink per table, one transaction per subtask and checkpoint"
)


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
    add_source_arguments(parser)
    add_run_arguments(parser, sink_id_prefix="payments", commit_scope_help=COMMIT_SCOPE_HELP)
    parser.add_argument(
        "--currencies",
        metavar="FILE",
        help="JSON currency table (default: transforms/currencies.json)",
    )
    parser.add_argument(
        "--dedupe-ttl-days",
        type=int,
        default=30,
        help="--commit-scope subtask: how long the JVM dedupe remembers an event id, counted "
        "from its first sighting, in processing time; 0: for ever (the default scope asks the "
        "ledger, which never forgets)",
    )
    parser.add_argument(
        "--dedupe-ttl",
        type=duration,
        metavar="DURATION",
        help="--commit-scope subtask: the dedupe's time to live as a duration, e.g. '3 min' "
        "(replaces --dedupe-ttl-days; a soak's state reaches its plateau within the run)",
    )
    parser.add_argument(
        "--ledger-mode",
        default="prepared",
        choices=["prepared", "staged"],
        help="the ledger sink's commit mode (subtask scope; checkpoint scope is staged)",
    )
    parser.add_argument("--events", type=int, default=20_000, help="--demo: generated events")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> PaymentsConfig:
    return PaymentsConfig(
        **job_arguments(args, otherwise=" (or use --demo)"),
        currencies=args.currencies,
        dedupe_ttl_days=args.dedupe_ttl_days,
        dedupe_ttl=(
            timedelta(milliseconds=parse_duration_ms(args.dedupe_ttl)) if args.dedupe_ttl else None
        ),
        ledger_mode=args.ledger_mode,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.demo:
        from jobs.demo import run_demo

        return run_demo(args, PaymentsConfig, submit)
    return run_command(submit, config_from_args(args), STATEFUL_UIDS)


if __name__ == "__main__":
    exit_with(main())
