"""Rows the database refuses never wedge a job: the sink's row error policy, in both commit
modes.

Every 31st row breaks a CHECK constraint the test adds, and every 37th row's text holds a NUL,
which PostgreSQL text refuses (a row that does both is refused for its NUL, found first).
Under "fail" the job stops at once, before the refused row's checkpoint is pre-committed,
naming the sink, the row and the SQLSTATE; under "dead_letter" the job finishes and each
refused row is in the dead-letter table exactly once, also after a `kill -9` and a restore in
between. The control is that same kill schedule through the at-least-once sink: the replayed
checkpoint's refused rows are dead-lettered twice."""

import re

import pytest

from tests.sinks.support import create_sequence_table, dangling, id_counts, replayed_rows, run_job
from tests.sinks.test_kill_and_restore import COUNT as KILL_COUNT
from tests.sinks.test_kill_and_restore import kill_after_pause_then_restore

pytestmark = [pytest.mark.minicluster]

# Dense enough that a replayed checkpoint of even 100 rows (a loaded machine's; 149 and 151 once
# left such a replay without a refused row, and the control without anything to double) holds
# several refused rows. Every 1,147th row breaks both rules: its NUL is refused first.
CHECK_EVERY, NUL_EVERY = 31, 37
COUNT = 5_000
# The control's replay: enough rows for at least 3 refused ones (`CHECK_EVERY` alone).
REPLAYED_AT_LEAST = 4 * CHECK_EVERY
POISON = ("--nul-every", str(NUL_EVERY))


def refused_ids(count: int) -> set:
    return {i for i in range(1, count + 1) if i % CHECK_EVERY == 0 or i % NUL_EVERY == 0}


def refused_for_the_right_reason(row_id: int, sqlstate: str) -> bool:
    """Text with a NUL is refused while its parameter is read (a data exception, class 22,
    22021 through pgjdbc's inserts), before any constraint runs."""
    return sqlstate.startswith("22") if row_id % NUL_EVERY == 0 else sqlstate == "23514"


def create_table_with_check(db) -> None:
    create_sequence_table(db)
    with db.connect(autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE sink_check ADD CONSTRAINT no_multiples_of_{CHECK_EVERY} "
            f"CHECK (id % {CHECK_EVERY} <> 0)"
        )


def dead_letters(db, sink_id: str = "sink_check"):
    """[(id, sqlstate)] of the sink's dead letters, one per row found."""
    with db.connect() as conn:
        return sorted(
            conn.execute(
                "SELECT (fields->>'id')::bigint, sqlstate FROM tpc_dead_letters WHERE sink_id = %s",
                (sink_id,),
            ).fetchall()
        )


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_fail_policy_stops_the_job_before_any_pre_commit_naming_the_row(database, mode):
    create_table_with_check(database)
    result = run_job(
        database,
        "--mode",
        mode,
        "--count",
        str(COUNT),
        "--on-row-error",
        "fail",
        *POISON,
        "--restart-attempts",
        "5",
    )
    assert result.returncode != 0
    # Whichever refused row a subtask met first, named with its fields and SQLSTATE.
    named = re.search(
        r"sink 'sink_check' subtask \d: the database refused a row \(statement 1, "
        r"SQLSTATE (\w+): .*?\); row \{id=(\d+), v='v\d+(\\x00)?'\}",
        result.stderr,
        re.S,
    )
    assert named, result.stderr[-4000:]
    state, row_id = named.group(1), int(named.group(2))
    assert row_id in refused_ids(COUNT)
    assert refused_for_the_right_reason(row_id, state)
    assert "Nothing of this transaction was pre-committed" in result.stderr
    # No restarts: the row would be refused on every attempt.
    assert "SuppressRestartsException" in result.stderr
    with database.connect() as conn:
        rows, committed = conn.execute(
            "SELECT (SELECT count(*) FROM sink_check), "
            "(SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log)"
        ).fetchone()
        ids = {row[0] for row in conn.execute("SELECT id FROM sink_check")}
        staged_rows_of_refused = conn.execute("SELECT count(*) FROM tpc_staged_rows").fetchone()[0]
    # Only whole committed transactions are visible, and none holds a refused row.
    assert rows == committed and not ids & refused_ids(COUNT)
    if mode == "staged":
        assert staged_rows_of_refused == 0 or dangling(database)[1] > 0


@pytest.mark.parametrize("mode", ["prepared", "staged"])
def test_dead_letter_policy_records_each_refused_row_once_and_goes_on(database, mode):
    create_table_with_check(database)
    result = run_job(
        database, "--mode", mode, "--count", str(COUNT), "--on-row-error", "dead_letter", *POISON
    )
    assert result.returncode == 0, result.stderr[-3000:]
    refused = refused_ids(COUNT)
    assert id_counts(database) == (COUNT - len(refused), COUNT - len(refused))
    letters = dead_letters(database)
    assert [i for i, _ in letters] == sorted(refused)
    assert all(refused_for_the_right_reason(i, state) for i, state in letters), letters
    with database.connect() as conn:
        [(v, message, statement)] = conn.execute(
            "SELECT fields->>'v', message, statement FROM tpc_dead_letters "
            "WHERE fields->>'id' = %s",
            (str(NUL_EVERY),),
        ).fetchall()
    assert v == f"v{NUL_EVERY}\\x00" and message and statement == 1
    assert dangling(database) == (0, 0, 0)


@pytest.mark.chaos
# `staged` with `-m campaign`: the dead letters are written by the same code in both modes, and
# tests/sinks/test_checkpoint_scope.py runs the same kill in the third scope.
@pytest.mark.parametrize("mode", ["prepared", pytest.param("staged", marks=pytest.mark.campaign)])
def test_dead_letters_stay_exactly_once_through_kill_9_and_restore(database, tmp_path, mode):
    create_table_with_check(database)
    kill_after_pause_then_restore(
        database, tmp_path, mode, 2, "--on-row-error", "dead_letter", *POISON
    )
    refused = refused_ids(KILL_COUNT)
    assert id_counts(database) == (KILL_COUNT - len(refused),) * 2
    assert [i for i, _ in dead_letters(database)] == sorted(refused)
    assert dangling(database) == (0, 0, 0)


@pytest.mark.chaos
def test_control_at_least_once_dead_letters_the_replayed_rows_twice(
    database, control_seen, tmp_path
):
    create_table_with_check(database)
    # A replay of a few rows may hold no refused row (a loaded machine's checkpoint held 2):
    # the pause waits for a checkpoint of at least REPLAYED_AT_LEAST rows.
    kill_after_pause_then_restore(
        database,
        tmp_path,
        "at_least_once",
        2,
        "--on-row-error",
        "dead_letter",
        *POISON,
        min_rows=REPLAYED_AT_LEAST,
    )
    # The replayed checkpoint's rows of one subtask are consecutive ids: they hold at least
    # this many refused rows (the multiples of one rule alone, less one for the range's ends),
    # each dead-lettered a second time by the replay.
    replayed = replayed_rows(tmp_path / "pause")
    at_least = replayed // CHECK_EVERY - 1
    assert at_least >= 1, f"only {replayed} rows replayed: too few to prove anything"
    ids = [i for i, _ in dead_letters(database)]
    assert set(ids) == refused_ids(KILL_COUNT), "at-least-once must still lose nothing"
    control_seen(len(ids) - len(set(ids)), at_least, "dead letters written twice")
    assert len(ids) - len(set(ids)) >= at_least
