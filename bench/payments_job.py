"""The payments job as the benchmark runs it: the real graph (`jobs.payments.build_pipeline`)
on the real file source, with a choice of sinks.

    python -m bench.payments_job --input DIR --db-url URL --db-user USER \\
        --sinks exactly-once|at-least-once|discard [--parallelism 2] [--mode process|thread]

`exactly-once` is the job as shipped; `at-least-once` swaps every sink for the same sink in
at-least-once mode; `discard` sends every stream to Flink's DiscardingSink, which measures the
job without the database. Prints one line: `job finished: LINES lines in S s`.
"""

import sys

if __name__ == "__main__":
    # As jobs.payments does: the JVM boots while the imports below run.
    from localenv.flink import start_jvm_early

    start_jvm_early()

import argparse
import dataclasses
import time

from jobs.kit.config import metrics_port
from jobs.kit.environment import create_environment
from jobs.kit.line_sources import file_source
from jobs.payments import (
    TABLES,
    PaymentsConfig,
    PaymentSinks,
    build_pipeline,
    build_sinks,
    prepare_database,
)
from jobs.reconcile import count_lines
from sinks.database import add_connection_arguments

# exactly-once: the job's default (checkpoint scope, one sink for the four tables);
# exactly-once-subtask: one exactly-once sink per table, each subtask committing on its own.
SINK_CHOICES = ("exactly-once", "exactly-once-subtask", "at-least-once", "discard")


def discarding_sinks() -> PaymentSinks:
    from pyflink.datastream.connectors.base import Sink
    from pyflink.java_gateway import get_gateway

    def discard():
        return Sink(
            get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
        )

    return PaymentSinks(discard(), discard(), discard(), discard())


def sinks_for(choice: str, config: PaymentsConfig) -> PaymentSinks:
    if choice == "discard":
        return discarding_sinks()
    if choice == "at-least-once":
        return build_sinks(config, **{name: "at_least_once" for name in TABLES})
    if choice == "exactly-once-subtask":
        return build_sinks(dataclasses.replace(config, commit_scope="subtask"))
    return build_sinks(config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    add_connection_arguments(parser)
    parser.add_argument("--sinks", choices=SINK_CHOICES, default="exactly-once")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--mode", choices=["process", "thread"], default="process")
    parser.add_argument("--checkpoint-interval", default=None)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument(
        "--batch-lines",
        type=int,
        default=500,
        help="lines per record into Python (0: one line per record)",
    )
    parser.add_argument("--metrics-port", type=metrics_port, metavar="PORT[-PORT]")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Flink setting over flink-conf/config.yaml's, for ablations "
        "(e.g. python.fn-execution.bundle.size=100000); repeatable",
    )
    args = parser.parse_args(argv)
    config = PaymentsConfig(
        input=args.input,
        db_url=args.db_url,
        db_user=args.db_user,
        password_env=args.password_env,
        password_file=args.password_file,
        parallelism=args.parallelism,
        execution_mode=args.mode,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_dir=args.checkpoint_dir,
        sink_id_prefix="bench",
        batch_lines=args.batch_lines or None,
        extra_settings=dict(item.split("=", 1) for item in args.set),
        metrics_port=args.metrics_port,
    )
    started = time.monotonic()
    if args.sinks != "discard":
        prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_source(args.input), sinks_for(args.sinks, config), config)
    env.execute(f"payments-bench-{args.sinks}")
    elapsed = time.monotonic() - started
    print(f"job finished: {count_lines(args.input)} lines in {elapsed:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    exit_code = main()
    from localenv.flink import skip_final_garbage_collection

    skip_final_garbage_collection()
    sys.exit(exit_code)
