"""`jobs.audit` on a real PostgreSQL: clean on a correct run, and for each kind of damage done
by hand a non-zero verdict with a diff that names the row.

The correct run is the single-process exactly-once script (`bench.baseline`), which writes the
same tables as the job from the same rules: no Flink needed here.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from bench.baseline import run as baseline_run
from jobs.audit import audit
from jobs.reconcile import main as reconcile_main
from jobs.reconcile import reconcile
from tests.jobs.support import expected_outcome, rejected_reasons, write_inputs

ROOT = Path(__file__).resolve().parents[2]

DEAD_LETTERS_DDL = """
    CREATE TABLE tpc_dead_letters (
        id          bigserial PRIMARY KEY,
        sink_id     text NOT NULL,
        statement   int NOT NULL DEFAULT 1,
        fields      jsonb NOT NULL,
        sqlstate    text,
        message     text,
        written_at  timestamptz NOT NULL DEFAULT now()
    )"""
STAGED_BATCHES_DDL = """
    CREATE TABLE tpc_staged_batches (
        gid text PRIMARY KEY, sink_id text NOT NULL, subtask int NOT NULL,
        counter bigint NOT NULL, row_count bigint NOT NULL, lineage text NOT NULL DEFAULT '',
        staged_at timestamptz NOT NULL DEFAULT now())"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("audit-input"), events=2000)


@pytest.fixture
def db(database, inputs):
    """A fresh database holding exactly the rows a correct run writes."""
    with database.connect() as conn:
        baseline_run(conn, str(inputs))
    return database


def run_audit(db, inputs, **options):
    with db.connect() as conn:
        report = audit(conn, str(inputs), **options)
    text = report.render()
    print(text)
    return report, squeezed(text)


def squeezed(text: str) -> str:
    """Runs of spaces as one (the report aligns its columns)."""
    return re.sub(r"(?m)(?<=\S) {2,}", " ", text)


def execute(db, *statements, params=None):
    with db.connect(autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement, params)


def one(db, query, params=None):
    with db.connect() as conn:
        return conn.execute(query, params).fetchone()


def every(db, query, params=None):
    with db.connect() as conn:
        return conn.execute(query, params).fetchall()


def section(text: str, table: str) -> str:
    """The diff section of one table in a rendered report."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{table}: "))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines)
    )
    return "\n".join(lines[start:end])


def test_clean_on_a_correct_run_and_agrees_with_the_reference(db, inputs):
    report, text = run_audit(db, inputs)
    outcome = expected_outcome(inputs)
    assert report.clean and report.differences == 0
    assert report.lines == outcome.lines
    assert report.tables["ledger"].expected == report.tables["ledger"].found == len(outcome.ledger)
    assert report.tables["balances"].found == len(outcome.balances)
    assert report.tables["duplicates"].found == outcome.duplicates > 0
    assert report.tables["rejected"].found == len(outcome.rejected)
    assert {r: e for r, (e, f) in report.rejected_by_reason.items()} == rejected_reasons(outcome)
    assert report.dead_letters is None and report.pending == []
    assert "no dead-letter table" in text and text.endswith("audit: clean")
    with db.connect() as conn:  # no sink control tables here: the quick summary copes too
        assert reconcile(conn, str(inputs)).books_balance


def test_a_ledger_row_applied_twice_is_named(db, inputs):
    (event_id,) = one(db, "SELECT min(event_id) FROM ledger")
    execute(
        db,
        "ALTER TABLE ledger DROP CONSTRAINT ledger_pkey",
        "INSERT INTO ledger SELECT * FROM ledger WHERE event_id = %(e)s",
        params={"e": event_id},
    )
    report, text = run_audit(db, inputs)
    assert not report.clean
    assert report.tables["ledger"].counts == {"duplicated": 1}
    assert f"duplicated event_id={event_id!r}" in section(text, "ledger")
    assert "ledger rows" in text and "1 duplicated" in text


def test_a_duplicate_row_written_twice_is_named_by_file_and_line(db, inputs):
    source, line_number, event_id = one(
        db, "SELECT source, line_number, event_id FROM duplicates ORDER BY id LIMIT 1"
    )
    execute(
        db,
        "INSERT INTO duplicates (event_id, source, line_number) "
        "SELECT event_id, source, line_number FROM duplicates WHERE line_number = %(n)s "
        "AND source = %(s)s",
        params={"n": line_number, "s": source},
    )
    report, text = run_audit(db, inputs)
    assert report.tables["duplicates"].counts == {"duplicated": 1}
    assert (
        f"duplicated source={source!r} line_number={line_number} event_id={event_id!r}"
        in section(text, "duplicates")
    )


def test_deleted_rows_are_missing(db, inputs):
    event_id, amount = one(
        db, "SELECT event_id, amount_minor FROM ledger ORDER BY event_id OFFSET 10 LIMIT 1"
    )
    source, line_number = one(db, "SELECT source, line_number FROM duplicates ORDER BY id LIMIT 1")
    execute(db, "DELETE FROM ledger WHERE event_id = %(e)s", params={"e": event_id})
    execute(
        db,
        "DELETE FROM duplicates WHERE source = %(s)s AND line_number = %(n)s",
        params={"s": source, "n": line_number},
    )
    report, text = run_audit(db, inputs)
    assert report.differences == 2
    assert f"missing event_id={event_id!r}" in section(text, "ledger")
    assert f"amount_minor={amount}" in section(text, "ledger")
    assert f"missing source={source!r} line_number={line_number}" in section(text, "duplicates")


def test_an_altered_amount_is_named_with_both_values(db, inputs):
    event_id, amount = one(
        db, "SELECT event_id, amount_minor FROM ledger ORDER BY event_id LIMIT 1"
    )
    execute(
        db,
        "UPDATE ledger SET amount_minor = amount_minor + 1 WHERE event_id = %(e)s",
        params={"e": event_id},
    )
    report, text = run_audit(db, inputs)
    assert report.tables["ledger"].counts == {"altered": 1} and report.differences == 1
    assert (
        f"altered event_id={event_id!r} amount_minor: expected {amount}, found {amount + 1}"
    ) in section(text, "ledger")


def test_an_altered_rejected_row_is_named_by_reason_and_line(db, inputs):
    rows = every(
        db,
        "SELECT id, source, line_number, reason FROM rejected "
        "WHERE reason <> 'invalid_json' ORDER BY id LIMIT 2",
    )
    (first_id, source, line_number, reason), (second_id, *_) = rows
    execute(
        db,
        "UPDATE rejected SET reason = 'invalid_json', detail = 'edited' WHERE id = %(i)s",
        params={"i": first_id},
    )
    execute(
        db,
        "UPDATE rejected SET raw = raw || 'x', raw_bytes = NULL WHERE id = %(i)s",
        params={"i": second_id},
    )
    report, text = run_audit(db, inputs)
    assert report.tables["rejected"].counts == {"altered": 2}
    diff = section(text, "rejected")
    assert (
        f"altered source={source!r} line_number={line_number} reason: expected "
        f"{reason!r}, found 'invalid_json' (id {first_id})"
    ) in diff
    assert "line: expected" in diff and f"(id {second_id})" in diff
    assert "differs" in text  # the per-reason summary line


def test_the_detail_hint_is_not_compared(db, inputs):
    execute(db, "UPDATE rejected SET detail = 'reworded'")
    report, _ = run_audit(db, inputs)
    assert report.clean


def test_a_changed_balance_is_named(db, inputs):
    account, currency, balance = one(
        db, "SELECT account_id, currency, balance_minor FROM balances ORDER BY 1, 2 LIMIT 1"
    )
    execute(
        db,
        "UPDATE balances SET balance_minor = balance_minor - 5 "
        "WHERE account_id = %(a)s AND currency = %(c)s",
        params={"a": account, "c": currency},
    )
    report, text = run_audit(db, inputs)
    assert report.tables["balances"].counts == {"altered": 1} and report.differences == 1
    assert (
        f"altered account_id={account!r} currency={currency!r} balance_minor: "
        f"expected {int(balance)}, found {int(balance) - 5}"
    ) in section(text, "balances")
    assert f"{currency} total" in text


def test_dangling_prepared_transaction_and_staged_batch_fail_the_audit(db, inputs):
    gid = "tpc:payments-ledger:0:7:test-run"
    execute(
        db,
        "CREATE TABLE scratch (x int)",
        STAGED_BATCHES_DDL,
        "INSERT INTO tpc_staged_batches (gid, sink_id, subtask, counter, row_count) "
        "VALUES ('tpc:payments-balances:1:3:test-run', 'payments-balances', 1, 3, 42)",
    )
    with db.connect(autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO scratch VALUES (1)")
        conn.execute(f"PREPARE TRANSACTION '{gid}'")
    try:
        report, text = run_audit(db, inputs)
        assert report.differences == 2
        assert {(p.kind, p.gid) for p in report.pending} == {
            ("prepared transaction", gid),
            ("staged batch", "tpc:payments-balances:1:3:test-run"),
        }
        assert f"prepared transaction {gid} age " in text
        assert "staged batch tpc:payments-balances:1:3:test-run age " in text
        assert "42 rows" in text and "DANGLING" in text
        with db.connect() as conn:  # the quick summary counts the same dangling work
            assert reconcile(conn, str(inputs)).pending == {"prepared": 1, "staged": 1}
    finally:
        execute(db, f"ROLLBACK PREPARED '{gid}'")


def test_dead_letters_account_for_missing_rows_and_short_balances(db, inputs):
    event_id, account, currency, amount = one(
        db,
        "SELECT event_id, account_id, currency, amount_minor FROM ledger ORDER BY event_id LIMIT 1",
    )
    source, line_number = one(db, "SELECT source, line_number FROM rejected ORDER BY id LIMIT 1")
    # The ledger row and the rejected row were refused by the database and dead-lettered; the
    # balance delta of another account too, so its balance is short by exactly that delta.
    other_account, other_currency = one(
        db,
        "SELECT account_id, currency FROM balances WHERE account_id <> %s ORDER BY 1, 2 LIMIT 1",
        (account,),
    )
    execute(
        db,
        DEAD_LETTERS_DDL,
        "DELETE FROM ledger WHERE event_id = %(e)s",
        "DELETE FROM rejected WHERE source = %(s)s AND line_number = %(n)s",
        "UPDATE balances SET balance_minor = balance_minor - 700, event_count = "
        "event_count - 2 WHERE account_id = %(a)s AND currency = %(c)s",
        params={
            "e": event_id,
            "s": source,
            "n": line_number,
            "a": other_account,
            "c": other_currency,
        },
    )
    letters = [
        (
            "payments-ledger",
            {
                "event_id": event_id,
                "account_id": account,
                "type": "charge",
                "amount_minor": str(amount),
                "currency": currency,
            },
        ),
        # The books sink (checkpoint scope) of the same prefix: statement 2 is the rejected
        # table's.
        ("payments-books", {"source": source, "line_number": str(line_number), "reason": "x"}),
        (
            "payments-balances",
            {
                "account_id": other_account,
                "currency": other_currency,
                "balance_minor": "300",
                "event_count": "1",
            },
        ),
        (
            "payments-balances",
            {
                "account_id": other_account,
                "currency": other_currency,
                "balance_minor": "400",
                "event_count": "1",
            },
        ),
        ("other-job-ledger", {"event_id": "not ours"}),  # another job's: ignored
    ]
    with db.connect() as conn:
        for sink_id, fields in letters:
            statement = 1
            if sink_id == "payments-books":
                statement = 2
            conn.execute(
                "INSERT INTO tpc_dead_letters (sink_id, statement, fields, sqlstate, message) "
                "VALUES (%s, %s, %s, '22003', 'value out of range')",
                (sink_id, statement, Jsonb(fields)),
            )

    report, text = run_audit(db, inputs)
    assert report.clean, text
    assert len(report.dead_letters) == 4
    assert f"dead-lettered event_id={event_id!r}" in section(text, "ledger")
    assert "sqlstate 22003: value out of range" in section(text, "ledger")
    assert f"dead-lettered source={source!r} line_number={line_number}" in section(text, "rejected")
    balances = section(text, "balances")
    assert f"account_id={other_account!r}" in balances and "explained by dead letters" in balances
    assert "short by 700 minor units and 2 events, the sum of 2 dead-lettered delta(s)" in balances
    assert "accounted for: 2 balances, 1 ledger, 1 rejected" in text
    assert "rows dead-lettered, accounted for" in text

    assert not run_audit(db, inputs, fail_on_dead_letters=True)[0].clean
    # A dead letter standing for no missing row (its row is in the table) is a difference.
    (present,) = one(db, "SELECT event_id FROM ledger ORDER BY event_id DESC LIMIT 1")
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO tpc_dead_letters (sink_id, fields) VALUES ('payments-ledger', %s)",
            (Jsonb({"event_id": present}),),
        )
    report, text = run_audit(db, inputs)
    assert report.differences == 1
    assert f"ledger: event_id={present!r}: its row is in the table too" in text


def test_reconcile_counts_the_dead_letters_of_its_sink_id_prefix(db, inputs, capsys, monkeypatch):
    """`--sink-id-prefix` finds a job's dead letters by its sink ids (issue 25: it was refused
    as an unrecognized argument)."""
    event_id, account, currency, amount = one(
        db,
        "SELECT event_id, account_id, currency, amount_minor FROM ledger ORDER BY event_id LIMIT 1",
    )
    # The database refused the payment: neither its ledger row nor its share of the balance.
    execute(
        db,
        DEAD_LETTERS_DDL,
        "DELETE FROM ledger WHERE event_id = %(e)s",
        "UPDATE balances SET balance_minor = balance_minor - %(m)s, event_count = "
        "event_count - 1 WHERE account_id = %(a)s AND currency = %(c)s",
        params={"e": event_id, "m": amount, "a": account, "c": currency},
    )
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO tpc_dead_letters (sink_id, fields) VALUES ('nightly-ledger', %s)",
            (Jsonb({"event_id": event_id}),),
        )
    monkeypatch.setenv("TPC_TEST_RECONCILE_PASSWORD", db.password)
    connection = ["--db-url", db.jdbc_url, "--db-user", db.user]
    connection += ["--password-env", "TPC_TEST_RECONCILE_PASSWORD", "--input", str(inputs)]

    # One line is in no table: only the dead letter of the job's own prefix accounts for it.
    assert reconcile_main(connection) == 1
    assert "accounted for NO" in squeezed(capsys.readouterr().out)
    assert reconcile_main([*connection, "--sink-id-prefix", "nightly"]) == 0
    out = squeezed(capsys.readouterr().out)
    assert "dead letters 1 (refused by the database" in out and "accounted for yes" in out


def test_the_command_exits_1_with_a_diff_and_never_prints_the_password(db, inputs):
    env = dict(os.environ, TPC_TEST_AUDIT_PASSWORD=db.password)
    command = [
        sys.executable,
        "-m",
        "jobs.audit",
        "--input",
        str(inputs),
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-env",
        "TPC_TEST_AUDIT_PASSWORD",
    ]

    def run(*extra, password_env=env):
        done = subprocess.run(
            command + list(extra),
            cwd=ROOT,
            env=password_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert db.password not in done.stdout + done.stderr
        return done

    clean = run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "audit: clean" in clean.stdout and "ledger rows" in clean.stdout

    event_ids = [
        row[0] for row in every(db, "SELECT event_id FROM ledger ORDER BY event_id LIMIT 3")
    ]
    execute(db, "DELETE FROM ledger WHERE event_id = ANY(%(e)s)", params={"e": event_ids})
    damaged = run("--max-diff", "2")
    assert damaged.returncode == 1
    assert "3 missing" in damaged.stdout and "... and 1 more missing" in damaged.stdout
    assert f"event_id={event_ids[0]!r}" in damaged.stdout
    assert "audit: 3 DIFFERENCES" in damaged.stdout

    wrong = run(password_env=dict(env, TPC_TEST_AUDIT_PASSWORD="wrong-" + db.password))
    assert wrong.returncode == 2, wrong.stderr
    assert "audit: cannot connect to" in wrong.stderr
    assert "authentication failed (password authentication failed" in wrong.stderr
    assert run("--input", str(inputs / "nowhere")).returncode == 2


@pytest.mark.minicluster
def test_clean_after_the_payments_job_itself(database, tmp_path):
    """The same verdict on what the Flink job writes (its sinks, its raw/raw_bytes, its
    control tables) as on the script's tables."""
    from jobs.kit.environment import create_environment
    from jobs.kit.line_sources import file_source
    from jobs.payments import build_pipeline, build_sinks, prepare_database
    from tests.jobs.support import payments_config

    input_dir = write_inputs(tmp_path / "input", events=1_000, seed=3)
    config = payments_config(database, input_dir, tmp_path)
    prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_source(config.input), build_sinks(config), config)
    env.execute("payments-audit-test")
    report, text = run_audit(database, input_dir)
    assert report.clean, text
    assert report.tables["ledger"].found > 0 and not report.dead_letters
