"""The orders job: shop order lines to stock moves per SKU and warehouse, every line applied
exactly once. The worked example of a job built from the kit alone (see README, "Building
another job").

    python -m jobs.orders --input DIR --db-url URL [--parallelism N] [--watch [INTERVAL]]
        [--checkpoint-interval DURATION] [--from-checkpoint PATH] [--dedupe-ttl-days N]
    python -m jobs.orders --source kafka --bootstrap-servers HOST:PORT --topic orders --db-url URL

lines ─▶ skip applied ─▶ parse/validate ─▶ dedupe by order_id ─▶ stock_moves ┐ sink "stock":
  │                     (Python, batches  (JVM, keyed state)  └ duplicates ─┤ one transaction
  │                      of 500 lines)  └ rejects ─────────────────────────┤ a checkpoint,
  └ positions per source (JVM) ────────────────────────────────────────────┘ all four tables

The rules, tables and statements are in `transforms/orders.py`: the first line of an order id
wins, later ones are duplicates. The keyed dedupe catches them on the way (its state may expire,
`--dedupe-ttl-days`); the database is the last line of defence, whatever reaches it: a move is
inserted only if its order id is absent (else its line becomes a duplicate), the stock adds up
only the moves inserted, and every line is recorded only if no table holds it yet. The
positions commit with the rows, and a start without a checkpoint skips what they say is
applied: the same command run twice, or a restart without its checkpoint, applies nothing
twice. One commit scope only: checkpoint.
"""

if __name__ == "__main__":
    from localenv.flink import start_jvm_early

    start_jvm_early()

import argparse
from dataclasses import dataclass
from typing import Optional

from jobs.kit import running
from jobs.kit.committed import CommittedLines
from jobs.kit.config import JobConfig, add_run_arguments, add_source_arguments, job_arguments
from jobs.kit.declared import DeclaredJob, Invariant
from jobs.kit.line_sources import line_source, lines_from
from jobs.kit.running import exit_with, run_command, submit_job
from jobs.kit.sinks import POSITIONS_UID, attach_tables, tables_sink
from sinks.positions import StartPositions, skip_applied
from transforms import order_samples
from transforms.flink_adapters import parse_lines, row_type
from transforms.jvm_operators import deduplicate, project
from transforms.orders import (
    LINE_TABLES,
    ORDER_DUPLICATES,
    ORDER_REJECTS,
    STOCK_FROM_MOVES_SQL,
    STOCK_MOVES,
    STOCK_SQL,
    TABLES,
    apply_orders_sql,
    expected_tables,
    insert_order_lines_sql,
    validate_order,
)

MOVE_ROW_TYPE = row_type(STOCK_MOVES)  # an `Order`'s fields, in order
DUPLICATE_ROW_TYPE = row_type(ORDER_DUPLICATES)
REJECT_ROW_TYPE = row_type(ORDER_REJECTS)

# The sources' uids: their checkpointed reading positions are stored under them.
FILES_UID = "order-files"
RECORDS_UID = "order-records"
DEDUPE_UID = "dedupe-by-order-id"
SINK_UID = "stock-sink"
# Every operator of this job that holds state, by uid (see README, "Upgrading").
STATEFUL_UIDS = (FILES_UID, RECORDS_UID, DEDUPE_UID, SINK_UID, POSITIONS_UID)

# Rows per statement of the sink (as the payments job's books sink).
BATCH_ROWS = 5_000

#: What `jobs.audit --job orders` and `jobs.reconcile --job orders` check a run against.
JOB = DeclaredJob(
    name="orders",
    tables=TABLES,
    line_tables=LINE_TABLES,
    reference=expected_tables,
    sink="stock",
    invariants=(
        Invariant(
            "stock = sum of the moves",
            STOCK_FROM_MOVES_SQL,
            STOCK_SQL,
            key_columns=2,
            sides=("moves", "stock"),
        ),
    ),
    sample_lines=order_samples.generate_lines,
)


@dataclass
class OrdersConfig(JobConfig):
    """The kit's standard flags, and the orders job's own."""

    sink_id_prefix: str = "orders"
    # How long the keyed dedupe remembers an order id (0: for ever); past it, the database
    # still records a late duplicate as one.
    dedupe_ttl_days: int = 30


def sink_id(config: OrdersConfig) -> str:
    """The one sink's id: it writes the four tables and the positions."""
    return JOB.sink_id(config.sink_id_prefix)


def build_sink(config: OrdersConfig, mode: str = "staged"):
    """The job's one sink (jobs/kit/sinks.py); `mode` "at_least_once" only for controls."""
    return tables_sink(
        config,
        sink_id(config),
        [
            ("stock_moves", MOVE_ROW_TYPE, [apply_orders_sql()]),
            ("order_duplicates", DUPLICATE_ROW_TYPE, [insert_order_lines_sql(ORDER_DUPLICATES)]),
            ("order_rejects", REJECT_ROW_TYPE, [insert_order_lines_sql(ORDER_REJECTS)]),
        ],
        BATCH_ROWS,
        "at_least_once" if config.at_least_once else mode,
    )


def build_pipeline(
    env, source, sink, config: OrdersConfig, start: Optional[StartPositions] = None
) -> None:
    """source: a Flink Source of LINE_TYPE rows, or such a stream (tests put faults there);
    sink: `build_sink`'s; start: where the database says the sources stand."""
    lines = skip_applied(lines_from(env, source, FILES_UID), start)
    parsed = parse_lines(
        lines,
        validate_order,
        MOVE_ROW_TYPE,
        ORDER_REJECTS,
        batch_lines=config.batch_lines,
        name="parse-orders",
        rows_name="orders",
        batches_name="order-line-batches",
        rejected_name="rejected-orders",
    )
    # Any later line of an order id is a duplicate, whatever it holds: the fingerprint is the
    # id itself, so there are no conflicts.
    deduplicated = deduplicate(
        parsed.rows, "order_id", "order_id", ttl_ms=config.dedupe_ttl_days * 86_400_000
    )
    moves = deduplicated.first_seen.name(DEDUPE_UID).uid(DEDUPE_UID)
    duplicates = (
        project(
            deduplicated.duplicates,
            {name: name for name in ORDER_DUPLICATES.field_names},
            DUPLICATE_ROW_TYPE,
        )
        .name("duplicate-orders")
        .uid("duplicate-orders")
    )
    streams = {"stock_moves": moves, "order_duplicates": duplicates}
    attach_tables(sink, {**streams, "order_rejects": parsed.rejected}, lines, start, SINK_UID)


def prepare_database(config: OrdersConfig) -> Optional[StartPositions]:
    """The orders tables (`jobs.schema`), then where the database says the sources stand."""
    from jobs.schema import ensure_schema

    return running.prepare_database(
        config, lambda conn: ensure_schema(conn, TABLES.values()), sink_id(config), []
    )


def committed_lines(config: OrdersConfig) -> CommittedLines:
    return CommittedLines(
        config,
        outcomes=("stock_moves", "order_duplicates", "order_rejects"),
        shown=("order_rejects", "order_duplicates"),
        positions_sink_id=sink_id(config),
    )


def build(env, config: OrdersConfig, start: Optional[StartPositions]) -> None:
    build_pipeline(env, line_source(env, config, RECORDS_UID), build_sink(config), config, start)


def submit(config: OrdersConfig, wait: bool = True):
    """Build the job and run it (`jobs.kit.running.submit_job`)."""
    name = f"orders ({config.sink_id_prefix})"
    return submit_job(config, prepare_database, build, name, committed_lines, wait)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Shop order lines to stock moves in PostgreSQL, exactly once (PyFlink).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_source_arguments(parser)
    add_run_arguments(parser, sink_id_prefix="orders", commit_scopes=("checkpoint",))
    parser.add_argument(
        "--dedupe-ttl-days",
        type=int,
        default=30,
        help="how long the keyed dedupe remembers an order id (0: for ever); the database "
        "records a later duplicate as one all the same",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> OrdersConfig:
    return OrdersConfig(**job_arguments(args), dedupe_ttl_days=args.dedupe_ttl_days)


def main(argv=None) -> int:
    return run_command(submit, config_from_args(parse_args(argv)), STATEFUL_UIDS)


if __name__ == "__main__":
    exit_with(main())
