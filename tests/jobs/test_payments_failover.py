"""The payments job through a failover to the standby, with nobody acting on the job.

A primary and a streaming standby on loopback (`localenv.postgres.replication`); the job is
pointed at both hosts with `targetServerType=primary`. The sink's fault seam holds the ledger
sink at a point of its protocol (`write`: a transaction open with rows in it; `precommit`: right
after PREPARE TRANSACTION, its checkpoint not yet complete; `commit`: a committer about to
COMMIT PREPARED a completed checkpoint, earlier ones committed on the primary). There the
primary is crashed (`pg_ctl stop -m immediate`) and the standby promoted; the sink goes on. The
job must recover onto the new primary by itself (restart strategy), the books must be exact, and
no prepared transaction may be left behind on the new primary.

With a synchronous standby every PREPARE TRANSACTION and COMMIT (PREPARED) the primary
acknowledged is on the standby. Control: the same failover to an asynchronous standby that fell
behind (stopped while the job committed on without it): the new primary's commit log goes back
in time, and the sink must refuse to go on (the restored checkpoint's transactions are neither
prepared nor committed there) instead of finishing with rows silently missing. And the quieter
case: the standby lost commits of checkpoints *before* the restored one, which holds nothing
pending (the job idle since). The committer has nothing to look up; the writers' state remembers
how far the commit log went when the checkpoint was taken, and they refuse.

CI runs the failover at `commit` (it exercises both a committed and a still-prepared transaction
at the crash) and the two asynchronous cases; `-m campaign` runs the other two phases.
"""

import os
import time
import uuid

import pytest

from jobs.audit import audit
from jobs.kit.environment import create_environment
from jobs.payments import build_pipeline, build_sinks, file_lines, prepare_database, sink_ids
from localenv.postgres.replication import ReplicatedPostgres, primary_of
from sinks.database import connect
from tests.harness.faults import throttled_lines
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_config,
)
from tests.jobs.test_payments_outages import (
    DEFAULT_SETTINGS,
    job_end,
    restart_attempts_that_committed,
    start_held,
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

JOB_TIMEOUT_SECONDS = 300


@pytest.fixture
def pair(adopt_process):
    with ReplicatedPostgres(synchronous=True) as servers:
        yield servers


@pytest.fixture
def async_pair(adopt_process):
    with ReplicatedPostgres(synchronous=False) as servers:
        yield servers


@pytest.fixture(scope="module")
def generated_input(tmp_path_factory):
    directory = tmp_path_factory.mktemp("failover") / "input"
    directory.mkdir()
    sample_data.write_jsonl(str(directory / "payments.jsonl"), 6_000, seed=27, id_prefix="f")
    return directory, expected_outcome(directory)


def prepared_config(db, input_dir, tmp_path):
    return payments_config(
        db,
        input_dir,
        tmp_path,
        commit_scope="subtask",
        ledger_mode="prepared",
        sink_batch_size=100,
        extra_settings=DEFAULT_SETTINGS,
    )


def first_commit_after(db, moment: float):
    """Seconds from `moment` (time.time()) to the first transaction committed after it."""
    with db.connect() as conn:
        first = conn.execute(
            "SELECT extract(epoch FROM min(written_at)) FROM tpc_commit_log "
            "WHERE written_at > to_timestamp(%s)",
            (moment,),
        ).fetchone()[0]
    return None if first is None else float(first) - moment


def outcome_within(client, seconds: float, unended: str) -> tuple[str, str]:
    """('finished' | 'failed', its error) once the job ended, or (`unended` after N s, "") with
    the job cancelled if it had not ended within `seconds`."""
    ended = job_end(client, seconds)
    if ended is None:
        client.cancel().result()
        return f"{unended} after {seconds} s", ""
    return ended[0], "" if ended[1] is None else str(ended[1])


def prepared_on(server, name: str) -> list[str]:
    with server.database(name).connect() as conn:
        return [gid for (gid,) in conn.execute("SELECT gid FROM pg_prepared_xacts")]


@pytest.mark.parametrize(
    "phase",
    [
        pytest.param("write", marks=pytest.mark.campaign),
        pytest.param("precommit", marks=pytest.mark.campaign),
        "commit",
    ],
)
def test_job_rides_out_a_failover_to_a_synchronous_standby_exactly(
    pair, generated_input, tmp_path, phase, adopt_process
):
    input_dir, expected = generated_input
    db = pair.create_database(f"failover_{uuid.uuid4().hex[:8]}")
    config = prepared_config(db, input_dir, tmp_path)
    # The pre-flight (schema, checks) runs through the two-host URL too.
    client, hold, report = start_held(config, tmp_path, phase, "payments-failover")
    assert report.get("phase") == phase
    # What the dying primary holds: committed transactions and (past `write`) prepared ones.
    with db.on(pair.primary).connect() as conn:
        committed_before = conn.execute("SELECT count(*) FROM tpc_commit_log").fetchone()[0]
    prepared_before = prepared_on(pair.primary, db.name)
    killed = time.time()
    pair.kill_primary()
    promoted_in = pair.promote()
    adopt_process(pair.standby.server_pid())
    (hold / "release").touch()
    ended = job_end(client, JOB_TIMEOUT_SECONDS)
    if ended is None:
        client.cancel().result()
        raise AssertionError(f"the job was still running {JOB_TIMEOUT_SECONDS} s after failover")
    finished_in = time.time() - killed
    assert ended[0] == "finished", f"job failed:\n{str(ended[1])[:3000]}"
    assert primary_of(db) == (pair.standby.host, pair.standby.port)
    recovery = first_commit_after(db, killed)
    # The audit through the two-host JDBC URL, as a user runs it.
    with connect(db.jdbc_url, db.user, password_file=db.password_file) as conn:
        verdict = audit(conn, str(input_dir))
    assert database_outcome(db) == expected_in_database_shape(expected)
    assert verdict.clean, verdict.render(20)
    assert prepared_on(pair.standby, db.name) == []
    assert dangling(db) == (0, 0, 0)
    attempts = restart_attempts_that_committed(db)
    print(
        f"failover at {phase}: {committed_before} transactions committed and "
        f"{len(prepared_before)} prepared on the old primary; standby promoted in "
        f"{promoted_in:.1f} s; first commit on the new primary {recovery:.1f} s after the "
        f"kill; job finished {finished_in:.0f} s after it, committing in task attempt "
        f"{attempts}; audit clean"
    )
    assert committed_before > 0
    if phase != "write":
        assert prepared_before, "nothing was prepared when the primary died: tested nothing"
    assert recovery is not None


def test_control_failover_to_a_lagging_asynchronous_standby_is_refused(
    async_pair, generated_input, tmp_path, adopt_process, control_seen
):
    """The asynchronous standby is stopped once the job committed its first transactions, so it
    keeps only those; the primary commits on alone until the seam holds a committer, then dies.
    The promoted standby's commit log is behind the job's checkpoint: the restored checkpoint's
    transactions are neither prepared nor committed there. The sink must stop the job, without
    restarts (none could find them), rather than finish with those rows missing."""
    pair = async_pair
    input_dir, _ = generated_input
    db = pair.create_database(f"failover_{uuid.uuid4().hex[:8]}")
    config = prepared_config(db, input_dir, tmp_path)
    ledger = sink_ids(config)["ledger"]
    hold = tmp_path / "hold-commit"
    settings = {
        **sink_fault(hold, "hold", nth=6, sink_id=ledger),
        "TPC_SINK_FAULT_PHASE": "commit",
    }

    def commits_on(server) -> int:
        with db.on(server).connect() as conn:
            return conn.execute(
                "SELECT count(*) FROM tpc_commit_log WHERE sink_id = %s", (ledger,)
            ).fetchone()[0]

    prepare_database(config)
    with sink_fault_in_this_jvm(settings):
        env = create_environment(config)
        # Slow enough that the 6th ledger commit comes while the stream runs, however fast the
        # machine: on an idle one the default throttle let the job finish first.
        lines = throttled_lines(file_lines(env, config), throttle_every=2, throttle_ms=4)
        build_pipeline(env, lines, build_sinks(config), config)
        client = env.execute_async("payments-failover-async")
        try:
            wait_for(lambda: commits_on(pair.primary) >= 1, 120, "the first commits", 0.05)
            pair.stop_standby_replication()
            wait_for(lambda: sink_fault_report(hold), 120, "a held committer", interval=0.05)
        except AssertionError:
            client.cancel().result()
            raise
    on_old_primary = commits_on(pair.primary)
    pair.kill_primary()
    pair.start_standby_alone()
    pair.promote()
    adopt_process(pair.standby.server_pid())
    on_new_primary = commits_on(pair.standby)
    (hold / "release").touch()
    outcome, error = outcome_within(client, 120, "still restarting")
    print(
        f"asynchronous standby: {on_old_primary} ledger transactions committed on the old "
        f"primary, {on_new_primary} on the promoted standby; the job {outcome}"
    )
    lost = on_old_primary - on_new_primary
    control_seen(lost, 1, "committed ledger transactions the promoted asynchronous standby lost")
    assert lost > 0, "the standby lost nothing: the control proves nothing"
    assert outcome == "failed", "a database gone back in time must stop the job"
    assert "is lost" in error and "go back in time" in error, error[-3000:]


def test_an_asynchronous_standby_that_lost_commits_of_earlier_checkpoints_is_refused(
    async_pair, tmp_path, adopt_process, control_seen
):
    """The job (default commit scope, watching its input directory) applies a first file, which
    reaches the standby; the standby is stopped; a second file is applied on the primary alone;
    then the job idles, so its newest checkpoints hold nothing pending. The primary dies and the
    stale standby is promoted: the second file's rows are gone, and the checkpoint the job
    restores has no committable whose loss the committer could notice. Without the writers'
    check the job would go on watching, those rows missing for good. It must stop instead.
    Control: the rows the promoted standby lacks (the loss the refusal reports)."""
    pair = async_pair
    db = pair.create_database(f"failover_{uuid.uuid4().hex[:8]}")
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    sample_data.write_jsonl(str(input_dir / "payments-1.jsonl"), 300, seed=281, id_prefix="a")
    first_rows = len(expected_outcome(input_dir).ledger)
    config = payments_config(db, input_dir, tmp_path, watch="200 ms")

    def ledger_rows(server) -> int:
        with db.on(server).connect() as conn:
            return conn.execute("SELECT count(*) FROM ledger").fetchone()[0]

    prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_lines(env, config), build_sinks(config), config)
    client = env.execute_async("payments-failover-lost-earlier-commits")
    try:
        wait_for(lambda: ledger_rows(pair.primary) == first_rows, 180, "the first file", 0.2)
        pair.wait_caught_up()
        pair.stop_standby_replication()
        # Written beside the directory, then moved in: the source never sees half a file.
        staged = tmp_path / "payments-2.jsonl"
        sample_data.write_jsonl(str(staged), 300, seed=282, id_prefix="b")
        os.replace(staged, input_dir / "payments-2.jsonl")
        both_rows = len(expected_outcome(input_dir).ledger)
        wait_for(lambda: ledger_rows(pair.primary) == both_rows, 180, "the second file", 0.2)
        # Idle checkpoints (every 500 ms) after the second file's commit: the newest ones hold
        # nothing pending, and their writers saw that commit in the commit log.
        time.sleep(5)
    except AssertionError:
        client.cancel().result()
        raise
    on_old_primary = ledger_rows(pair.primary)
    pair.kill_primary()
    pair.start_standby_alone()
    pair.promote()
    adopt_process(pair.standby.server_pid())
    on_new_primary = ledger_rows(pair.standby)
    outcome, error = outcome_within(client, 180, "still running")
    print(
        f"asynchronous standby, earlier checkpoints lost: {on_old_primary} ledger rows on the "
        f"old primary, {on_new_primary} on the promoted standby; the job {outcome}"
    )
    lost = on_old_primary - on_new_primary
    control_seen(lost, 1, "ledger rows of earlier checkpoints the promoted standby lost")
    assert lost > 0, "the standby lost nothing: the test proves nothing"
    assert outcome == "failed", "a database that lost committed rows must stop the job"
    assert "refuses to restore checkpoint" in error and "went back in time" in error, error[-3000:]
