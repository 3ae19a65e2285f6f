"""`localenv.cluster submit` ships what a job needs. A job reading Kafka gets the Kafka
connector: `flink run` takes one jar for a Python job, so the connector and the Kafka client
travel merged into it with the sink jar. A job module outside the project's packages brings its
own package. (No cluster is started: this checks the command and what it names.)"""

import zipfile

import pytest

from localenv.cluster import Cluster

pytestmark = [pytest.mark.cluster]

KAFKA_CLASSES = (
    "org/apache/flink/connector/kafka/source/KafkaSource.class",
    "org/apache/kafka/clients/consumer/KafkaConsumer.class",
)
OUR_CLASSES = (
    "dev/tpc/source/KafkaLineRecords.class",
    "dev/tpc/sink/PostgresTwoPhaseCommitSink.class",
    "org/postgresql/Driver.class",
)


def shipped_jar(tmp_path, job_args):
    command = Cluster("kafka-jars-test").submit_command(
        job_args, "jobs.payments", None, True, [], tmp_path
    )
    return command[command.index("-j") + 1]


def test_a_kafka_job_ships_the_connector_merged_with_the_sink_jar(tmp_path):
    jar = shipped_jar(
        tmp_path,
        [
            "--source",
            "kafka",
            "--bootstrap-servers",
            "127.0.0.1:9092",
            "--topic",
            "payments",
            "--db-url",
            "jdbc:postgresql://x/y",
        ],
    )
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
        manifest = archive.read("META-INF/MANIFEST.MF").decode()
    assert all(name in names for name in KAFKA_CLASSES + OUR_CLASSES), jar
    assert "Multi-Release: true" in manifest  # the JDBC driver's Java 11 classes stay usable


def test_a_file_job_ships_the_sink_jar_alone(tmp_path):
    jar = shipped_jar(tmp_path, ["--input", "/tmp/in", "--db-url", "jdbc:postgresql://x/y"])
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    assert not any(name in names for name in KAFKA_CLASSES)
    assert all(name in names for name in OUR_CLASSES)


def test_a_job_module_outside_the_packages_ships_its_own_package(tmp_path):
    """The sink's acceptance job lives in tests/harness/: its package travels with the project's
    packages (the workers unpickle `FailOnce` by module), the rest of tests/ does not."""
    command = Cluster("harness-ship-test").submit_command(
        [], "tests.harness.sink_check", None, True, [], tmp_path
    )
    with zipfile.ZipFile(command[command.index("-pyfs") + 1]) as archive:
        names = set(archive.namelist())
    assert {
        "jobs/payments.py",
        "sinks/two_phase_commit.py",
        "tests/__init__.py",
        "tests/harness/__init__.py",
        "tests/harness/sink_check.py",
        "tests/harness/faults.py",
    } <= names
    assert not any(name.startswith(("tests/sinks/", "tests/conftest")) for name in names)
