"""`localenv.cluster submit` of a job reading Kafka ships the Kafka connector: `flink run` takes
one jar for a Python job, so the connector and the Kafka client travel merged into it with the
sink jar. (No cluster is started: this checks the command and the jar it names.)"""

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
