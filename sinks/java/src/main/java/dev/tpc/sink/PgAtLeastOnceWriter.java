package dev.tpc.sink;

import org.apache.flink.api.connector.sink2.WriterInitContext;

import java.io.IOException;
import java.sql.SQLException;
import java.util.Collection;
import java.util.Collections;
import java.util.List;

/**
 * At-least-once mode's writer, the baseline and the tests' control: rows run through the user's
 * statements in autocommitted batches, flushed at each checkpoint, with no transaction to
 * commit; after a failure the replayed rows are written again. No fence, and no refusal of a
 * fresh start: it promises nothing more.
 */
final class PgAtLeastOnceWriter extends PgWriter {
    // One per table (SinkConfig#tables), in table order.
    private StatementBatch[] direct;
    private long rowsSinceCheckpoint; // rows flushed since the last barrier

    PgAtLeastOnceWriter(
            SinkConfig config, WriterInitContext context, Collection<PgWriterState> restored) {
        super(config, context, restored);
    }

    @Override
    boolean atLeastOnce() {
        return true;
    }

    @Override
    void openStatements(List<TableSpec> targets) throws SQLException {
        direct = statementBatches(targets, false);
    }

    @Override
    void writeRow(int table, Object[] values, byte[] payload) throws SQLException {
        addInTableOrder(direct, table, values);
        rowsSinceCheckpoint++;
    }

    @Override
    public void flush(boolean endOfInput) throws IOException {
        try {
            executeAll(direct);
        } catch (SQLException e) {
            throw failure("flush", e);
        }
    }

    /** Nothing to commit: the checkpoint's rows were flushed just before (flush(false)). */
    @Override
    public Collection<PgCommittable> prepareCommit() throws IOException, InterruptedException {
        if (rowsSinceCheckpoint > 0) {
            long rows = rowsSinceCheckpoint;
            rowsSinceCheckpoint = 0;
            afterCheckpointFlushed(null, rows);
        }
        return Collections.emptyList();
    }
}
