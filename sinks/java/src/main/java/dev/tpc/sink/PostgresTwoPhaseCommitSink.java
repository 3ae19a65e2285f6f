package dev.tpc.sink;

import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.StatefulSinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.SupportsWriterState;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.streaming.api.connector.sink2.CommittableMessage;
import org.apache.flink.streaming.api.connector.sink2.CommittableMessageTypeInfo;
import org.apache.flink.streaming.api.connector.sink2.SupportsPreCommitTopology;
import org.apache.flink.streaming.api.connector.sink2.SupportsPreWriteTopology;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.types.Row;

import java.io.IOException;
import java.util.Collection;
import java.util.Collections;

/**
 * Exactly-once PostgreSQL sink (Sink V2): each subtask pre-commits its checkpoint's rows when
 * the barrier arrives, and the committer makes them visible only after the checkpoint
 * completed. Built from Python by {@code sinks.TwoPhaseCommitSink}.
 *
 * <p>In checkpoint scope ({@link CommitScope#CHECKPOINT}) a pre-commit topology gathers every
 * subtask's staged batches of a checkpoint into one committable ({@link CheckpointCommittables}),
 * which one committer applies in one transaction. In subtask scope that topology is empty: the
 * job graph is the one of a sink without it.
 */
public final class PostgresTwoPhaseCommitSink
        implements Sink<Row>,
                SupportsCommitter<PgCommittable>,
                SupportsWriterState<Row, PgWriterState>,
                SupportsPreWriteTopology<Row>,
                SupportsPreCommitTopology<PgCommittable, PgCommittable> {
    private static final long serialVersionUID = 1L;

    private final SinkConfig config;

    public PostgresTwoPhaseCommitSink(SinkConfig config) {
        this.config = config;
        // Fault settings with no fault injection shipped: refuse when the sink is built.
        SinkHooks.load();
    }

    public SinkConfig config() {
        return config;
    }

    /**
     * Flink calls this while it turns the program into a job graph, after the program has set
     * its configuration and before anything runs: the place to refuse a job that could not be
     * exactly once. Adds nothing to the topology.
     */
    @Override
    public DataStream<Row> addPreWriteTopology(DataStream<Row> input) {
        requireExactlyOnceCheckpoints(config, input.getExecutionEnvironment());
        // Again for settings made after the sink was built (a test arming its own JVM), so that
        // the job is refused here rather than in every writer's restart. A job armed on its
        // TaskManagers only is refused there, by its writers and committers.
        SinkHooks.load();
        return input;
    }

    /**
     * The sink's transactions end at checkpoints: without checkpoints a streaming job would never
     * commit, and AT_LEAST_ONCE checkpoints (unaligned barriers, records of the next checkpoint
     * mixed into this one) would replay rows a committed transaction already holds. A bounded
     * job in BATCH mode needs no checkpoints: it commits at the end of its input.
     */
    static void requireExactlyOnceCheckpoints(SinkConfig config, StreamExecutionEnvironment env) {
        if (config.mode() == CommitMode.AT_LEAST_ONCE) {
            return; // the baseline mode promises nothing more
        }
        if (env.getConfiguration().get(ExecutionOptions.RUNTIME_MODE)
                == RuntimeExecutionMode.BATCH) {
            return;
        }
        String sink = "sink '" + config.sinkId() + "' (" + config.mode().name().toLowerCase()
                + " mode) is exactly once only with EXACTLY_ONCE checkpointing: ";
        if (!env.getCheckpointConfig().isCheckpointingEnabled()) {
            throw new SinkConfigurationException(sink + "checkpointing is off, so its "
                    + "transactions would never commit. Set execution.checkpointing.interval "
                    + "(e.g. '2 s', flink-conf/config.yaml) and execution.checkpointing.mode: "
                    + "EXACTLY_ONCE, or run a bounded job with execution.runtime-mode: BATCH.");
        }
        if (env.getCheckpointConfig().getCheckpointingConsistencyMode()
                != CheckpointingMode.EXACTLY_ONCE) {
            throw new SinkConfigurationException(sink + "execution.checkpointing.mode is "
                    + env.getCheckpointConfig().getCheckpointingConsistencyMode() + ", whose "
                    + "unaligned barriers let a restore replay rows that a committed transaction "
                    + "already holds. Set execution.checkpointing.mode: EXACTLY_ONCE.");
        }
        if (config.commitScope() == CommitScope.CHECKPOINT
                && env.getCheckpointConfig().isUnalignedCheckpointsEnabled()) {
            // CheckpointCommittables emits a checkpoint's batches when its barrier arrives:
            // with unaligned barriers, batches of that checkpoint still in flight would join
            // the next one, and the checkpoint would no longer be one transaction.
            throw new SinkConfigurationException(sink + "commit scope 'checkpoint' needs "
                    + "aligned checkpoint barriers: unset execution.checkpointing.unaligned."
                    + "enabled, or use commit scope 'subtask'.");
        }
    }

    /**
     * Checkpoint scope: all writers' committables to one operator (parallelism 1, no state),
     * which emits one committable per checkpoint to committer subtask 0. Subtask scope: nothing.
     */
    @Override
    public DataStream<CommittableMessage<PgCommittable>> addPreCommitTopology(
            DataStream<CommittableMessage<PgCommittable>> committables) {
        if (config.commitScope() != CommitScope.CHECKPOINT) {
            return committables;
        }
        return committables
                .global()
                .transform(
                        "checkpoint committables",
                        CommittableMessageTypeInfo.of(PgCommittable.Serializer::new),
                        new CheckpointCommittables(config.sinkId()))
                .setParallelism(1)
                .setMaxParallelism(1)
                .global();
    }

    @Override
    public SimpleVersionedSerializer<PgCommittable> getWriteResultSerializer() {
        return new PgCommittable.Serializer();
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext context) throws IOException {
        return restoreWriter(context, Collections.emptyList());
    }

    @Override
    public StatefulSinkWriter<Row, PgWriterState> restoreWriter(
            WriterInitContext context, Collection<PgWriterState> recoveredState)
            throws IOException {
        return PgWriter.create(config, context, recoveredState);
    }

    @Override
    public SimpleVersionedSerializer<PgWriterState> getWriterStateSerializer() {
        return new PgWriterState.Serializer();
    }

    @Override
    public Committer<PgCommittable> createCommitter(CommitterInitContext context) {
        return new PgCommitter(config, context);
    }

    @Override
    public SimpleVersionedSerializer<PgCommittable> getCommittableSerializer() {
        return new PgCommittable.Serializer();
    }

    @Override
    public String toString() {
        return "PostgresTwoPhaseCommitSink{" + config + "}";
    }
}
