package dev.tpc.source;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.apache.flink.api.common.functions.util.ListCollector;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.split.KafkaPartitionSplit;
import org.apache.flink.types.Row;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Kafka records as numbered lines (source {@code kafka:<topic>:<partition>}, the offset, the
 * value's bytes as stored), where a job starts without a checkpoint ({@link
 * KafkaLineRecords#startingOffsets}), and {@link ResumeOffsets}: the database's positions first,
 * the flag for every other partition.
 */
class KafkaLineRecordsTest {
    private static List<Row> deserialize(KafkaLineRecords records, ConsumerRecord<byte[], byte[]> r)
            throws Exception {
        List<Row> out = new ArrayList<>();
        records.deserialize(r, new ListCollector<>(out));
        return out;
    }

    @Test
    void aRecordIsALineOfItsPartitionNumberedByItsOffset() throws Exception {
        KafkaLineRecords records = new KafkaLineRecords();
        byte[] value = {'{', (byte) 0xff, '\r', '\n'}; // not UTF-8, terminator kept
        List<Row> out = deserialize(
                records, new ConsumerRecord<>("payments", 3, 42L, "key".getBytes(), value));
        assertEquals(1, out.size());
        assertEquals("kafka:payments:3", out.get(0).getField(0));
        assertEquals(42L, out.get(0).getField(1));
        assertArrayEquals(value, (byte[]) out.get(0).getField(2));

        // A tombstone is an empty line, which the parser rejects: every record lands somewhere.
        Row tombstone = deserialize(records, new ConsumerRecord<>("payments", 3, 43L, null, null))
                .get(0);
        assertArrayEquals(new byte[0], (byte[]) tombstone.getField(2));
        // One source string per partition, not one per record.
        assertSame(out.get(0).getField(0), tombstone.getField(0));
        assertEquals("kafka:payments:0", KafkaLineRecords.sourceOf("payments", 0));
        assertEquals(new NumberedLinesFormat().getProducedType(), records.getProducedType());
    }

    /** Records which partitions it was asked about; answers with fixed offsets. */
    static final class Retriever implements OffsetsInitializer.PartitionOffsetsRetriever {
        final List<TopicPartition> asked = new ArrayList<>();

        private Map<TopicPartition, Long> answer(Collection<TopicPartition> partitions, long at) {
            asked.addAll(partitions);
            Map<TopicPartition, Long> offsets = new HashMap<>();
            for (TopicPartition partition : partitions) {
                offsets.put(partition, at + partition.partition());
            }
            return offsets;
        }

        @Override
        public Map<TopicPartition, Long> committedOffsets(Collection<TopicPartition> partitions) {
            return answer(partitions, 1000);
        }

        @Override
        public Map<TopicPartition, Long> endOffsets(Collection<TopicPartition> partitions) {
            return answer(partitions, 2000);
        }

        @Override
        public Map<TopicPartition, Long> beginningOffsets(Collection<TopicPartition> partitions) {
            return answer(partitions, 3000);
        }

        @Override
        public Map<TopicPartition, OffsetAndTimestamp> offsetsForTimes(
                Map<TopicPartition, Long> timestamps) {
            throw new UnsupportedOperationException();
        }
    }

    @Test
    void startingOffsetsNameTheirModeInAnyCase() {
        List<TopicPartition> partitions = List.of(new TopicPartition("t", 0));
        assertEquals(
                Map.of(partitions.get(0), KafkaPartitionSplit.EARLIEST_OFFSET),
                KafkaLineRecords.startingOffsets("Earliest")
                        .getPartitionOffsets(partitions, new Retriever()));
        assertEquals(
                Map.of(partitions.get(0), 2000L), // the end offsets, looked up
                KafkaLineRecords.startingOffsets("LATEST")
                        .getPartitionOffsets(partitions, new Retriever()));
        OffsetsInitializer committed = KafkaLineRecords.startingOffsets("committed");
        assertEquals(
                Map.of(partitions.get(0), KafkaPartitionSplit.COMMITTED_OFFSET),
                committed.getPartitionOffsets(partitions, new Retriever()));
        assertEquals(OffsetResetStrategy.EARLIEST, committed.getAutoOffsetResetStrategy());
        IllegalArgumentException bad = assertThrows(
                IllegalArgumentException.class, () -> KafkaLineRecords.startingOffsets("newest"));
        assertEquals(
                "starting offsets 'newest': use earliest, latest or committed", bad.getMessage());
    }

    @Test
    void resumeOffsetsTakeTheDatabasesPositionsAndTheModeForTheRest() {
        OffsetsInitializer resume = ResumeOffsets.of("latest", "t", List.of(0, 2), List.of(11L, 7));
        TopicPartition t0 = new TopicPartition("t", 0);
        TopicPartition t1 = new TopicPartition("t", 1);
        TopicPartition t2 = new TopicPartition("t", 2);
        TopicPartition other0 = new TopicPartition("other", 0); // same partition, other topic
        Retriever retriever = new Retriever();
        Map<TopicPartition, Long> expected = new HashMap<>();
        expected.put(t0, 11L);
        expected.put(t1, 2001L); // end offsets, from the retriever
        expected.put(t2, 7L);
        expected.put(other0, 2000L);
        assertEquals(expected, resume.getPartitionOffsets(List.of(t0, t1, t2, other0), retriever));
        assertEquals(List.of(t1, other0), retriever.asked, "only the others are looked up");
        // An offset the log no longer has starts at the earliest one left.
        assertEquals(OffsetResetStrategy.EARLIEST, resume.getAutoOffsetResetStrategy());

        // The mode is checked when the initializer is made, before a job is built.
        assertThrows(
                IllegalArgumentException.class,
                () -> ResumeOffsets.of("newest", "t", List.of(0), List.of(1L)));
    }
}
