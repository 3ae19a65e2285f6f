"""The source formats the sink's jar carries, as PyFlink objects, in the style of PyFlink's own
wrappers (`StreamFormat.text_line_format()`): a job builds its sources from these and never
touches the py4j gateway.

Both give rows of (source, line_number, line) with the line's bytes exactly as stored, so the
Python parser sees what a plain Python file reader sees:

- `NumberedLinesFormat()`: lines of files, for `FileSource.for_bulk_file_format`; `source` is
  the file's path, line numbers count from 1 and survive restores. With
  `list_files_checked(builder)`, a file no retry can read fails the job at once, by name.
- `set_kafka_line_records(builder)`: Kafka records, for `KafkaSource.builder()`; `source` is
  ``kafka:<topic>:<partition>``, `line_number` the offset. With `kafka_starting_offsets(mode)`,
  or `kafka_resume_offsets(mode, topic, next_offsets)` to go on where the database says.

The Java classes are in `dev.tpc.source` (sinks/java); the jar must be on the job's class path
(`sinks.add_sink_jars(env)`, and `sinks.add_kafka_jars(env)` for Kafka) before these are made.
"""

from collections.abc import Mapping

from pyflink.datastream.connectors.file_system import BulkFormat, FileSourceBuilder
from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSourceBuilder
from pyflink.java_gateway import get_gateway


def _source_classes():
    return get_gateway().jvm.dev.tpc.source


class NumberedLinesFormat(BulkFormat):
    """Lines of files, byte-exact, split at ``\\n`` only, numbered from 1 (files are not split,
    the checkpointed position is the number of lines emitted)."""

    def __init__(self):
        super().__init__(_source_classes().NumberedLinesFormat())


def list_files_checked(builder: FileSourceBuilder) -> FileSourceBuilder:
    """Make `builder`'s source give every local input entry it cannot read a verdict: the job
    fails at once (no restarts) with the file's name, what is wrong and what to do
    (`dev.tpc.source.InputFileFault`), instead of Flink's restart loop or, when watching, a
    silent stall. Covers what appears or changes after the job's own check of the input at
    start (`transforms.inputs.input_faults`)."""
    builder._j_file_source_builder.setFileEnumerator(
        _source_classes().CheckedFileEnumerator.provider()
    )
    return builder


def set_kafka_line_records(builder: KafkaSourceBuilder) -> KafkaSourceBuilder:
    """Make `builder`'s source emit each record as a line row (raw value bytes, no decoding;
    a tombstone is an empty line). PyFlink's builder only takes value-only deserializers, which
    never see a record's partition and offset, so this hands the Java builder ours."""
    builder._j_builder.setDeserializer(_source_classes().KafkaLineRecords())
    return builder


def kafka_resume_offsets(
    mode: str, topic: str, next_offsets: Mapping[int, int]
) -> KafkaOffsetsInitializer:
    """`next_offsets` (partition -> the offset after the last one applied, as the database's
    source positions say) for those partitions; `mode` (`kafka_starting_offsets`) for the
    others: where a job on sink ids that applied records goes on without a checkpoint."""
    partitions = sorted(next_offsets)
    return KafkaOffsetsInitializer(
        _source_classes().ResumeOffsets.of(
            mode, topic, partitions, [next_offsets[p] for p in partitions]
        )
    )


def kafka_starting_offsets(mode: str) -> KafkaOffsetsInitializer:
    """Where a job without restored state starts: ``earliest``, ``latest`` or ``committed``
    (the consumer group's offsets, earliest for a partition without any). PyFlink's own
    `committed_offsets()` names a class of the SQL connector jar, which the plain connector
    lacks."""
    return KafkaOffsetsInitializer(_source_classes().KafkaLineRecords.startingOffsets(mode))
