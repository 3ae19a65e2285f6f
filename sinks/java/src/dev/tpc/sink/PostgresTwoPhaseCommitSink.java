package dev.tpc.sink;

import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.StatefulSinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.SupportsWriterState;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.types.Row;

import java.io.IOException;
import java.util.Collection;
import java.util.Collections;

/**
 * Exactly-once PostgreSQL sink (Sink V2): each subtask pre-commits its checkpoint's rows when
 * the barrier arrives, and the committer makes them visible only after the checkpoint
 * completed. Built from Python by {@code sinks.TwoPhaseCommitSink}.
 */
public final class PostgresTwoPhaseCommitSink implements Sink<Row>,
        SupportsCommitter<PgCommittable>, SupportsWriterState<Row, PgWriterState> {
    private static final long serialVersionUID = 1L;

    private final SinkConfig config;

    public PostgresTwoPhaseCommitSink(SinkConfig config) {
        this.config = config;
    }

    public SinkConfig config() {
        return config;
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext context) throws IOException {
        return restoreWriter(context, Collections.emptyList());
    }

    @Override
    public StatefulSinkWriter<Row, PgWriterState> restoreWriter(WriterInitContext context,
            Collection<PgWriterState> recoveredState) throws IOException {
        return new PgWriter(config, context, recoveredState);
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
