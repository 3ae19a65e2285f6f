"""Where a job's lines come from: the files of a directory or the records of a Kafka topic, as
LINE_TYPE rows (source, line number, the line's bytes), replayable and checkpointed.

The operator uids are the job's: its checkpoints and savepoints keep each source's reading
position under them, so a job passes its own and never changes them.
"""

import os
from typing import Optional

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import DataStream
from pyflink.datastream.connectors.file_system import FileSource

from jobs.kit.config import JobConfig, parse_duration_ms

__all__ = [
    "BUNDLE_LINES",
    "LINE_TYPE",
    "file_lines",
    "file_source",
    "kafka_lines",
    "line_source",
    "lines_from",
    "require_input",
]

LINE_TYPE = Types.ROW_NAMED(
    ["source", "line_number", "line"],
    [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)

# Lines Java may hand to a Python worker before it waits for their results. Every checkpoint
# waits until Python has worked off all of them, so this bounds how late a checkpoint, and with
# it the commit, comes under load. Flink's default bundle of 100,000 records (50M lines at 500
# lines a record) let that backlog grow to 6 s; throughput is the same at 10,000.
BUNDLE_LINES = 10_000


def file_source(input_dir: str, watch_interval: Optional[str] = None) -> FileSource:
    """Replayable, checkpointed lines of every file under `input_dir`, with file and line: the
    files `transforms.inputs.input_files` lists (Flink skips names starting with '.' or '_')."""
    from sinks.sources import NumberedLinesFormat, list_files_checked

    builder = FileSource.for_bulk_file_format(NumberedLinesFormat(), os.path.abspath(input_dir))
    list_files_checked(builder)
    if watch_interval:
        builder.monitor_continuously(Duration.of_millis(parse_duration_ms(watch_interval)))
    return builder.build()


def require_input(config: JobConfig) -> str:
    """`config.input`, which a file source cannot go without."""
    if config.input is None:
        raise SystemExit("--input is required (or use --source kafka)")
    return config.input


def lines_from(env, source, uid: str) -> DataStream:
    """A Flink Source of LINE_TYPE rows as a stream, named and stored under `uid`; a DataStream
    (tests put fault injection there) as it is."""
    if isinstance(source, DataStream):
        return source
    return env.from_source(source, WatermarkStrategy.no_watermarks(), uid, type_info=LINE_TYPE).uid(
        uid
    )


def line_source(env, config: JobConfig, records_uid: str):
    """What a job reads: the files of `config.input` (a Flink Source; `lines_from` makes it a
    stream under the job's files uid) or, with ``--source kafka``, the topic's records as a
    stream under `records_uid`."""
    if config.source == "kafka":
        return kafka_lines(env, config, records_uid)
    return file_source(require_input(config), config.watch)


def file_lines(env, config: JobConfig, uid: str) -> DataStream:
    """The lines of `config.input`'s files as LINE_TYPE rows (see `file_source`), with the uid
    their checkpointed reading position is stored under."""
    return lines_from(env, file_source(require_input(config), config.watch), uid)


def kafka_lines(env, config: JobConfig, uid: str) -> DataStream:
    """The records of `config.topic` as LINE_TYPE rows: (``kafka:<topic>:<partition>``, offset,
    value bytes), under `uid`. Exactly once like the file source: the offsets live in Flink's
    checkpoints (committing them to the consumer group on checkpoint is informative only)."""
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource

    from sinks.sources import kafka_resume_offsets, kafka_starting_offsets, set_kafka_line_records

    starting = (
        kafka_resume_offsets(config.starting_offsets, config.topic or "", config.resume_offsets)
        if config.resume_offsets and not config.from_checkpoint
        else kafka_starting_offsets(config.starting_offsets)
    )

    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(config.bootstrap_servers)
        .set_topics(config.topic)
        .set_group_id(config.group_id or config.sink_id_prefix)
        .set_starting_offsets(starting)
        # Never read records of aborted (or still open) producer transactions.
        .set_property("isolation.level", "read_committed")
        # A broker outage: requests time out and reconnects back off, up to 10 s apart;
        # the reader keeps trying, a failing enumerator restarts the job (restart-strategy).
        .set_property("request.timeout.ms", "15000")
        .set_property("default.api.timeout.ms", "30000")
        .set_property("reconnect.backoff.ms", "200")
        .set_property("reconnect.backoff.max.ms", "10000")
        .set_property("socket.connection.setup.timeout.max.ms", "10000")
    )
    for key, value in config.kafka_properties.items():  # --kafka-property, checked at parse
        builder.set_property(key, value)
    if config.bounded:
        builder.set_bounded(KafkaOffsetsInitializer.latest())
    # Raw bytes, no decoding; the record's partition and offset say where it came from.
    set_kafka_line_records(builder)
    return lines_from(env, builder.build(), uid)
