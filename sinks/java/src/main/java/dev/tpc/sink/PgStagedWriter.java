package dev.tpc.sink;

import org.apache.flink.api.connector.sink2.WriterInitContext;

import java.io.IOException;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.Collection;
import java.util.List;

/**
 * Staged mode's writer: a checkpoint interval's rows go to the staging table in one
 * transaction, which pre-commit commits with its staged-batch row; the committer applies them
 * to the targets. Under the {@code fail} row error policy it first tries every batch against the
 * user's statements (and rolls it back), so that a refused row stops the job here.
 */
final class PgStagedWriter extends PgWriter {
    private StagedRowCopier staged;
    // Under the "fail" policy: the user's statements tried on every batch and rolled back, so
    // that a refused row stops the job here and never reaches the committer. Null: no trial.
    private StatementBatch[] trial;

    PgStagedWriter(
            SinkConfig config, WriterInitContext context, Collection<PgWriterState> restored) {
        super(config, context, restored);
    }

    @Override
    void openStatements(List<TableSpec> targets) throws SQLException {
        staged = new StagedRowCopier(connection, tables.stagedRows, config.batchSize());
        // The trial sees this subtask's batch of one table alone: not the other subtasks'
        // rows that checkpoint scope applies in the same transaction, nor the rows of other
        // tables (each trial batch is rolled back), so it would refuse rows that refer to
        // them. There, a refused row stops the job at commit instead (sinks/README.md).
        if (config.rowErrorPolicy() == RowErrorPolicy.FAIL
                && !config.isMultiTable()
                && config.commitScope() == CommitScope.SUBTASK) {
            trial = statementBatches(targets, true);
        }
    }

    /** A named table's row is staged as it came; only the trial needs its values. */
    @Override
    boolean needsValues() {
        return trial != null;
    }

    @Override
    void writeRow(int table, Object[] values, byte[] payload)
            throws SQLException, IOException, InterruptedException {
        TransactionId current = transaction();
        staged.add(
                current.gid,
                TableSpec.firstSeq(table) + rowsInTransaction(),
                payload != null ? payload : RowCodec.encode(values));
        if (trial != null) {
            trial[table].add(values);
        }
        countRowInTransaction();
    }

    @Override
    public Collection<PgCommittable> prepareCommit() throws IOException, InterruptedException {
        return preCommitTransaction(id -> {
            if (trial != null) {
                executeAll(trial);
            }
            staged.flush();
            try (PreparedStatement ps = connection.prepareStatement("INSERT INTO "
                    + tables.stagedBatches + " (gid, sink_id, subtask, counter, row_count, "
                    + "lineage) VALUES (?, ?, ?, ?, ?, ?)")) {
                bindLog(ps, id);
                ps.executeUpdate();
            }
            connection.commit();
        });
    }
}
