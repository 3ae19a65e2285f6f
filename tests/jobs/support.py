"""Shared pieces of the payments job's tests: inputs, the pure-Python expectation, and what
the database holds, in the same normalised shapes."""

import os
import sys
from collections import Counter
from datetime import timezone
from pathlib import Path

from jobs.payments import PaymentsConfig
from tests.corpus import write_corpus
from transforms import sample_data
from transforms.inputs import input_files
from transforms.reference import process_files


def write_inputs(directory: Path, events: int = 20_000, seed: int = 11) -> Path:
    """The bad-input corpus and a generated file with duplicates, conflicts and bad lines."""
    directory.mkdir(parents=True, exist_ok=True)
    write_corpus(directory)
    sample_data.write_jsonl(str(directory / "generated.jsonl"), events, seed=seed, id_prefix="gen")
    return directory


def expected_outcome(input_dir: Path):
    return process_files(input_files(str(input_dir)))


PASSWORD_ENV = "TPC_TEST_DB_PASSWORD"


def payments_command(db, input_dir, *extra: str) -> list[str]:
    """`python -m jobs.payments --input DIR` on `db` (the password in PASSWORD_ENV), then
    `extra` flags: the command as a user types it."""
    return job_command("jobs.payments", db, input_dir, *extra)


def job_command(module: str, db, input_dir, *extra: str) -> list[str]:
    """`python -m MODULE --input DIR` of any job on `db`, as `payments_command`."""
    return [
        sys.executable,
        "-m",
        module,
        "--input",
        str(input_dir),
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-env",
        PASSWORD_ENV,
        *extra,
    ]


def payments_config(db, input_dir, tmp_path, **overrides) -> PaymentsConfig:
    # The job runs in this process's JVM, which started before this server's random password
    # existed: it can read a file, not a variable set now.
    settings = dict(
        input=str(input_dir),
        db_url=db.jdbc_url,
        db_user=db.user,
        password_file=str(db.password_file),
        parallelism=2,
        checkpoint_interval="500 ms",
        checkpoint_dir=str(tmp_path / "checkpoints"),
        bundle_size=100,
        extra_settings={
            "restart-strategy.exponential-delay.initial-backoff": "500 ms",
            "python.fn-execution.bundle.time": "100",
        },
    )
    settings.update(overrides)
    settings["extra_settings"] = {**SPARE_TASKMANAGERS, **settings["extra_settings"]}
    return PaymentsConfig(**settings)


# Two spare TaskManagers in the tests' mini clusters. On a failover, Beam's cleanup of a Python
# operator's environment can throw ("Reference count must not be negative", Flink 2.3 with its
# Beam 2.x runner), which Flink treats as fatal for that TaskManager. A one-TaskManager mini
# cluster then never runs the job again: it waits for slots until the restart strategy gives up
# (about 15 min; a CI run failed so). One spare was not enough either: the drills saw a
# TaskManager die while the other still held a slot, and a CI run with one spare ended with
# NoResourceAvailableException (tests/jobs/test_payments_faults.py, two failovers in one run;
# its log did not show the TaskManager's death). With two spares the job restarts on a free
# one, and what these tests check, exactly once, is untouched. The fault campaign
# (`python -m tests.campaign`) counts such deaths; see README, "What exactly-once covers".
SPARE_TASKMANAGERS = {"minicluster.number-of-taskmanagers": "3"}


def database_outcome(db):
    """(ledger rows, balances, rejected rows, duplicate count) as sorted tuples."""
    with db.connect() as conn:
        ledger = sorted(
            (
                event_id,
                account,
                kind,
                amount,
                currency,
                occurred.astimezone(timezone.utc).isoformat(timespec="microseconds"),
            )
            for event_id, account, kind, amount, currency, occurred in conn.execute(
                "SELECT event_id, account_id, type, amount_minor, currency, occurred_at FROM ledger"
            )
        )
        balances = sorted(
            (a, c, int(b), n)
            for a, c, b, n in conn.execute(
                "SELECT account_id, currency, balance_minor, event_count FROM balances"
            )
        )
        rejected = sorted(
            (reason, raw, display_source(source), line_number)
            for reason, raw, source, line_number in conn.execute(
                "SELECT reason, raw, coalesce(source, ''), coalesce(line_number, 0) FROM rejected"
            )
        )
        duplicates = conn.execute("SELECT count(*) FROM duplicates").fetchone()[0]
    return ledger, balances, rejected, duplicates


def display_source(source: str) -> str:
    """A source as the reference names it: a file by its base name (the job records its path),
    a Kafka partition as it is."""
    return source if source.startswith("kafka:") else os.path.basename(source)


def expected_in_database_shape(outcome):
    ledger = sorted(tuple(row) for row in outcome.ledger)
    balances = sorted(tuple(row) for row in outcome.balances)
    rejected = sorted(
        (r.reason, r.raw, r.source or "", r.line_number or 0) for r in outcome.rejected
    )
    return ledger, balances, rejected, outcome.duplicates


def rejected_reasons(outcome) -> Counter:
    return Counter(r.reason for r in outcome.rejected)
