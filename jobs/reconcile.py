"""Reconciliation: does every input line end in exactly one place, and do the books balance?

    python -m jobs.reconcile --input DIR --db-url URL [--job payments|orders|MODULE]
        [--sink-id-prefix PREFIX] [--control-schema public]

A quick summary from counts and sums (the input is counted, not parsed), of the job its module
declares (``JOB``, `jobs.kit.declared.DeclaredJob`; default payments): the rows of its line
tables against the lines read, the lines its sink's positions say are applied, its invariants
(e.g. the stock is the sum of the moves), dangling sink work (`jobs.kit.audit.reconcile_job`).
The payments job brings its own (`jobs.payments_audit.reconcile`: ledger against balances per
currency, dead letters). `jobs.audit` is the full check: it recomputes every expected row and
diffs the tables row by row.

Exit status: 0 the books balance, 1 they do not, 2 usage or connection error.
"""

import argparse
import sys

from jobs.kit.audit import count_lines, reconcile_job
from jobs.kit.declared import add_job_arguments, job_of

# The payments job's reconciliation, as the tests, the demo and earlier versions import it.
from jobs.payments_audit import Reconciliation, reconcile

__all__ = ["Reconciliation", "count_lines", "main", "reconcile", "reconcile_job"]

DEFAULT_JOB = "payments"


def main(argv=None) -> int:
    from psycopg import OperationalError
    from psycopg.errors import UndefinedTable

    from sinks.database import add_connection_arguments, connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    add_connection_arguments(parser)
    add_job_arguments(parser, DEFAULT_JOB)
    args = parser.parse_args(argv)
    job = job_of("reconcile", args)
    if job is None:
        return 2
    prefix = args.sink_id_prefix or job.name
    try:
        with connect(
            args.db_url, args.db_user, args.password_env, args.password_file, connect_timeout=10
        ) as conn:
            if job.reconcile is not None:
                result = job.reconcile(conn, args.input, prefix, args.control_schema)
            else:
                result = reconcile_job(conn, job, args.input, prefix, args.control_schema)
    except UndefinedTable as e:
        print(
            f"reconcile: {e.diag.message_primary}: is this the {job.name} job's database? "
            "(--job names the job to reconcile)",
            file=sys.stderr,
        )
        return 2
    except OperationalError as e:
        print(f"reconcile: cannot reach the database: {e}", file=sys.stderr)
        return 2
    print(result.report())
    return 0 if result.books_balance else 1


if __name__ == "__main__":
    sys.exit(main())
