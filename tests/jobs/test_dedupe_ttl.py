"""The JVM dedupe's time to live (`--commit-scope subtask`, the only scope that runs it; the
default scope asks the ledger, which never forgets).

`FirstSeenByFingerprint` keeps, per event id, the first row's fingerprint in keyed state with
Flink's state TTL: processing time (the TaskManager's clock), the state written only when an id
is first seen (update type OnCreateAndWrite: a duplicate reads it and does not extend it), an
expired entry never returned. So an id seen again more than the TTL after its first sighting
passes the dedupe as a first row; one seen again within it is a duplicate.

The job runs with a TTL of 4 s (`PaymentsConfig.dedupe_ttl`), watching its input directory."""

import json
import time
from datetime import timedelta

import pytest

from jobs.payments import submit
from jobs.reconcile import reconcile
from tests.jobs.support import payments_config
from tests.sinks.support import wait_for

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

TTL = timedelta(seconds=4)


def payment(event_id: str, account: str, amount: str) -> str:
    return (
        json.dumps(
            {
                "event_id": event_id,
                "account_id": account,
                "type": "charge",
                "amount": amount,
                "currency": "EUR",
                "occurred_at": "2026-12-05T09:00:00+00:00",
            }
        )
        + "\n"
    )


def write_lines(path, lines):
    hidden = path.with_name("." + path.name)  # the source skips dot files: whole or not at all
    hidden.write_text("".join(lines))
    hidden.rename(path)


X = payment("ttl-x", "acct-x", "12.50")
Y = payment("ttl-y", "acct-y", "7.25")


def books(db) -> dict:
    """Each table as (event id or account, file name, line number) rows, sorted."""
    with db.connect() as conn:

        def rows(query):
            return sorted(
                tuple(value.rsplit("/", 1)[-1] if isinstance(value, str) else value for value in r)
                for r in conn.execute(query)
            )

        letters = conn.execute("SELECT to_regclass('tpc_dead_letters') IS NOT NULL").fetchone()[0]
        return {
            "ledger": rows("SELECT event_id, source, line_number FROM ledger"),
            "duplicates": rows("SELECT event_id, source, line_number FROM duplicates"),
            "rejected": rows("SELECT reason, source, line_number FROM rejected"),
            "balances": rows("SELECT account_id, balance_minor::bigint, event_count FROM balances"),
            "dead_letters": rows(
                "SELECT sink_id, sqlstate, fields->>'event_id', fields->>'source', "
                "(fields->>'line_number')::bigint FROM tpc_dead_letters"
            )
            if letters
            else [],
        }


def x_then_copies(database, tmp_path, **overrides):
    """Runs the job (TTL 4 s, watching its input) on X; once X is committed, waits 2 x TTL,
    then X again in one file and Y twice in another; returns the books once the four lines
    are accounted for, and the input directory."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    write_lines(input_dir / "1-x.jsonl", [X])
    config = payments_config(
        database, input_dir, tmp_path, watch="1 s", dedupe_ttl=TTL, **overrides
    )
    assert config.dedupe_ttl_ms == 4_000
    client = submit(config, wait=False)
    try:
        wait_for(lambda: books(database)["ledger"], 120, "X's first line to commit")
        # The dedupe wrote X's state before the ledger row became visible: 2 x TTL from now
        # is more than 2 x TTL after it.
        time.sleep(2 * TTL.total_seconds())
        write_lines(input_dir / "2-x-again.jsonl", [X])
        write_lines(input_dir / "3-y-twice.jsonl", [Y, Y])

        def settled():
            now = books(database)
            lines = sum(len(now[t]) for t in ("ledger", "duplicates", "rejected", "dead_letters"))
            return now if lines == 4 and len(now["balances"]) == 2 else None

        wait_for(settled, 60, "the three files' four lines")
        time.sleep(2)  # four more checkpoints: anything else would show now
        return books(database), input_dir
    finally:
        client.cancel().result()


def test_an_id_seen_again_after_the_dedupe_ttl_counts_as_new(database, tmp_path):
    """X is committed, then seen again at least 2 x TTL later; Y twice within milliseconds (two
    lines of one file, one record into Python, one keyed operator).

    It fails if the TTL does not expire the state (X's copy would be a duplicate, as without a
    TTL), if it expires too early or counts from elsewhere (Y's copy would pass as new), or if
    what an expired id's copy does to the tables changes: today the dedupe passes it as new,
    the ledger sink's plain INSERT is refused by the ledger's unique event id (SQLSTATE 23505)
    and the dead-letter policy records it in `tpc_dead_letters`, while the balance sums, taken
    on the JVM from what the dedupe passes, add its amount a second time."""
    found, input_dir = x_then_copies(database, tmp_path, commit_scope="subtask")

    # Y within the TTL: a duplicate, counted once.
    assert found["duplicates"] == [("ttl-y", "3-y-twice.jsonl", 2)]
    # X after the TTL: not a duplicate. The ledger keeps its first line, and refuses the copy,
    # which the dead-letter policy records ...
    assert found["ledger"] == [("ttl-x", "1-x.jsonl", 1), ("ttl-y", "3-y-twice.jsonl", 1)]
    assert found["dead_letters"] == [("payments-ledger", "23505", "ttl-x", "2-x-again.jsonl", 1)]
    assert found["rejected"] == []
    # ... while the balances count it a second time: the books no longer balance.
    assert found["balances"] == [("acct-x", 2 * 1250, 2), ("acct-y", 725, 1)]
    with database.connect() as conn:
        assert not reconcile(conn, str(input_dir)).books_balance


def test_the_default_scope_never_forgets_an_id(database, tmp_path):
    """The same files and the same TTL in the default scope, which has no JVM dedupe: the
    ledger decides, and it keeps every event id, so X's copy after the TTL is a duplicate like
    Y's within it, and the books balance. (The subtask scope's result above is what a TTL adds.)"""
    found, input_dir = x_then_copies(database, tmp_path)

    assert found["duplicates"] == [
        ("ttl-x", "2-x-again.jsonl", 1),
        ("ttl-y", "3-y-twice.jsonl", 2),
    ]
    assert found["ledger"] == [("ttl-x", "1-x.jsonl", 1), ("ttl-y", "3-y-twice.jsonl", 1)]
    assert found["balances"] == [("acct-x", 1250, 1), ("acct-y", 725, 1)]
    assert found["dead_letters"] == [] and found["rejected"] == []
    with database.connect() as conn:
        assert reconcile(conn, str(input_dir)).books_balance


def test_the_ttl_flag_takes_a_duration_and_replaces_the_days():
    """`--dedupe-ttl "3 min"` (the soak's: its state must reach its plateau within the run)."""
    from jobs.payments import config_from_args, parse_args

    common = ["--input", "in", "--db-url", "jdbc:postgresql://h/db", "--commit-scope", "subtask"]
    assert config_from_args(parse_args(common)).dedupe_ttl_ms == 30 * 86_400_000
    config = config_from_args(parse_args([*common, "--dedupe-ttl", "3 min"]))
    assert config.dedupe_ttl_ms == 180_000
    with pytest.raises(SystemExit):
        parse_args([*common, "--dedupe-ttl", "0 s"])
