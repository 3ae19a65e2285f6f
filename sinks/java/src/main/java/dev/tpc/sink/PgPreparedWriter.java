package dev.tpc.sink;

import org.apache.flink.api.connector.sink2.WriterInitContext;

import java.io.IOException;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Collection;
import java.util.List;

/**
 * Prepared mode's writer: a checkpoint interval's rows run through the user's statements in one
 * transaction, which pre-commit PREPAREs, with its commit-log row inside; the committer commits
 * it with COMMIT PREPARED.
 */
final class PgPreparedWriter extends PgWriter {
    // One per table (SinkConfig#tables), in table order.
    private StatementBatch[] direct;

    PgPreparedWriter(
            SinkConfig config, WriterInitContext context, Collection<PgWriterState> restored) {
        super(config, context, restored);
    }

    @Override
    void requireServerSupport() throws SQLException {
        Preflight.requirePreparedTransactions(connection);
    }

    @Override
    void openStatements(List<TableSpec> targets) throws SQLException {
        direct = statementBatches(targets, false);
    }

    @Override
    void writeRow(int table, Object[] values, byte[] payload)
            throws SQLException, IOException, InterruptedException {
        transaction();
        addInTableOrder(direct, table, values);
        countRowInTransaction();
    }

    @Override
    public Collection<PgCommittable> prepareCommit() throws IOException, InterruptedException {
        return preCommitTransaction(id -> {
            executeAll(direct);
            try (PreparedStatement ps = connection.prepareStatement("INSERT INTO "
                    + tables.commitLog + " (gid, sink_id, subtask, counter, row_count, "
                    + "lineage, mode) VALUES (?, ?, ?, ?, ?, ?, 'PREPARED')")) {
                bindLog(ps, id);
                ps.executeUpdate();
            }
            try (Statement st = connection.createStatement()) {
                st.execute("PREPARE TRANSACTION " + TransactionId.quoted(id.gid));
            }
        });
    }

    /** A lock wait here is most likely this sink's own prepared transaction: say so. */
    @Override
    String explanation(SQLException e) {
        if (!"55P03".equals(e.getSQLState())) {
            return "";
        }
        return "\nA row this checkpoint writes is still locked, most likely by this "
                + "sink's own prepared transaction of an earlier checkpoint"
                + pendingPreparedSuffix() + ". In prepared mode a row cannot be written "
                + "again until the earlier checkpoint commits, and that commit waits for "
                + "this very task. Use commit mode 'staged' for workloads that update the "
                + "same rows (hot keys, running balances) in consecutive checkpoints.";
    }

    private String pendingPreparedSuffix() {
        try {
            connection.rollback();
            try (PreparedStatement ps = connection.prepareStatement("SELECT string_agg(gid, ', ') "
                    + "FROM pg_prepared_xacts WHERE starts_with(gid, ?)")) {
                ps.setString(1, TransactionId.sinkPrefix(config.sinkId()));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    String gids = rs.getString(1);
                    return gids == null ? "" : " (awaiting commit: " + gids + ")";
                }
            }
        } catch (SQLException ignored) {
            return "";
        }
    }
}
