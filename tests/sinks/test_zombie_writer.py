"""A real zombie on a real standalone cluster: a TaskManager is frozen (SIGSTOP) while its
writer has rows in an open transaction; the JobManager gives up on it and the job fails over
to the other TaskManager, whose new writer attempt fences the frozen one off before recovering.
Thawed and released, the zombie goes on, and cannot pre-commit: its session is gone.

The writer is held by the sink's fault seam in its `zombie` action (it ignores the cancellation
a thawed TaskManager receives, as a writer stuck in a long call would), on a cluster of its own
whose daemons carry the seam's settings."""

import os
import signal
import time

import pytest

from localenv.cluster import Cluster, port_free
from localenv.flink import child_process_environment
from localenv.postgres import free_port
from tests.localenv.support import PASSWORD_ENV, cluster_command, job_id
from tests.sinks.support import (
    create_sequence_table,
    dangling,
    fault_jar_setting,
    id_counts,
    missing_ids,
    sink_fault_report,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

COUNT = 6000
# How long the JobManager waits for a frozen TaskManager's heartbeat before it declares it lost
# and fails its subtasks over: flink-conf's 50 s is for real clusters, where a long GC pause must
# not cost a failover; this drill only needs it well above a busy 2-core machine's pauses.
HEARTBEAT_TIMEOUT = "20s"


@pytest.fixture(scope="module")
def fault_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zombie-fault")


@pytest.fixture(scope="module")
def zombie_cluster(fault_dir):
    name = f"pytest-zombie-{os.getpid()}"
    rest_port = free_port() if not port_free(8082) else 8082
    handle = Cluster(name, rest_port, free_port())
    env = child_process_environment(
        {
            **fault_jar_setting(),
            "TPC_SINK_FAULT_DIR": str(fault_dir),
            "TPC_SINK_FAULT_PHASE": "write",
            "TPC_SINK_FAULT_ACTION": "zombie",
            "TPC_SINK_FAULT_NTH": "3",
        }
    )
    env.pop(PASSWORD_ENV, None)
    try:
        result = cluster_command(
            name,
            "--rest-port",
            str(rest_port),
            "--rpc-port",
            str(handle.rpc_port),
            "start",
            "--set",
            f"heartbeat.timeout={HEARTBEAT_TIMEOUT}",
            env=env,
        )
        assert result.returncode == 0, "cluster did not start"
        yield handle
    finally:
        report = sink_fault_report(fault_dir)  # never leave a frozen TaskManager behind
        if report:
            try:
                os.kill(int(report["pid"]), signal.SIGCONT)
            except ProcessLookupError:
                pass
        (fault_dir / "release").touch()
        cluster_command(name, "stop", timeout=120)


def test_a_frozen_taskmanagers_writer_is_fenced_off_and_cannot_pre_commit(
    zombie_cluster, database, fault_dir
):
    create_sequence_table(database)
    # The TaskManagers read the password from its file; the submitting client ships the
    # fault-injection jar with the job (localenv.jars.hook_jars).
    env = child_process_environment(fault_jar_setting())
    result = cluster_command(
        zombie_cluster.name,
        "submit",
        "--detached",
        "--module",
        "tests.harness.sink_check",
        "--",
        "--db-url",
        database.jdbc_url,
        "--db-user",
        database.user,
        "--password-file",
        str(database.password_file),
        "--mode",
        "prepared",
        "--count",
        str(COUNT),
        "--throttle-every",
        "1",
        "--throttle-ms",
        "5",
        "--batch-size",
        "20",
        env=env,
    )
    assert result.returncode == 0
    jid = job_id(result.stdout)
    report = wait_for(
        lambda: sink_fault_report(fault_dir),
        180,
        "a writer to stop with rows in an open transaction",
    )
    zombie_pid = int(report["pid"])
    os.kill(zombie_pid, signal.SIGSTOP)
    try:
        # The JobManager declares the frozen TaskManager lost (HEARTBEAT_TIMEOUT), and the
        # failed subtask runs again on the other one.
        wait_for(
            lambda: zombie_cluster.job_state(jid) in ("FINISHED", "FAILED"),
            300,
            "the job to fail over and finish",
        )
    finally:
        os.kill(zombie_pid, signal.SIGCONT)
    assert zombie_cluster.job_state(jid) == "FINISHED"
    (fault_dir / "release").touch()  # the zombie writer goes on with its transaction
    time.sleep(5)

    with database.connect() as conn:
        zombie_work = conn.execute(
            "SELECT (SELECT count(*) FROM pg_prepared_xacts WHERE gid = %(gid)s), "
            "(SELECT count(*) FROM tpc_commit_log WHERE gid = %(gid)s)",
            {"gid": report["gid"]},
        ).fetchone()
    assert zombie_work == (0, 0), "the zombie pre-committed"
    assert id_counts(database) == (COUNT, COUNT)
    assert missing_ids(database, COUNT) == 0
    assert dangling(database) == (0, 0, 0)
    logs = "".join(log.read_text(errors="replace") for log in zombie_cluster.log_dir.iterdir())
    assert "terminating it, so that it can never pre-commit" in logs
