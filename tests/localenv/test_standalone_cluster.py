"""The sink acceptance job on a real standalone cluster, submitted with `flink run -pym`.

One cluster for the module (a JobManager and two TaskManagers on 127.0.0.1, started and stopped
with `python -m localenv.cluster`, on free ports if 8081/6123 are taken), named after this
process so that it never touches a developer's own cluster: the `cluster` fixture of
tests/conftest.py. The fixture always stops it; the last test stops it itself and checks
that nothing of it is left: no JVM, no Python worker, no bound port.
"""

import json
import subprocess
import urllib.request

import pytest

from localenv.cluster import port_free
from localenv.flink import child_process_environment
from localenv.processes import alive, descendants
from tests.localenv.support import cluster_command, job_id
from tests.sinks.support import create_sequence_table, dangling, id_counts, missing_ids

pytestmark = pytest.mark.cluster

COUNT = 5000


def submit(cluster, db, *job_args) -> subprocess.CompletedProcess:
    env = child_process_environment()  # the password is in a file, read where the sink runs
    result = cluster_command(
        cluster.name,
        "submit",
        "--module",
        "tests.harness.sink_check",
        "--",
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-file",
        str(db.password_file),
        "--count",
        str(COUNT),
        *job_args,
        env=env,
    )
    assert db.password not in result.stdout + result.stderr
    return result


def assert_exactly_once(db):
    assert id_counts(db) == (COUNT, COUNT)
    assert missing_ids(db, COUNT) == 0
    assert dangling(db) == (0, 0, 0)


def test_staged_job_through_flink_run(cluster, database):
    create_sequence_table(database)
    result = submit(cluster, database, "--mode", "staged")
    assert result.returncode == 0
    assert_exactly_once(database)
    assert cluster.job_state(job_id(result.stdout)) == "FINISHED"
    job = cluster.rest(f"/jobs/{job_id(result.stdout)}")
    # parallelism 2, spread over both TaskManagers (taskmanager.load-balance.mode: slots)
    hosts = {
        subtask["taskmanager-id"]
        for vertex in job["vertices"]
        for subtask in cluster.rest(f"/jobs/{job['jid']}/vertices/{vertex['id']}")["subtasks"]
    }
    assert len(hosts) == 2


def test_prepared_job_survives_a_python_worker_failure(cluster, database, tmp_path):
    create_sequence_table(database)
    marker = tmp_path / "failed-once"  # written by a Python worker of a TaskManager
    result = submit(
        cluster,
        database,
        "--mode",
        "prepared",
        "--fail-once-marker",
        str(marker),
        "--fail-after-seconds",
        "1",
        "--throttle-every",
        "5",
        "--throttle-ms",
        "5",
    )
    assert result.returncode == 0
    assert marker.exists(), "the injected failure never happened"
    exceptions = json.dumps(cluster.rest(f"/jobs/{job_id(result.stdout)}/exceptions"))
    assert "InjectedFailure" in exceptions  # the job failed over, then finished
    assert_exactly_once(database)
    for log in cluster.log_dir.iterdir():  # JobManager, TaskManagers, flink run client
        assert database.password not in log.read_text(errors="replace"), log.name


def run_payments_job(cluster, db, tmp_path, *source_args):
    """`jobs.payments` on `source_args`, submitted with `flink run`; it must finish, and the
    password must never reach the output."""
    env = child_process_environment()
    result = cluster_command(
        cluster.name,
        "submit",
        "--module",
        "jobs.payments",
        "--",
        *source_args,
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-file",
        str(db.password_file),
        "--checkpoint-interval",
        "1 s",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        env=env,
    )
    assert result.returncode == 0
    assert db.password not in result.stdout + result.stderr
    assert cluster.job_state(job_id(result.stdout)) == "FINISHED"


def test_payments_job_through_flink_run(cluster, database, tmp_path):
    """The payments job, unchanged, on the cluster: the same tables as the pure transforms."""
    from tests.jobs.support import (
        database_outcome,
        expected_in_database_shape,
        expected_outcome,
        write_inputs,
    )

    input_dir = write_inputs(tmp_path / "input", events=5_000)
    run_payments_job(cluster, database, tmp_path, "--input", str(input_dir))
    assert database_outcome(database) == expected_in_database_shape(expected_outcome(input_dir))


def test_payments_job_reading_kafka_through_flink_run(cluster, database, tmp_path):
    """The payments job reading Kafka, submitted with `flink run` (the connector travels in the
    shipped jar): the same tables as the pure transforms compute from the produced lines."""
    from jobs.produce import kafka_lines, produce
    from localenv.kafka import LocalKafka
    from tests.jobs.support import database_outcome, expected_in_database_shape, write_inputs
    from transforms.reference import process_lines

    input_dir = write_inputs(tmp_path / "input", events=5_000)
    with LocalKafka() as kafka:
        produce(str(input_dir), kafka.bootstrap_servers, "payments", 2)
        run_payments_job(
            cluster,
            database,
            tmp_path,
            *("--source", "kafka", "--bootstrap-servers", kafka.bootstrap_servers),
            *("--topic", "payments", "--bounded"),
        )
    lines = (line for *_, line in kafka_lines(str(input_dir), "payments", 2))
    assert database_outcome(database) == expected_in_database_shape(process_lines(lines))


def test_stop_leaves_nothing_running(cluster):
    daemons = cluster.processes()
    assert len(daemons) == 3  # one JobManager, two TaskManagers
    workers = descendants(daemons)
    result = cluster_command(cluster.name, "stop", timeout=120)
    assert result.returncode == 0
    assert not alive(daemons | workers)
    assert not cluster.processes()
    assert port_free(cluster.rest_port) and port_free(cluster.rpc_port)
    with pytest.raises(OSError):
        urllib.request.urlopen(cluster.web_ui + "/overview", timeout=2)
