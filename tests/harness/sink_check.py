"""Acceptance job for the two-phase-commit sink: numbers 1..N into a table, exactly once.

Used by the sink's tests, the benchmark and as a smoke test of a database:

    PGPASSWORD=... python -m tests.harness.sink_check \\
        --db-url jdbc:postgresql://127.0.0.1:5432/db --db-user app --count 100000 --mode staged

Each number becomes a row (id, v). Faults can be injected: `--fail-once-marker FILE` makes the
Python map raise once (the first attempt that finds FILE absent creates it), after
`--fail-after-seconds`. `--hot-key` turns every row into an upsert of one balance row instead.
"""

import argparse
import os
import sys
import time

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream.connectors.number_seq import NumberSequenceSource

from localenv.flink import file_uri
from sinks.database import add_connection_arguments
from tests.harness.faults import FailOnce

ROW_TYPE = Types.ROW_NAMED(["id", "v"], [Types.LONG(), Types.STRING()])

INSERT_ROW = "INSERT INTO {table} (id, v) VALUES (:id, :v)"
UPSERT_HOT_ROW = (
    "INSERT INTO {table} (k, total, events) VALUES ('hot', :id, 1) "
    "ON CONFLICT (k) DO UPDATE SET total = {table}.total + EXCLUDED.total, "
    "events = {table}.events + 1"
)


def number_to_row(value) -> Row:
    return Row(int(value), f"v{value}")


class NumberToRow:
    """`number_to_row`, where every `nul_every`-th number's text holds a NUL, which PostgreSQL
    text refuses: a poison row for the sink's row error policy."""

    def __init__(self, nul_every: int = 0):
        self.nul_every = nul_every

    def __call__(self, value) -> Row:
        if self.nul_every and value % self.nul_every == 0:
            return Row(int(value), f"v{value}\x00")
        return number_to_row(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start a throwaway local PostgreSQL, run with one injected failure "
        "and print what was committed",
    )
    add_connection_arguments(parser, required=False)
    parser.add_argument("--table", default="sink_check")
    parser.add_argument("--mode", default="staged", choices=["prepared", "staged", "at_least_once"])
    parser.add_argument("--scope", default="subtask", choices=["subtask", "checkpoint"])
    parser.add_argument("--sink-id", default="sink_check")
    parser.add_argument(
        "--second-sink",
        nargs=3,
        metavar=("SINK_ID", "MODE", "TABLE"),
        help="also write every row through a second sink",
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=500)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--from-checkpoint")
    parser.add_argument("--restart-attempts", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--lock-timeout-ms", type=int, default=30_000)
    parser.add_argument("--bundle-size", type=int, default=100)
    parser.add_argument("--fail-once-marker")
    parser.add_argument("--fail-after-seconds", type=float, default=2.0)
    parser.add_argument(
        "--fail-after-records",
        type=int,
        default=0,
        help="fail only once a subtask has seen this many records",
    )
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--throttle-ms", type=float, default=1.0)
    parser.add_argument("--hot-key", action="store_true")
    parser.add_argument("--on-row-error", default="fail", choices=["fail", "dead_letter"])
    parser.add_argument(
        "--nul-every",
        type=int,
        default=0,
        help="every N-th row's text holds a NUL (a row PostgreSQL refuses)",
    )
    parser.add_argument(
        "--owner-wait-s",
        type=float,
        help="how long a writer waits for another job holding its sink id",
    )
    parser.add_argument(
        "--job-id",
        help="fix the Flink job id (32 hex digits; tests use it "
        "to stand in for an earlier attempt of this job)",
    )
    parser.add_argument("--execution-mode", default="process", choices=["process", "thread"])
    return parser.parse_args(argv)


def flink_settings(args) -> dict:
    settings = {
        "execution.checkpointing.interval": f"{args.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.min-pause": "0 ms",
        "execution.checkpointing.max-concurrent-checkpoints": "1",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(args.restart_attempts),
        "restart-strategy.fixed-delay.delay": "500 ms",
        "python.fn-execution.bundle.size": str(args.bundle_size),
        "python.fn-execution.bundle.time": "100",
        "python.execution-mode": args.execution_mode,
    }
    if args.checkpoint_dir:
        settings["execution.checkpointing.dir"] = file_uri(args.checkpoint_dir)
        settings["execution.checkpointing.externalized-checkpoint-retention"] = (
            "RETAIN_ON_CANCELLATION"
        )
        settings["execution.checkpointing.num-retained"] = "3"
    if args.from_checkpoint:
        settings["execution.state-recovery.path"] = file_uri(args.from_checkpoint)
    if args.job_id:
        settings["$internal.pipeline.job-id"] = args.job_id
    return settings


def build_sink(args, sink_id, mode, table):
    from sinks import TwoPhaseCommitSink

    statement = (UPSERT_HOT_ROW if args.hot_key else INSERT_ROW).format(table=table)
    builder = (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(args.db_url)
        .set_user(args.db_user)
        .set_password_source(args.password_env, args.password_file)
        .set_row_type(ROW_TYPE)
        .add_statement(statement)
        .set_sink_id(sink_id)
        .set_mode(mode)
        .set_commit_scope(args.scope if mode == "staged" else "subtask")
        .set_batch_size(args.batch_size)
        .set_lock_timeout_ms(args.lock_timeout_ms)
        .set_on_row_error(args.on_row_error)
    )
    if args.owner_wait_s is not None:
        builder.set_owner_wait_s(args.owner_wait_s)
    return builder.build()


def build_pipeline(env, args):
    source = NumberSequenceSource(1, args.count)
    numbers = env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers").uid("numbers")
    numbers = numbers.map(
        FailOnce(
            args.fail_once_marker,
            args.fail_after_seconds,
            args.throttle_every,
            args.throttle_ms,
            args.fail_after_records,
        ),
        output_type=Types.LONG(),
    ).name("fault-injection")
    rows = numbers.map(NumberToRow(args.nul_every), output_type=ROW_TYPE).name("to-row")
    rows.sink_to(build_sink(args, args.sink_id, args.mode, args.table)).uid(
        f"sink-{args.sink_id}"
    ).name(f"sink-{args.sink_id}")
    if args.second_sink:
        sink_id, mode, table = args.second_sink
        rows.sink_to(build_sink(args, sink_id, mode, table)).uid(f"sink-{sink_id}").name(
            f"sink-{sink_id}"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.demo:
        return demo(args)
    if not args.db_url:
        raise SystemExit("--db-url is required (or use --demo)")
    return run(args)


def demo(args) -> int:
    import tempfile

    from localenv.postgres import LocalPostgres
    from sinks.control_tables import commit_logs, prepared_transactions, staged_row_count

    with LocalPostgres() as server, tempfile.TemporaryDirectory() as tmp:
        db = server.create_database("sink_check_demo")
        with db.connect(autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {args.table} (id bigint NOT NULL, v text NOT NULL)")
        # This process's JVM may have started before the password existed: a file it reads.
        args.password_file = str(db.password_file)
        args.db_url, args.db_user = db.jdbc_url, db.user
        args.fail_once_marker = os.path.join(tmp, "failed-once")
        args.throttle_every, args.throttle_ms = args.throttle_every or 10, 2.0
        print(
            f"PostgreSQL {db.jdbc_url}; writing 1..{args.count} through sink "
            f"'{args.sink_id}' ({args.mode}), with one injected failure mid-stream",
            flush=True,
        )
        run(args)
        with db.connect() as conn:
            rows, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT id) FROM {args.table}"
            ).fetchone()
            logs = commit_logs(conn).values()
            transactions, logged = sum(log.commits for log in logs), sum(log.rows for log in logs)
            prepared = len(prepared_transactions(conn))
            staged = staged_row_count(conn)
    print(
        f"committed: {rows} rows, {distinct} distinct ids, in {transactions} transactions "
        f"({logged} rows in the commit log); pending prepared: {prepared}, staged: {staged}"
    )
    exact = rows == distinct == args.count and prepared == staged == 0
    print("exactly once: " + ("yes" if exact else "NO"))
    return 0 if exact else 1


def run(args) -> int:
    from localenv.flink import job_environment
    from sinks import add_sink_jars

    env = job_environment(args.parallelism, flink_settings(args))
    add_sink_jars(env)
    build_pipeline(env, args)
    started = time.monotonic()
    result = env.execute(f"sink-check-{args.sink_id}")
    elapsed = time.monotonic() - started
    print(
        f"job {result.get_job_id()} finished: {args.count} records in {elapsed:.1f} s "
        f"({args.count / elapsed:,.0f} rec/s) through sink '{args.sink_id}' ({args.mode})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
