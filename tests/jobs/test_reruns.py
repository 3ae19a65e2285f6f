"""The same command run twice never applies its input twice (issue 23).

The default (checkpoint scope) books sink makes the database the last line of defence: a ledger
row is inserted only if its event id is absent, balances add up only the rows inserted, and a
line is recorded only where no table holds it yet. So a start that restores no checkpoint, and
reads its input from the beginning, changes nothing it applied before: the same command twice,
a `kill -9` with the checkpoints lost, new files next to applied ones. With one sink per table
(subtask scope), whose balances are running sums, such a start is refused instead: by the job
before anything is built (`sinks.fresh_start`), and by the sink's writer when a job skips that
check. The controls run the same job twice through at-least-once sinks: every balance doubles.
"""

import json
import os
import re
import shutil
import signal
import subprocess
from collections import Counter

import pytest
from psycopg import sql

from jobs.audit import audit
from jobs.kit.environment import create_environment
from jobs.kit.line_sources import file_source
from jobs.kit.refusals import explain_refusal
from jobs.payments import TABLES, build_pipeline, build_sinks, prepare_database
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from sinks.fresh_start import FreshStartRefused, applied_runs
from tests.jobs.support import (
    PASSWORD_ENV,
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_command,
    payments_config,
    write_inputs,
)
from tests.jobs.test_payments_faults import committed_lines
from tests.sinks.support import wait_for
from transforms import sample_data

pytestmark = [pytest.mark.minicluster]

AT_LEAST_ONCE = dict(
    commit_scope="subtask",
    ledger_mode="at_least_once",
    balances_mode="at_least_once",
    rejected_mode="at_least_once",
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = write_inputs(tmp_path_factory.mktemp("reruns") / "input", events=20_000, seed=23)
    return directory, expected_outcome(directory)


def run_job(config, check_first: bool = True):
    """The job as `submit` builds it; without `check_first`, as a job that skips the
    database check would (the writer's own refusal is then all that stands in the way)."""
    start = prepare_database(config) if check_first else None
    env = create_environment(config)
    build_pipeline(env, file_source(config.input), build_sinks(config), config, start)
    env.execute("payments-rerun-test")


def table_digests(db) -> dict[str, str]:
    """An md5 of every row of every table the job writes, and of the sink's dead letters."""
    with db.connect() as conn:
        return {
            table: conn.execute(
                sql.SQL(
                    "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' "
                    "ORDER BY t::text), '')) FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()[0]
            for table in (*TABLES, "tpc_dead_letters", "tpc_source_positions")
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        }


def balance_total(db) -> int:
    with db.connect() as conn:
        return int(conn.execute("SELECT sum(balance_minor) FROM balances").fetchone()[0])


def run_command(db, input_dir, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        payments_command(db, input_dir, "--checkpoint-dir", str(tmp_path / "checkpoints"), *extra),
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_same_command_twice_changes_nothing(database, inputs, tmp_path):
    input_dir, expected = inputs
    first = run_command(database, input_dir, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert database_outcome(database) == expected_in_database_shape(expected)
    after_first = table_digests(database)

    again = run_command(database, input_dir, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert re.fullmatch(
        rf"nothing new: {expected.lines:,} lines of 2 files already applied "
        r"\(last commit \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)\n",
        again.stdout,
    ), again.stdout
    assert table_digests(database) == after_first


def test_subtask_scope_refuses_the_same_command_twice(database, inputs, tmp_path):
    """One sink per table: the balances are running sums, so a second run is refused."""
    input_dir, expected = inputs
    subtask = ("--commit-scope", "subtask")
    first = run_command(database, input_dir, tmp_path, *subtask)
    assert first.returncode == 0, first.stderr[-3000:]
    assert database_outcome(database) == expected_in_database_shape(expected)
    after_first = table_digests(database)

    again = run_command(database, input_dir, tmp_path, *subtask)
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-3000:]
    error = again.stderr.strip().splitlines()[-1]
    assert error.startswith("error: sink 'payments-ledger' refuses a fresh start"), error
    assert "it already committed input of an earlier run" in error
    # It finished: its checkpoints are gone, and there is nothing to resume.
    assert f"No retained checkpoint is under {tmp_path / 'checkpoints'}" in error
    assert "if the earlier run finished, its input is applied already" in error
    assert "use a new --sink-id-prefix" in error
    assert table_digests(database) == after_first


def test_new_files_after_a_run_apply_only_their_lines(database, inputs, tmp_path):
    """A second run over the directory with a new file: its new events are applied; its copies
    of events the first run applied land in duplicates (same content) or rejected as
    conflicting duplicates (other content), and change no balance."""
    applied_dir, _ = inputs
    input_dir = tmp_path / "input"
    shutil.copytree(applied_dir, input_dir)
    first = run_command(database, input_dir, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    balances_before = {(a, c): b for a, c, b, _ in database_outcome(database)[1]}

    applied_ids = {row[0] for row in expected_outcome(input_dir).ledger}
    copies = []
    for line in (input_dir / "generated.jsonl").read_bytes().splitlines():
        event = json.loads(line)
        if event.get("event_id") in applied_ids and event.get("type") in ("charge", "refund"):
            copies.append(event)
            applied_ids.discard(event["event_id"])
        if len(copies) == 40:
            break
    again = [json.dumps(event) for event in copies[:20]]  # the same content
    flipped = {"charge": "refund", "refund": "charge"}  # other content
    again += [json.dumps(dict(event, type=flipped[event["type"]])) for event in copies[20:]]
    with open(input_dir / "zz-later.jsonl", "wb") as later:
        later.write("\n".join(again).encode() + b"\n")
        later.writelines(sample_data.generate(500, seed=31, id_prefix="later").lines)
    expected = expected_outcome(input_dir)  # in file order: the applied files first
    verdicts = Counter(r.reason for r in expected.rejected if r.source.endswith("zz-later.jsonl"))
    assert verdicts["conflicting_duplicate"] >= 20, verdicts

    second = run_command(database, input_dir, tmp_path)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert database_outcome(database) == expected_in_database_shape(expected)
    with database.connect() as conn:
        copied_again = conn.execute(
            "SELECT count(*) FROM duplicates WHERE source LIKE '%%zz-later.jsonl' "
            "AND line_number <= 20"
        ).fetchone()[0]
    assert copied_again == 20
    # Only the new events move a balance: the copies add nothing.
    moved = {(row[1], row[4]) for row in expected.ledger if row[0].startswith("later")}
    for account, currency, balance, _ in database_outcome(database)[1]:
        if (account, currency) not in moved:
            assert balance == balances_before[(account, currency)], (account, currency)
    # The audit agrees, down to each file's position; and it names a position that does not.
    with database.connect() as conn:
        report = audit(conn, str(input_dir))
        assert report.clean and report.positions == (3, 3, []), report.render(5)
        conn.execute(
            "UPDATE tpc_source_positions SET last_position = last_position - 1 "
            "WHERE source LIKE '%zz-later.jsonl'"
        )
        report = audit(conn, str(input_dir))
    assert report.differences == 1, report.render(5)
    later_lines = len((input_dir / "zz-later.jsonl").read_bytes().splitlines())
    assert (
        f"{input_dir / 'zz-later.jsonl'}: the input ends at {later_lines}, the position is "
        f"{later_lines - 1}"
    ) in report.render(5)


def test_the_writer_refuses_a_fresh_start_when_the_job_does_not_check(database, inputs, tmp_path):
    """Subtask scope: the ledger prepared, the others staged. Every exactly-once sink id is
    refused by its writer. (The checkpoint scope's books sink writes each line only if absent:
    it has nothing to refuse, see the tests above.)"""
    input_dir, expected = inputs
    config = payments_config(database, input_dir, tmp_path, commit_scope="subtask")
    run_job(config)
    assert database_outcome(database) == expected_in_database_shape(expected)
    after_first = table_digests(database)
    with database.connect() as conn:
        assert [entry.sink_id for entry in applied_runs(conn, ["payments-ledger"])] == [
            "payments-ledger"
        ]

    with pytest.raises(FreshStartRefused):
        prepare_database(config)
    with pytest.raises(Exception) as refused:
        run_job(config, check_first=False)
    message = explain_refusal(refused.value)
    assert message and "refuses a fresh start" in message, str(refused.value)[-3000:]
    assert message.endswith("use a new sink id. Nothing was written.")
    assert table_digests(database) == after_first


def test_control_at_least_once_sinks_apply_the_same_input_twice(database, inputs, tmp_path):
    """What the refusal guards against: nothing stops a second run of at-least-once sinks,
    and every balance doubles."""
    input_dir, expected = inputs
    config = payments_config(database, input_dir, tmp_path, **AT_LEAST_ONCE)
    run_job(config)
    assert database_outcome(database)[1] == expected_in_database_shape(expected)[1]
    once = balance_total(database)
    with database.connect() as conn:
        rejected_once = conn.execute("SELECT count(*) FROM rejected").fetchone()[0]

    run_job(config)  # the database check has nothing to refuse: no sink promises exactly once
    assert once != 0 and balance_total(database) == 2 * once
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM rejected").fetchone()[0] == 2 * rejected_once


def test_killed_then_checkpoints_lost_then_the_same_command_is_exact(database, tmp_path):
    """`kill -9` of the job's whole process group mid-run, its checkpoint directory deleted,
    the same command again: it reads everything again and applies only what was not."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    sample_data.write_jsonl(str(input_dir / "1.jsonl"), 60_000, seed=29, id_prefix="k")
    prepare_database(payments_config(database, input_dir, tmp_path))  # tables to poll
    watching = subprocess.Popen(
        payments_command(
            database,
            input_dir,
            "--watch",
            "300 ms",
            "--checkpoint-interval",
            "300 ms",
            "--checkpoint-dir",
            str(tmp_path / "checkpoints"),
        ),
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: database.password}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: committed_lines(database) >= 1_000, 180, "part of the file committed")
    finally:
        os.killpg(watching.pid, signal.SIGKILL)
        watching.wait(30)
    shutil.rmtree(tmp_path / "checkpoints")
    part = committed_lines(database)
    before = database_now(database)

    again = run_command(database, input_dir, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    expected = expected_outcome(input_dir)
    assert part < expected.lines, "the kill came after the whole file was committed"
    assert database_outcome(database) == expected_in_database_shape(expected)
    # It went on from the database's position: the rest's rows, and a position row a
    # checkpoint, were committed; not the lines the killed run had applied.
    rest = expected.lines - part
    assert rest <= staged_rows_since(database, before) < rest + 50


def staged_rows_since(db, moment) -> int:
    """Rows the books sink committed after `moment` (its commit log counts each batch's rows)."""
    with db.connect() as conn:
        return conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log WHERE written_at > %s",
            (moment,),
        ).fetchone()[0]


def database_now(db):
    with db.connect() as conn:
        return conn.execute("SELECT now()").fetchone()[0]


def test_lines_appended_to_an_applied_file_are_the_only_lines_read(database, tmp_path):
    """A file that grew after a run: the next run reads its new lines only (the sink commits
    rows for them and their positions, nothing for the lines before), and the books are exact."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    grown = input_dir / "day.jsonl"
    first_lines = sample_data.generate(4_000, seed=43, id_prefix="g").lines
    grown.write_bytes(b"".join(first_lines))
    assert run_command(database, input_dir, tmp_path).returncode == 0
    before = database_now(database)

    later_lines = sample_data.generate(300, seed=44, id_prefix="h").lines
    with open(grown, "ab") as f:
        f.writelines(later_lines)
    second = run_command(database, input_dir, tmp_path)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert database_outcome(database) == expected_in_database_shape(expected_outcome(input_dir))
    committed = staged_rows_since(database, before)
    # The new lines' rows plus a position row a checkpoint; never the 4,000 lines again.
    assert len(later_lines) <= committed < len(later_lines) + 20, committed


def test_a_file_changed_after_it_was_applied_is_refused_by_name(database, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    changed = input_dir / "day.jsonl"
    sample_data.write_jsonl(str(changed), 2_000, seed=47, id_prefix="c")
    assert run_command(database, input_dir, tmp_path).returncode == 0
    after_first = table_digests(database)

    lines = changed.read_bytes().splitlines(keepends=True)
    lines[500] = lines[500][:-1] + b" \n"  # line 501: one more byte, the same payment
    changed.write_bytes(b"".join(lines))
    again = run_command(database, input_dir, tmp_path)
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-3000:]
    error = again.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: input changed after it was applied: {changed}: "), error
    assert f"its first {len(lines):,} lines were applied" in error, error
    assert "Nothing was read or written." in error
    assert table_digests(database) == after_first

    changed.write_bytes(b"".join(lines[:1_000]))  # shorter than what was applied
    shorter = run_command(database, input_dir, tmp_path)
    assert shorter.returncode == 1
    assert "and now has only 1,000" in shorter.stderr, shorter.stderr[-2000:]
