package dev.tpc.sink;

import java.math.BigInteger;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;

/**
 * The user's statements, bound from row values and executed in JDBC batches.
 *
 * <p>Each batch runs statement 1 for all its rows, then statement 2, and so on, all inside the
 * caller's transaction.
 */
final class StatementBatch implements AutoCloseable {
    private final List<PreparedStatement> statements = new ArrayList<>();
    private final List<int[]> bindIndexes = new ArrayList<>();
    private final int batchSize;
    private int pending;

    StatementBatch(Connection connection, SinkConfig config) throws SQLException {
        this.batchSize = config.batchSize();
        for (NamedStatement statement : config.statements()) {
            statements.add(connection.prepareStatement(statement.jdbcSql()));
            bindIndexes.add(statement.bindIndexes(config.fieldNames()));
        }
    }

    void add(Object[] values) throws SQLException {
        for (int s = 0; s < statements.size(); s++) {
            PreparedStatement ps = statements.get(s);
            int[] indexes = bindIndexes.get(s);
            for (int p = 0; p < indexes.length; p++) {
                ps.setObject(p + 1, jdbcValue(values[indexes[p]]));
            }
            ps.addBatch();
        }
        if (++pending >= batchSize) {
            execute();
        }
    }

    void execute() throws SQLException {
        if (pending == 0) {
            return;
        }
        pending = 0;
        for (PreparedStatement ps : statements) {
            try {
                ps.executeBatch();
            } catch (BatchUpdateException e) {
                // The driver's batch exception hides the server's reason in the chain.
                SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                throw new SQLException(cause.getMessage(), cause.getSQLState(), e);
            }
        }
    }

    static Object jdbcValue(Object value) {
        if (value instanceof Instant) {
            return ((Instant) value).atOffset(ZoneOffset.UTC);
        }
        if (value instanceof BigInteger) {
            return new java.math.BigDecimal((BigInteger) value);
        }
        return value;
    }

    @Override
    public void close() throws SQLException {
        for (PreparedStatement ps : statements) {
            ps.close();
        }
    }
}
