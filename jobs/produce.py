"""Load JSON-lines files into a Kafka topic, one record per line, bytes exact.

    python -m jobs.produce --input DIR --bootstrap-servers HOST:PORT --topic payments \\
        [--partitions 2] [--timeout 30]

A record's value is one line's bytes without its line terminator (``\\n``, or ``\\r\\n``):
exactly what the payments job treats as the line when it reads the file. Its key is the file's
name, its headers ``file`` and ``line`` say where it came from (informative; the job ignores
them). The files go in the order the file source reads them, and file *i* goes whole to
partition *i mod N*, in line order, so a duplicate in a file reaches the job after its first
occurrence, as from the file source. On a topic that was empty, a line's offset is therefore
known from the files alone (`kafka_lines`): `jobs.audit --kafka-topic` uses that.

The producer waits for all in-sync replicas (``acks=all``) and is idempotent, so its retries
neither lose nor duplicate nor reorder a line. Every step has a timeout: an unreachable broker
is an error within ``--timeout`` seconds, never a hang.
"""

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import Optional

from transforms.inputs import input_files
from transforms.lines import SourceLine, strip_line_terminator


class ProduceError(RuntimeError):
    """The lines could not be delivered; the message says why."""


def kafka_source(topic: str, partition: int) -> str:
    """How the job's rows name a record's origin (`source` of rejected and duplicate rows):
    ``kafka:<topic>:<partition>``; the line number is the record's offset. The same format as
    dev.tpc.source.KafkaLinesDeserializer (a topic name never holds ':' or '/')."""
    return f"kafka:{topic}:{partition}"


def kafka_lines(
    input_dir: str, topic: str, partitions: int, first_offsets: Optional[dict[int, int]] = None
) -> Iterator[tuple[str, int, int, SourceLine]]:
    """(file, line number in it, partition, line as the job reads it from Kafka) for every line
    under `input_dir`, in production order. `first_offsets`: each partition's end offset before
    producing (default 0, an empty topic)."""
    next_offset = {p: (first_offsets or {}).get(p, 0) for p in range(partitions)}
    for index, path in enumerate(input_files(input_dir)):
        partition = index % partitions
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                yield (
                    os.path.basename(path),
                    number,
                    partition,
                    SourceLine(
                        kafka_source(topic, partition),
                        next_offset[partition],
                        strip_line_terminator(line),
                    ),
                )
                next_offset[partition] += 1


def _client_settings(bootstrap_servers: str, timeout_s: float) -> dict:
    ms = int(timeout_s * 1000)
    return dict(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="tpc-produce",
        request_timeout_ms=min(ms, 30_000),
        bootstrap_timeout_ms=ms,
        reconnect_backoff_ms=100,
        reconnect_backoff_max_ms=5_000,
        retry_backoff_ms=200,
    )


def _admin(bootstrap_servers: str, timeout_s: float):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(**_client_settings(bootstrap_servers, timeout_s))
    except KafkaError as error:
        raise ProduceError(unreachable(bootstrap_servers, timeout_s, error)) from error


def unreachable(bootstrap_servers: str, timeout_s: float, error: BaseException) -> str:
    return (
        f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:.0f} s "
        f"({type(error).__name__}: {error}). Check the address (host:port of a listener "
        "this machine can reach) and that the broker runs."
    )


def create_topic(
    bootstrap_servers: str, topic: str, partitions: int, timeout_s: float = 30.0
) -> int:
    """Create `topic` with `partitions` partitions (replication 1 is enough for a local broker;
    a real cluster's topics are made by its owners) unless it exists. Returns its partition
    count."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = _admin(bootstrap_servers, timeout_s)
    try:
        try:
            admin.create_topics(
                [NewTopic(topic, partitions, 1)],
                timeout_ms=int(timeout_s * 1000),
                wait_for_metadata=True,
            )
        except TopicAlreadyExistsError:
            pass
        described = admin.describe_topics([topic])
        return len(described[0]["partitions"])
    except KafkaError as error:
        raise ProduceError(
            f"could not create or describe topic {topic!r} at "
            f"{bootstrap_servers}: {type(error).__name__}: {error}"
        ) from error
    finally:
        admin.close()


def end_offsets(
    bootstrap_servers: str, topic: str, partitions: int, timeout_s: float = 30.0
) -> dict[int, int]:
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    admin = _admin(bootstrap_servers, timeout_s)
    try:
        found = admin.list_partition_offsets(
            {TopicPartition(topic, p): OffsetSpec.LATEST for p in range(partitions)},
            timeout_ms=int(timeout_s * 1000),
        )
        return {tp.partition: info.offset for tp, info in found.items()}
    finally:
        admin.close()


def produce(
    input_dir: str,
    bootstrap_servers: str,
    topic: str,
    partitions: int = 2,
    timeout_s: float = 30.0,
    progress: bool = False,
) -> dict[int, tuple[int, int]]:
    """Every line under `input_dir` into `topic` (created if missing). Returns, per partition,
    (first offset, records written)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    partitions = create_topic(bootstrap_servers, topic, partitions, timeout_s)
    first = end_offsets(bootstrap_servers, topic, partitions, timeout_s)
    try:
        producer = KafkaProducer(
            **_client_settings(bootstrap_servers, timeout_s),
            acks="all",
            enable_idempotence=True,
            # Idempotence keeps order and drops the retries' duplicates with up to 5 requests
            # in flight; retries stop at delivery_timeout_ms, so a dead broker is an error.
            max_in_flight_requests_per_connection=5,
            delivery_timeout_ms=int(max(timeout_s, 5) * 1000) + 30_000,
            max_block_ms=int(timeout_s * 1000),
            linger_ms=20,
            batch_size=256 * 1024,
            max_request_size=16 * 1024 * 1024,
        )
    except KafkaError as error:
        raise ProduceError(unreachable(bootstrap_servers, timeout_s, error)) from error
    written = {p: 0 for p in range(partitions)}
    failures: list[BaseException] = []
    try:
        started = time.monotonic()
        for count, (name, number, partition, line) in enumerate(
            kafka_lines(input_dir, topic, partitions, first), start=1
        ):
            future = producer.send(
                topic,
                value=line.line,
                key=name.encode(),
                partition=partition,
                headers=[("file", name.encode()), ("line", str(number).encode())],
            )
            future.add_errback(failures.append)
            written[partition] += 1
            if failures:
                break
            if progress and count % 20_000 == 0:
                print(
                    f"\r  {count:,} lines sent ({time.monotonic() - started:.0f} s)",
                    end="",
                    flush=True,
                )
        producer.flush(timeout=timeout_s + 60)
    except KafkaError as error:
        failures.append(error)
    finally:
        producer.close(timeout=10)
    if progress:
        print()
    if failures:
        first_failure = failures[0]
        raise ProduceError(
            f"delivery to {topic!r} at {bootstrap_servers} failed "
            f"({type(first_failure).__name__}: {first_failure}); the topic may hold a prefix "
            "of the lines: produce into a new topic"
        ) from first_failure
    return {p: (first[p], written[p]) for p in range(partitions)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="directory of JSON-lines files")
    parser.add_argument("--bootstrap-servers", required=True, help="HOST:PORT[,HOST:PORT]")
    parser.add_argument("--topic", required=True)
    parser.add_argument(
        "--partitions",
        type=int,
        default=2,
        help="partitions of the topic when it has to be created",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the broker at each step"
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.input):
        print(f"error: --input {args.input} is not a directory", file=sys.stderr)
        return 2
    try:
        result = produce(
            args.input,
            args.bootstrap_servers,
            args.topic,
            args.partitions,
            args.timeout,
            progress=True,
        )
    except ProduceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for partition, (first, count) in sorted(result.items()):
        print(
            f"{kafka_source(args.topic, partition)}: {count:,} records at offsets "
            f"{first:,}..{first + count - 1:,}"
        )
    if any(first for first, _ in result.values()):
        print("note: the topic was not empty; `jobs.audit --kafka-topic` assumes it was")
    return 0


if __name__ == "__main__":
    sys.exit(main())
