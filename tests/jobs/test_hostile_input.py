"""Hostile strings through the whole payments job: Python worker, the Python/Java boundary,
both sink modes and PostgreSQL.

A few hundred lines drawn by hypothesis hold any code point (NUL, lone surrogates as JSON
escapes and as raw bytes, noncharacters, the last code point, very long values) in any field
or key. The job must finish, every line must end in exactly one table, as the pure rules say,
and every rejected line must be recoverable byte for byte from the rejected table.

Its control is the property test of the pure rules (tests/transforms): before rejection
details were made storable, a NUL or lone surrogate in ``type`` reached PostgreSQL (or the
UTF-8 encoder of the Python worker) and stopped the job."""

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from jobs.audit import audit
from jobs.kit.environment import create_environment
from jobs.kit.line_sources import file_source
from jobs.payments import build_pipeline, build_sinks, prepare_database
from jobs.reconcile import reconcile
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_config,
    write_inputs,
)
from tests.transforms.strategies import hostile_lines
from transforms.reference import process_files

pytestmark = [pytest.mark.minicluster]

#: The two lines of the issue that stopped the job, first in the file.
STOPPED_THE_JOB = [
    b'{"event_id":"n-1","account_id":"a","type":"char\\u0000ge","amount":"1",'
    b'"currency":"EUR","occurred_at":"2024-01-01T00:00:00Z"}',
    b'{"event_id":"n-2","account_id":"a","type":"char\\ud800ge","amount":"1",'
    b'"currency":"EUR","occurred_at":"2024-01-01T00:00:00Z"}',
]


def run_job(config):
    prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_source(config.input), build_sinks(config), config)
    env.execute("payments-hostile-input")


def drawn_lines(count: int, seed: int) -> list:
    """``count`` hostile lines as hypothesis draws them, the same on every run (``seed``).

    Drawn by a hypothesis run of their own, so that the job runs once: a job per example, or
    per shrinking step, would take minutes."""
    lines = []

    @hypothesis.seed(seed)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_lines)
    def collect(line):
        lines.append(line)

    collect()
    return lines


# Thread mode too: there the lines and results cross into the embedded interpreter (pemja),
# another place where strings can break.
@pytest.mark.parametrize(
    "ledger_mode, execution_mode",
    [("prepared", "process"), ("staged", "process"), ("prepared", "thread")],
)
def test_hostile_strings_in_every_field_are_all_accounted_for(
    database, tmp_path, ledger_mode, execution_mode
):
    lines = drawn_lines(300, seed=20261127)
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    # A hostile string may hold a raw line break: the file then holds more lines than drawn,
    # which is what a reader would see too.
    (input_dir / "hostile.jsonl").write_bytes(b"\n".join(STOPPED_THE_JOB + lines) + b"\n")
    expected = process_files([str(input_dir / "hostile.jsonl")])

    run_job(
        payments_config(
            database, input_dir, tmp_path, ledger_mode=ledger_mode, execution_mode=execution_mode
        )
    )

    assert database_outcome(database) == expected_in_database_shape(expected)
    with database.connect() as conn:
        books = reconcile(conn, str(input_dir))
        stored = dict(
            ((source, number), line)
            for source, number, line in conn.execute(
                "SELECT source, line_number, coalesce(raw_bytes, convert_to(raw, 'UTF8')) "
                "FROM rejected"
            )
        )
    assert books.every_line_accounted and books.books_balance, books.report()
    file_lines = (input_dir / "hostile.jsonl").read_bytes().split(b"\n")
    for (source, number), line in stored.items():
        assert source == str(input_dir / "hostile.jsonl")
        assert line == file_lines[number - 1].rstrip(b"\r")
    assert len(stored) == len(expected.rejected) >= 2


def test_rows_the_database_refuses_are_dead_lettered_and_the_audit_accounts_for_them(
    database, tmp_path
):
    """Constraints the job's author never saw (added to `ledger` and `rejected`) refuse some
    rows: the job finishes, each refused row is a dead letter exactly once, and the audit and
    the reconciliation account for every line."""
    input_dir = write_inputs(tmp_path / "input", events=3_000, seed=3)
    expected = expected_outcome(input_dir)
    account = sorted(row.account_id for row in expected.ledger)[0]
    refused_ledger = [row for row in expected.ledger if row.account_id == account]
    refused_rejected = [row for row in expected.rejected if row.reason == "invalid_type"]
    assert refused_ledger and refused_rejected
    config = payments_config(database, input_dir, tmp_path)
    prepare_database(config)
    with database.connect(autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE ledger ADD CONSTRAINT no_account_x CHECK (account_id <> '{account}')"
        )
        conn.execute(
            "ALTER TABLE rejected ADD CONSTRAINT no_invalid_type CHECK (reason <> 'invalid_type')"
        )

    run_job(config)

    with database.connect() as conn:
        letters = conn.execute(
            "SELECT sink_id, statement, sqlstate, count(*) FROM tpc_dead_letters "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2"
        ).fetchall()
        books = reconcile(conn, str(input_dir))
        report = audit(conn, str(input_dir))
    # The books sink (checkpoint scope): statement 1 applies payments, 2 writes rejected rows.
    # Every line of a refused event is refused: its first, and its copies (the database, not
    # a dedupe, tells a copy from the first), so statement 1 refuses at least the ledger rows.
    assert [letter[:3] for letter in letters] == [
        ("payments-books", 1, "23514"),
        ("payments-books", 2, "23514"),
    ]
    assert letters[0][3] >= len(refused_ledger) and letters[1][3] == len(refused_rejected)
    assert books.every_line_accounted, books.report()
    assert report.clean, report.render(20)
