package dev.tpc.source;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Kafka records as the payments job's lines: rows of (source, line_number, line), the shape
 * {@link NumberedLinesFormat} gives a file's lines, so the job downstream is the same.
 *
 * <p>{@code source} is {@code kafka:<topic>:<partition>} (a topic name never holds ':' or
 * '/'), {@code line_number} the record's offset, {@code line} the value's bytes exactly as
 * stored: no charset decoding happens before the Python parser, which sees invalid UTF-8 as
 * it is. A record without a value (a tombstone) is an empty line, which the parser rejects: every
 * record ends in exactly one table, as every line of a file does. Keys and headers are ignored.
 */
public final class KafkaLineRecords implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private static final byte[] EMPTY = new byte[0];

    // One string per partition instead of one per record.
    private transient Map<String, Map<Integer, String>> sources;

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] value = record.value();
        out.collect(Row.of(
                source(record.topic(), record.partition()),
                record.offset(),
                value == null ? EMPTY : value));
    }

    /** The {@code source} of a record of {@code topic}'s {@code partition}. */
    public static String sourceOf(String topic, int partition) {
        return "kafka:" + topic + ":" + partition;
    }

    private String source(String topic, int partition) {
        if (sources == null) {
            sources = new HashMap<>();
        }
        return sources.computeIfAbsent(topic, t -> new HashMap<>())
                .computeIfAbsent(partition, p -> sourceOf(topic, p));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return new NumberedLinesFormat().getProducedType();
    }

    /**
     * Where a job without restored state starts: {@code earliest}, {@code latest}, or
     * {@code committed} (the consumer group's committed offsets, earliest for a partition
     * without any). A job restored from a checkpoint or savepoint ignores this: its offsets
     * are in the checkpoint. (PyFlink's own {@code committed_offsets()} names a class of the
     * shaded SQL connector jar, which this plain connector does not have.)
     */
    public static OffsetsInitializer startingOffsets(String mode) {
        switch (mode.toLowerCase(Locale.ROOT)) {
            case "earliest":
                return OffsetsInitializer.earliest();
            case "latest":
                return OffsetsInitializer.latest();
            case "committed":
                return OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST);
            default:
                throw new IllegalArgumentException(
                        "starting offsets '" + mode + "': use earliest, latest or committed");
        }
    }
}
