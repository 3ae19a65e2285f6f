"""`python -m jobs.payments --demo`: sample payments (with duplicates and bad lines), a
throwaway local PostgreSQL, the job on Flink's mini cluster with a progress line, and a
reconciliation at the end.

With `--source kafka` the lines take a detour through a throwaway local Kafka broker: the demo
produces the files into a topic of 2 partitions (`jobs.produce`), and the job reads the topic up
to its end offsets. The reconciliation is the same: the files are the reference.
"""

import shutil
from contextlib import ExitStack
from typing import Any, Callable

from jobs.flink_config import job_defaults
from jobs.progress import JobMonitor, restart_policy, watch
from jobs.reconcile import count_lines, reconcile
from localenv.paths import sub_dir
from localenv.postgres import LocalPostgres
from transforms import sample_data


def write_sample_files(directory, events: int, files: int = 3) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sample = sample_data.generate(
        events, seed=7, duplicate_share=0.05, conflict_share=0.01, bad_share=0.02
    )
    per_file = -(-len(sample.lines) // files)
    for index in range(files):
        chunk = sample.lines[index * per_file : (index + 1) * per_file]
        (directory / f"payments-{index + 1:03d}.jsonl").write_bytes(b"".join(chunk))


def committed_counts(db):
    with db.connect() as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM ledger), (SELECT count(*) FROM "
            "duplicates), (SELECT count(*) FROM rejected)"
        ).fetchone()


def demo_progress(db, lines: int) -> dict[str, object]:
    """What the demo's progress lines say of the database: lines committed of all, by table."""
    ledger, duplicates, rejected = committed_counts(db)
    return {
        "committed": f"{ledger + duplicates + rejected:,}/{lines:,} lines",
        "ledger": ledger,
        "duplicates": duplicates,
        "rejected": rejected,
    }


def run_demo(args, job_config: Callable[..., Any], submit: Callable[..., Any]) -> int:
    """Run the demo with `args` (jobs.payments' parsed flags). `job_config` and `submit` are
    `jobs.payments.PaymentsConfig` and `jobs.payments.submit`: the job's `main` passes them, so
    that this module, which the job's command line runs, does not import the job back (see
    tests/test_imports.py)."""
    demo = sub_dir("demo")
    input_dir = demo / "input"
    write_sample_files(input_dir, args.events)
    lines = count_lines(str(input_dir))
    shutil.rmtree(demo / "checkpoints", ignore_errors=True)
    print(
        f"generated {lines:,} lines ({args.events:,} events with duplicates, conflicting "
        f"duplicates and bad lines) in {input_dir}"
    )
    with ExitStack() as stack:
        server = stack.enter_context(LocalPostgres())
        db = server.create_database("payments_demo")
        print(f"started PostgreSQL at {db.jdbc_url}")
        config = job_config(
            input=str(input_dir),
            db_url=db.jdbc_url,
            db_user=db.user,
            # The job runs in this process's JVM, started before this password existed.
            password_file=str(db.password_file),
            parallelism=args.parallelism,
            checkpoint_interval=args.checkpoint_interval or "1 s",
            checkpoint_dir=str(demo / "checkpoints"),
            execution_mode=args.execution_mode,
            state_backend=args.state_backend,
            ledger_mode=args.ledger_mode,
            metrics_port=args.metrics_port,
        )
        if args.source == "kafka":
            from jobs.produce import produce
            from localenv.kafka import LocalKafka

            kafka = stack.enter_context(LocalKafka())
            print(f"started Kafka at {kafka.bootstrap_servers}")
            produced = produce(str(input_dir), kafka.bootstrap_servers, "payments", 2)
            print(
                f"produced {sum(n for _, n in produced.values()):,} records into topic "
                f"'payments' ({len(produced)} partitions)"
            )
            config.source, config.input, config.bounded = "kafka", None, True
            config.bootstrap_servers, config.topic = kafka.bootstrap_servers, "payments"
        client = submit(config, wait=False)
        print(
            f"running job {client.get_job_id()} on the local mini cluster "
            f"(parallelism {config.parallelism}, checkpoints every {config.checkpoint_interval})"
        )
        if config.metrics_port:
            print(
                f"metrics for Prometheus at http://127.0.0.1:{config.metrics_port}/metrics "
                "(of a range, the first port that was free)"
            )
        # The job's progress (jobs/progress.py), with what the demo's database holds.
        monitor = JobMonitor(
            committed=lambda: demo_progress(db, lines),
            policy=restart_policy(job_defaults()),
            interval=args.progress_interval,
        )
        watch(client, monitor)  # raises if the job failed
        with db.connect() as conn:
            result = reconcile(conn, str(input_dir))
        print(result.report())
    return 0 if result.books_balance else 1
