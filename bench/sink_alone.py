"""The sink alone, fed from the JVM: ledger-shaped rows made by a Java generator go straight into
`TwoPhaseCommitSink` (no Python function in the path), on the local mini cluster.

    python -m bench.sink_alone --db-url URL --db-user USER --count 1000000 --mode prepared

The table `ledger` must exist. Prints `sink finished: N rows in S s`.
"""

import argparse
import sys
import time

from pyflink.common import WatermarkStrategy
from pyflink.datastream.connectors.base import Source

from jobs.payments import LEDGER_SQL
from sinks.database import add_connection_arguments
from transforms.payments_flink import LEDGER_ROW_TYPE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument(
        "--mode", default="prepared", choices=["prepared", "staged", "at_least_once"]
    )
    parser.add_argument(
        "--scope",
        default="subtask",
        choices=["subtask", "checkpoint"],
        help="commit scope (checkpoint: staged mode only)",
    )
    parser.add_argument(
        "--on-row-error",
        default="fail",
        choices=["fail", "dead_letter"],
        help="fail: staged mode in subtask scope also tries each batch at pre-commit",
    )
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-interval", default="2 s")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)

    from pyflink.java_gateway import get_gateway

    from localenv.flink import job_environment
    from sinks import TwoPhaseCommitSink, add_sink_jars

    started = time.monotonic()
    env = job_environment(
        args.parallelism,
        {
            "execution.checkpointing.interval": args.checkpoint_interval,
            "execution.checkpointing.mode": "EXACTLY_ONCE",
        },
    )
    add_sink_jars(env)
    generator = get_gateway().jvm.dev.tpc.bench.LedgerRowGenerator
    rows = env.from_source(
        Source(generator.source(args.count)), WatermarkStrategy.no_watermarks(), "ledger-rows"
    )
    sink = (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(args.db_url)
        .set_user(args.db_user)
        .set_password_source(args.password_env, args.password_file)
        .set_row_type(LEDGER_ROW_TYPE)
        .add_statement(LEDGER_SQL)
        .set_sink_id(f"bench-alone-{args.mode}-{args.scope}".replace("_", "-"))
        .set_mode(args.mode)
        .set_commit_scope(args.scope)
        .set_on_row_error(args.on_row_error)
        .set_batch_size(args.batch_size)
        .build()
    )
    rows.sink_to(sink).name("ledger-sink")
    env.execute(f"sink-alone-{args.mode}")
    elapsed = time.monotonic() - started
    print(f"sink finished: {args.count} rows in {elapsed:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
