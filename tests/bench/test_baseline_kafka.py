"""The single-process script's Kafka mode (`bench.baseline --source kafka`), the steady-stream
benchmark's yardstick: on a real broker it applies a topic exactly as the audit expects (the
hostile corpus included), and a restart seeks to the offsets committed with its rows, so a
second run applies only what arrived since."""

import pytest

from bench.baseline import run_kafka
from jobs.audit import audit
from jobs.produce import produce
from localenv.kafka import LocalKafka
from tests.jobs.support import write_inputs
from transforms import sample_data

pytestmark = [pytest.mark.minicluster]  # a Kafka broker's JVM

TOPIC = "payments"
PARTITIONS = 2


@pytest.fixture(scope="module")
def kafka():
    with LocalKafka() as broker:
        yield broker


def test_the_script_applies_a_topic_exactly_and_resumes_from_its_offsets(kafka, database, tmp_path):
    inputs = write_inputs(tmp_path / "input", events=3000)
    produce(str(inputs), kafka.bootstrap_servers, TOPIC, PARTITIONS)
    lines = sum(1 for path in inputs.iterdir() for _ in path.open("rb"))
    with database.connect() as conn:
        assert run_kafka(conn, kafka.bootstrap_servers, TOPIC, chunk_lines=700, bounded=True) == (
            lines
        )
        report = audit(conn, str(inputs), kafka=(TOPIC, PARTITIONS))
        assert report.clean, report.render()
        assert run_kafka(conn, kafka.bootstrap_servers, TOPIC, bounded=True) == 0

    # New lines, and re-sends of applied ones: only they are read, the re-sends are duplicates.
    later = inputs / "zz-later.jsonl"
    later.write_bytes(
        b"".join(sample_data.generate_lines(200, seed=3, id_prefix="later"))
        + (inputs / "generated.jsonl").read_bytes().splitlines(keepends=True)[5]
    )
    produce(str(inputs), kafka.bootstrap_servers, TOPIC, PARTITIONS)  # all files again
    with database.connect() as conn:
        again = run_kafka(conn, kafka.bootstrap_servers, TOPIC, bounded=True)
        assert again == lines + len(later.read_bytes().splitlines())
        ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        duplicates = conn.execute("SELECT count(*) FROM duplicates").fetchone()[0]
    assert ledger == report.tables["ledger"].found + 200  # the new events only
    assert duplicates > report.tables["duplicates"].found
