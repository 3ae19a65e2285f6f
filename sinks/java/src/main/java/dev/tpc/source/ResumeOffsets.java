package dev.tpc.source;

import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.kafka.common.TopicPartition;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a Kafka job that restores no checkpoint starts: for each partition the database holds a
 * position of (its sink committed records of it), the offset after that position; for any other
 * partition, what the job's {@code --starting-offsets} says. So a new job on the same sink ids,
 * with a new group id and its checkpoints lost, goes on where the database says, not where the
 * flag or the consumer group would have it.
 */
public final class ResumeOffsets implements OffsetsInitializer {
    private static final long serialVersionUID = 1L;

    private final HashMap<TopicPartition, Long> applied;
    private final OffsetsInitializer otherwise;

    private ResumeOffsets(HashMap<TopicPartition, Long> applied, OffsetsInitializer otherwise) {
        this.applied = applied;
        this.otherwise = otherwise;
    }

    /**
     * {@code partitions[i]} of {@code topic} starts at {@code nextOffsets[i]}; the others as
     * {@code mode} ({@link KafkaLineRecords#startingOffsets}).
     */
    public static OffsetsInitializer of(
            String mode,
            String topic,
            List<? extends Number> partitions,
            List<? extends Number> nextOffsets) {
        HashMap<TopicPartition, Long> applied = new HashMap<>();
        for (int i = 0; i < partitions.size(); i++) {
            applied.put(
                    new TopicPartition(topic, partitions.get(i).intValue()),
                    nextOffsets.get(i).longValue());
        }
        return new ResumeOffsets(applied, KafkaLineRecords.startingOffsets(mode));
    }

    @Override
    public Map<TopicPartition, Long> getPartitionOffsets(
            Collection<TopicPartition> partitions, PartitionOffsetsRetriever retriever) {
        Map<TopicPartition, Long> offsets = new HashMap<>();
        List<TopicPartition> others = new ArrayList<>();
        for (TopicPartition partition : partitions) {
            Long next = applied.get(partition);
            if (next != null) {
                offsets.put(partition, next);
            } else {
                others.add(partition);
            }
        }
        if (!others.isEmpty()) {
            offsets.putAll(otherwise.getPartitionOffsets(others, retriever));
        }
        return offsets;
    }

    @Override
    public OffsetResetStrategy getAutoOffsetResetStrategy() {
        // An offset below the log's start (records deleted by retention) starts at the earliest
        // one left: those lines are lost to the job either way, and the audit will say so.
        return OffsetResetStrategy.EARLIEST;
    }
}
