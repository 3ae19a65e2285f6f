"""Audit: recompute what a job's tables must hold from its input, and diff the database.

    python -m jobs.audit --input DIR --db-url URL --db-user USER [--job payments|orders|MODULE]
        [--sink-id-prefix PREFIX] [--control-schema public] [--max-diff 20]
    payments only: [--fail-on-dead-letters] [--currencies FILE]
        [--kafka-topic TOPIC --kafka-partitions N]

The job (default: payments) is the one its module declares (``JOB``, a
`jobs.kit.declared.DeclaredJob`): its tables, its pure reference, its sink id. For any job
(`jobs.kit.audit.audit_job`): every table's rows equal the reference's, compared by key with the
first differences named row by row; every input line in exactly one of its line tables; no
prepared transaction or staged batch left; its sink's source positions at the input's end.
The payments job brings its own audit (`jobs.payments_audit`: the order across sources, dead
letters, balances, Kafka input).

Exit status: 0 clean, 1 any difference, 2 usage or connection error. `jobs.reconcile` is the
cheap summary (counts and sums, no parsing); this is the full check, and the fault campaign's
oracle (`audit(conn, input_dir).clean`: the payments job's).
"""

import argparse
import sys

from jobs.kit.audit import DIFFERENCE_KINDS, DUPLICATED, MISSING, TableDiff, audit_job
from jobs.kit.declared import add_job_arguments, job_of

# The payments job's audit, as the tests, the campaign and earlier versions import it.
from jobs.payments_audit import AuditReport, audit, expect

__all__ = [
    "DIFFERENCE_KINDS",
    "DUPLICATED",
    "MISSING",
    "AuditReport",
    "TableDiff",
    "audit",
    "audit_job",
    "expect",
    "main",
]

#: The job a command without --job audits (the project's first job; every earlier command).
DEFAULT_JOB = "payments"


def add_payments_arguments(parser: argparse.ArgumentParser) -> None:
    """The payments audit's own flags (`jobs.payments_audit.audit`'s options)."""
    parser.add_argument(
        "--fail-on-dead-letters",
        action="store_true",
        help="payments: count dead-lettered rows as differences",
    )
    parser.add_argument(
        "--currencies",
        metavar="FILE",
        help="payments: the job's --currencies table (default: transforms/currencies.json)."
        " After an upgrade that changed the rules, lines processed under "
        "the old ones show as differences: audit with each version's table",
    )
    parser.add_argument(
        "--kafka-topic",
        metavar="TOPIC",
        help="payments: the job read --input's lines from this topic, produced into it "
        "by `jobs.produce` while it was empty: compare rejected and "
        "duplicate rows by partition and offset",
    )
    parser.add_argument(
        "--kafka-partitions",
        type=int,
        default=2,
        metavar="N",
        help="the topic's partitions (with --kafka-topic)",
    )


def main(argv=None) -> int:
    from sinks.database import CannotConnect, add_connection_arguments, connect

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="exit status: 0 clean, 1 differences, 2 usage or connection error",
    )
    parser.add_argument("--input", required=True, help="the directory the job read")
    add_connection_arguments(parser)
    add_job_arguments(parser, DEFAULT_JOB)
    parser.add_argument(
        "--max-diff",
        type=int,
        default=20,
        help="example rows shown per table and kind of difference",
    )
    add_payments_arguments(parser)
    args = parser.parse_args(argv)
    args.max_diff = max(args.max_diff, 0)
    job = job_of("audit", args)
    if job is None:
        return 2
    own = [
        flag
        for flag, value in (
            ("--fail-on-dead-letters", args.fail_on_dead_letters),
            ("--currencies", args.currencies),
            ("--kafka-topic", args.kafka_topic),
        )
        if value
    ]
    if own and job.audit is None:
        print(
            f"audit: {', '.join(own)}: the payments audit's own flags; the {job.name} job is "
            "audited from its files by its reference (drop them)",
            file=sys.stderr,
        )
        return 2
    import psycopg

    try:
        with connect(
            args.db_url, args.db_user, args.password_env, args.password_file, connect_timeout=10
        ) as conn:
            if job.audit is not None:
                from transforms.currencies import load_currencies

                report = job.audit(
                    conn,
                    args.input,
                    args.sink_id_prefix or job.name,
                    args.control_schema,
                    args.max_diff,
                    currencies=load_currencies(args.currencies) if args.currencies else None,
                    fail_on_dead_letters=args.fail_on_dead_letters,
                    kafka=(args.kafka_topic, args.kafka_partitions) if args.kafka_topic else None,
                )
            else:
                report = audit_job(
                    conn, job, args.input, args.sink_id_prefix, args.control_schema, args.max_diff
                )
    except psycopg.errors.UndefinedTable as e:
        print(
            f"audit: {e.diag.message_primary}: is this the {job.name} job's database? (the job "
            f"creates its tables at its start; --job names the job to audit)",
            file=sys.stderr,
        )
        return 2
    except CannotConnect as e:  # says which check failed
        print(f"audit: {e}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as e:
        print(f"audit: cannot reach the database: {e}", file=sys.stderr)
        return 2
    print(f"audit of {args.input} against {_where(args.db_url)}\n")
    print(report.render(args.max_diff))
    return 0 if report.clean else 1


def _where(db_url: str) -> str:
    """The URL without anything after '?' (no credentials are ever printed)."""
    return db_url.split("?", 1)[0]


if __name__ == "__main__":
    sys.exit(main())
