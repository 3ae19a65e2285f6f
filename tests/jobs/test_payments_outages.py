"""The payments job through PostgreSQL outages, with nobody acting on the job.

The sink's fault seam holds the ledger sink at a chosen point of its protocol
(`TPC_SINK_FAULT_PHASE`): a writer with a transaction open and rows in it (`write`), a writer
right after PREPARE TRANSACTION, its checkpoint not yet complete (`precommit`), or a committer
about to commit a completed checkpoint (`commit`). There the test crashes PostgreSQL
(`pg_ctl stop -m immediate`: no shutdown checkpoint, every session cut off, crash recovery at
the next start), lets the sink go on into the outage, keeps the server down, and starts it
again on the same port and data directory. The job must finish by itself, and the books must
be exact: the reconciliation clean, nothing pending.

The default scope runs each phase through a 60-second crash (in CI only at `commit`; the
others with `-m campaign`). The `prepared` mode (subtask scope, the ledger sink's transactions
prepared with PREPARE TRANSACTION, which must survive the server's crash recovery and be
committed or rolled back by the job afterwards) runs each phase through a shorter one (in CI
only at `precommit`, where prepared transactions are pending): what it adds is the recovery of
prepared transactions.

Control: the same 60-second outage under the settings before (fixed-delay restarts 10 x 2 s,
commit retries back to back) fails the job.

The server is this module's own, so crashing it cannot disturb other tests.
"""

import time
import uuid

import pytest

from jobs.audit import audit
from jobs.kit.environment import create_environment
from jobs.payments import build_pipeline, build_sinks, file_lines, prepare_database, sink_ids
from jobs.reconcile import reconcile
from localenv.postgres import LocalPostgres
from tests.harness.faults import throttled_lines
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_config,
)
from tests.sinks.support import (
    dangling,
    sink_fault,
    sink_fault_in_this_jvm,
    sink_fault_report,
    wait_for,
)
from transforms import sample_data

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

OUTAGE_SECONDS = 60
PREPARED_OUTAGE_SECONDS = 20
LONG_OUTAGE_SECONDS = 300
# The job's own defaults (flink-conf/config.yaml), plus quick Python bundles.
DEFAULT_SETTINGS = {"python.fn-execution.bundle.time": "100"}
# Before issue 9: restarts 10 x 2 s apart, commit retries back to back (no back-off).
OLD_SETTINGS = {
    **DEFAULT_SETTINGS,
    "restart-strategy.type": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "10",
    "restart-strategy.fixed-delay.delay": "2 s",
}


@pytest.fixture(scope="module")
def outage_server():
    with LocalPostgres(max_prepared_transactions=64) as server:
        yield server


@pytest.fixture
def outage_db(outage_server, request):
    return outage_server.create_database(f"outage_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def generated_input(tmp_path_factory):
    directory = tmp_path_factory.mktemp("outages") / "input"
    directory.mkdir()
    sample_data.write_jsonl(str(directory / "payments.jsonl"), 10_000, seed=9, id_prefix="o")
    return directory, expected_outcome(directory)


def job_end(client, seconds: float):
    """('finished' | 'failed', exception) once the job ended, or None if still running."""
    future = client.get_job_execution_result()
    deadline = time.monotonic() + seconds
    while not future.done():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)
    error = future.exception()
    return ("failed", error) if error else ("finished", None)


def start_held(config, tmp_path, phase: str, name: str, nth: int = 3):
    """Starts the job with the ledger sink's seam armed to hold at `phase`, and waits until it
    holds there: (job client, the seam's directory, its report)."""
    hold = tmp_path / f"hold-{phase}"
    settings = {
        **sink_fault(hold, "hold", nth=nth, sink_id=sink_ids(config)["ledger"]),
        "TPC_SINK_FAULT_PHASE": phase,
    }
    prepare_database(config)
    with sink_fault_in_this_jvm(settings):
        env = create_environment(config)
        build_pipeline(env, throttled_lines(file_lines(env, config)), build_sinks(config), config)
        client = env.execute_async(f"{name}-{phase}")
        try:
            report = wait_for(
                lambda: sink_fault_report(hold),
                120,
                f"the ledger sink to reach phase '{phase}'",
                interval=0.05,
            )
        except AssertionError:
            client.cancel().result()
            raise
    return client, hold, report


def run_through_outage(
    server, config, tmp_path, phase: str, outage_seconds: float, adopt_process
) -> dict:
    """Runs the job, crashes the database when the ledger sink reaches `phase`, starts it
    again after `outage_seconds` (or as soon as the job has failed), and waits for the end."""
    client, hold, report = start_held(config, tmp_path, phase, "payments-outage")
    crashed = time.monotonic()
    server.stop_immediately()
    (hold / "release").touch()
    try:
        ended = job_end(client, outage_seconds - (time.monotonic() - crashed))
    finally:
        down_for = time.monotonic() - crashed
        server.start_again()
        adopt_process(server.server_pid())
    back = time.monotonic()
    if ended is None:
        ended = job_end(client, 300)
    if ended is None:
        client.cancel().result()
        raise AssertionError("the job was still running 300 s after the database came back")
    return {
        "phase": report.get("phase"),
        "down_for": down_for,
        "ended": ended[0],
        "error": ended[1],
        "after_return": time.monotonic() - back,
    }


def restart_attempts_that_committed(db) -> int:
    """Highest task attempt number among committed transactions (ids end in
    `<job id>.<attempt>`): above 0 means the job failed over and committed afterwards."""
    with db.connect() as conn:
        return conn.execute(
            "SELECT coalesce(max(split_part(gid, '.', 2)::int), 0) FROM tpc_commit_log"
        ).fetchone()[0]


def assert_exact_after(
    outcome: dict, db, input_dir, expected, outage_seconds: float = OUTAGE_SECONDS
) -> None:
    assert outcome["ended"] == "finished", f"job failed:\n{str(outcome['error'])[:3000]}"
    assert outcome["down_for"] >= outage_seconds - 1
    assert database_outcome(db) == expected_in_database_shape(expected)
    with db.connect() as conn:
        reconciliation = reconcile(conn, str(input_dir))
        report = audit(conn, str(input_dir))
    assert reconciliation.books_balance, reconciliation.report()
    assert report.clean, report.render(20)
    assert dangling(db) == (0, 0, 0)
    attempts = restart_attempts_that_committed(db)
    print(
        f"phase {outcome['phase']}: database down {outcome['down_for']:.0f} s, job finished "
        f"{outcome['after_return']:.0f} s after its return; committed in task attempt "
        f"{attempts}"
    )
    assert attempts >= 1, "the outage never made the job fail over: it tested nothing"


# CI runs the 60-second crash at commit, and every phase through the shorter crash of the
# prepared mode below: the protocol points are the same, the length is what the restart
# strategy must ride out. `-m campaign` runs the long crash at the other two phases too.
@pytest.mark.parametrize(
    "phase",
    [
        pytest.param("write", marks=pytest.mark.campaign),
        pytest.param("precommit", marks=pytest.mark.campaign),
        "commit",
    ],
)
def test_job_rides_out_a_60_second_database_crash_exactly(
    outage_server, outage_db, generated_input, tmp_path, phase, adopt_process
):
    input_dir, expected = generated_input
    config = payments_config(
        outage_db, input_dir, tmp_path, sink_batch_size=100, extra_settings=DEFAULT_SETTINGS
    )
    outcome = run_through_outage(
        outage_server, config, tmp_path, phase, OUTAGE_SECONDS, adopt_process
    )
    assert outcome["phase"] == phase
    assert_exact_after(outcome, outage_db, input_dir, expected)


# CI runs the phase only this mode has: transactions prepared and not yet committed when the
# server crashes, which its crash recovery must keep for the job to commit. The other two
# phases are the default scope's too (above); `-m campaign` runs them in this mode as well.
@pytest.mark.parametrize(
    "phase",
    [
        pytest.param("write", marks=pytest.mark.campaign),
        "precommit",
        pytest.param("commit", marks=pytest.mark.campaign),
    ],
)
def test_prepared_mode_rides_out_a_database_crash_exactly(
    outage_server, outage_db, generated_input, tmp_path, phase, adopt_process
):
    input_dir, expected = generated_input
    config = payments_config(
        outage_db,
        input_dir,
        tmp_path,
        commit_scope="subtask",
        ledger_mode="prepared",
        sink_batch_size=100,
        extra_settings=DEFAULT_SETTINGS,
    )
    outcome = run_through_outage(
        outage_server, config, tmp_path, phase, PREPARED_OUTAGE_SECONDS, adopt_process
    )
    assert outcome["phase"] == phase
    assert_exact_after(outcome, outage_db, input_dir, expected, PREPARED_OUTAGE_SECONDS)


def test_control_old_settings_fail_the_job_in_a_60_second_crash(
    outage_server, outage_db, generated_input, tmp_path, adopt_process, monkeypatch, control_seen
):
    """Same crash, the settings before: the job gives up before the database returns."""
    from sinks import TwoPhaseCommitSink
    from sinks.two_phase_commit import TwoPhaseCommitSinkBuilder

    monkeypatch.setattr(
        TwoPhaseCommitSink,
        "builder",
        staticmethod(lambda: TwoPhaseCommitSinkBuilder().set_commit_retry_backoff_ms(0, 0)),
    )
    input_dir, _ = generated_input
    config = payments_config(
        outage_db, input_dir, tmp_path, sink_batch_size=100, extra_settings=OLD_SETTINGS
    )
    outcome = run_through_outage(
        outage_server, config, tmp_path, "write", OUTAGE_SECONDS, adopt_process
    )
    failed = outcome["ended"] == "failed" and outcome["down_for"] < OUTAGE_SECONDS
    control_seen(
        int(failed),
        1,
        f"job failure(s) while the database was down (gave up after {outcome['down_for']:.0f} s)",
    )
    assert failed, f"the old settings survived a {OUTAGE_SECONDS} s outage: {outcome}"
    assert "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy" in str(outcome["error"])


@pytest.mark.campaign
def test_job_rides_out_a_5_minute_database_crash_exactly(
    outage_server, outage_db, generated_input, tmp_path, adopt_process
):
    input_dir, expected = generated_input
    config = payments_config(
        outage_db, input_dir, tmp_path, sink_batch_size=100, extra_settings=DEFAULT_SETTINGS
    )
    outcome = run_through_outage(
        outage_server, config, tmp_path, "precommit", LONG_OUTAGE_SECONDS, adopt_process
    )
    assert outcome["down_for"] >= LONG_OUTAGE_SECONDS - 1
    assert_exact_after(outcome, outage_db, input_dir, expected)
