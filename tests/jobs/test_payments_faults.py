"""The payments job through failures, and a `--watch` job cancelled and resumed from its
retained checkpoint while new files arrive.

The failure tests and their at-least-once control run the same schedule: a Python exception
mid-stream, and a failure of the balances sink right after the third non-empty checkpoint's
balance rows became durable (pre-committed, or flushed by the at-least-once sink) and before
that checkpoint could complete. The restore replays those rows, so the control counts at least
that many events twice, on every run. The control runs one sink per table, as its exactly-once
twin in subtask scope does; the default scope's one books sink is tested through the same
failures as well."""

import time

import pytest

from jobs.kit.environment import create_environment
from jobs.payments import JOB as PAYMENTS
from jobs.payments import build_pipeline, build_sinks, file_lines, prepare_database, sink_ids
from jobs.reconcile import reconcile
from tests.harness.faults import throttled_lines
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_config,
)
from tests.sinks.support import (
    newest_complete_checkpoint,
    replayed_rows,
    sink_fault,
    sink_fault_in_this_jvm,
    wait_for,
)
from transforms import sample_data

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]


def start(config, marker=None, **sink_modes):
    prepare_database(config)
    env = create_environment(config)
    build_pipeline(
        env,
        throttled_lines(file_lines(env, config), marker),
        build_sinks(config, **sink_modes),
        config,
    )
    return env


@pytest.fixture(scope="module")
def generated_input(tmp_path_factory):
    directory = tmp_path_factory.mktemp("faults") / "input"
    directory.mkdir()
    sample_data.write_jsonl(str(directory / "payments.jsonl"), 20_000, seed=3, id_prefix="f")
    return directory, expected_outcome(directory)


def assert_exactly_once(db, expected):
    assert database_outcome(db) == expected_in_database_shape(expected)


def run_failing_job(config, tmp_path, name, **sink_modes) -> int:
    """Runs the job through both failures; returns how many balance rows the restore replays."""
    marker = tmp_path / "failed-once"
    fault_dir = tmp_path / "sink-fault"
    balances_fault = sink_fault(
        fault_dir, "fail", nth=3, sink_id=sink_ids(config, **sink_modes)["balances"]
    )
    with sink_fault_in_this_jvm(balances_fault):
        start(config, str(marker), **sink_modes).execute(name)
    assert marker.exists(), "the injected Python failure never fired"
    return replayed_rows(fault_dir)


def test_failures_mid_stream_then_recovery_are_exactly_once(database, generated_input, tmp_path):
    input_dir, expected = generated_input
    run_failing_job(payments_config(database, input_dir, tmp_path), tmp_path, "payments-failure")
    assert_exactly_once(database, expected)
    with database.connect() as conn:
        assert reconcile(conn, str(input_dir)).books_balance


def test_the_controls_layout_exactly_once_through_the_same_failures(
    database, generated_input, tmp_path
):
    """The control's twin: one sink per table (subtask scope), the layout the control runs,
    with the balances sink exactly once. The default scope's one books sink (above) is not the
    control's layout: without this twin, the control would show what another layout does."""
    input_dir, expected = generated_input
    config = payments_config(database, input_dir, tmp_path, commit_scope="subtask")
    replayed = run_failing_job(config, tmp_path, "payments-failure-subtask")
    assert replayed > 0, "the balances sink's failure replayed nothing"
    assert_exactly_once(database, expected)
    with database.connect() as conn:
        assert reconcile(conn, str(input_dir)).books_balance


def test_control_at_least_once_balances_double_count(
    database, control_seen, generated_input, tmp_path
):
    """Same run, balances through the at-least-once sink: the replay after the failure adds
    amounts a second time, so the balances no longer match the (exactly-once) ledger."""
    input_dir, expected = generated_input
    replayed = run_failing_job(
        payments_config(database, input_dir, tmp_path),
        tmp_path,
        "payments-control",
        balances="at_least_once",
    )
    ledger, balances, _, _ = database_outcome(database)
    assert ledger == expected_in_database_shape(expected)[0]
    counted_events = sum(row[3] for row in balances)
    # Each balance row is one account's delta for a checkpoint, counting at least one event:
    # every replayed row counts at least one event twice.
    control_seen(counted_events - len(ledger), replayed, "events counted twice")
    assert counted_events >= len(ledger) + replayed, (
        f"expected at least {replayed} events counted twice; found {counted_events - len(ledger)}"
    )
    with database.connect() as conn:
        assert not reconcile(conn, str(input_dir)).books_balance


def committed_lines(db):
    with db.connect() as conn:
        return PAYMENTS.lines_applied(conn)


def test_watch_job_cancelled_and_resumed_from_retained_checkpoint(database, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    sample_data.write_jsonl(str(input_dir / "day-1.jsonl"), 8_000, seed=21, id_prefix="d1")
    config = payments_config(database, input_dir, tmp_path, watch="500 ms")

    client = start(config).execute_async("payments-watch")
    wait_for(lambda: committed_lines(database) > 2_000, 120, "the first rows to commit")
    wait_for(lambda: newest_complete_checkpoint(tmp_path / "checkpoints"), 60, "a checkpoint")
    client.cancel().result()
    cancelled_at = committed_lines(database)
    checkpoint = newest_complete_checkpoint(tmp_path / "checkpoints")
    assert 0 < cancelled_at < 8_000 + 1, "cancelled too late to be mid-stream"

    # A new file arrives while the job is down; the resumed job must pick it up too.
    sample_data.write_jsonl(str(input_dir / "day-2.jsonl"), 4_000, seed=22, id_prefix="d2")
    expected = expected_outcome(input_dir)
    resumed = payments_config(
        database,
        input_dir,
        tmp_path,
        watch="500 ms",
        from_checkpoint=str(checkpoint),
        checkpoint_dir=str(tmp_path / "checkpoints-resumed"),
    )
    client = start(resumed).execute_async("payments-watch-resumed")
    try:
        wait_for(lambda: committed_lines(database) >= expected.lines, 240, "all lines to commit")
        time.sleep(2)  # anything extra (a duplicate) would show up now
    finally:
        client.cancel().result()
    assert_exactly_once(database, expected)
