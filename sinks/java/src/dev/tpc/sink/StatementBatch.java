package dev.tpc.sink;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.math.BigInteger;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The user's statements, applied to batches of rows inside the caller's transaction: statement 1
 * for all rows of a batch, then statement 2, and so on.
 *
 * <p>A single-row {@code INSERT ... VALUES} is applied to the whole batch as one set-based
 * statement ({@link SetBasedInsert}); any other statement, and any batch the set-based form
 * cannot take, runs row by row in a JDBC batch.
 */
final class StatementBatch implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(StatementBatch.class);
    private static final String CARDINALITY_VIOLATION = "21000";

    private final Connection connection;
    private final List<NamedStatement> statements;
    private final List<PreparedStatement> perRow = new ArrayList<>();
    private final List<int[]> perRowIndexes = new ArrayList<>();
    private final List<SetBasedInsert> setBased = new ArrayList<>();
    private final List<int[]> setBasedIndexes = new ArrayList<>();
    private final Map<String, PreparedStatement> setBasedPrepared = new HashMap<>();
    private final List<Object[]> rows = new ArrayList<>();
    private final int batchSize;
    private final boolean stringsUntyped;

    StatementBatch(Connection connection, SinkConfig config) throws SQLException {
        this.connection = connection;
        this.statements = config.statements();
        this.batchSize = config.batchSize();
        this.stringsUntyped = config.stringsUntyped();
        for (NamedStatement statement : statements) {
            perRow.add(connection.prepareStatement(statement.jdbcSql()));
            perRowIndexes.add(statement.bindIndexes(config.fieldNames()));
            SetBasedInsert insert = SetBasedInsert.of(statement.original()).orElse(null);
            setBased.add(insert);
            setBasedIndexes.add(insert == null ? null : insert.fields().stream()
                    .mapToInt(config.fieldNames()::indexOf).toArray());
        }
    }

    void add(Object[] values) throws SQLException {
        rows.add(values);
        if (rows.size() >= batchSize) {
            execute();
        }
    }

    void execute() throws SQLException {
        if (rows.isEmpty()) {
            return;
        }
        try {
            for (int s = 0; s < statements.size(); s++) {
                if (setBased.get(s) == null || !applySetBased(s)) {
                    applyPerRow(s);
                }
            }
        } finally {
            rows.clear();
        }
    }

    /** False when this batch must run row by row instead (nothing was applied then). */
    private boolean applySetBased(int s) throws SQLException {
        SetBasedInsert insert = setBased.get(s);
        int[] indexes = setBasedIndexes.get(s);
        String[] types = new String[indexes.length];
        for (int f = 0; f < indexes.length; f++) {
            for (Object[] row : rows) {
                Object value = row[indexes[f]];
                if (value == null) {
                    continue;
                }
                String type = SetBasedInsert.sqlType(value);
                if (type == null || (types[f] != null && !types[f].equals(type))
                        || (stringsUntyped && value instanceof String)) {
                    return false; // a type it does not carry, mixed types, or untyped strings
                }
                types[f] = type;
            }
        }
        String sql = insert.sql(types);
        PreparedStatement ps = setBasedPrepared.get(sql);
        if (ps == null) {
            ps = connection.prepareStatement(sql);
            setBasedPrepared.put(sql, ps);
        }
        for (int f = 0; f < indexes.length; f++) {
            String[] column = new String[rows.size()];
            for (int r = 0; r < column.length; r++) {
                column[r] = SetBasedInsert.text(rows.get(r)[indexes[f]]);
            }
            ps.setArray(f + 1, connection.createArrayOf("text", column));
        }
        // Two rows of one batch updating the same key fail the whole statement; the per-row
        // form applies them one after the other, so that batch falls back to it.
        Savepoint savepoint = insert.updatesOnConflict() && !connection.getAutoCommit()
                ? connection.setSavepoint() : null;
        try {
            ps.executeUpdate();
        } catch (SQLException e) {
            if (insert.updatesOnConflict() && CARDINALITY_VIOLATION.equals(e.getSQLState())) {
                if (savepoint != null) {
                    connection.rollback(savepoint);
                }
                LOG.debug("a batch updates one key twice; applying it row by row: {}",
                        statements.get(s).original());
                return false;
            }
            throw e;
        }
        if (savepoint != null) {
            connection.releaseSavepoint(savepoint);
        }
        return true;
    }

    private void applyPerRow(int s) throws SQLException {
        PreparedStatement ps = perRow.get(s);
        int[] indexes = perRowIndexes.get(s);
        for (Object[] row : rows) {
            for (int p = 0; p < indexes.length; p++) {
                ps.setObject(p + 1, jdbcValue(row[indexes[p]]));
            }
            ps.addBatch();
        }
        try {
            ps.executeBatch();
        } catch (BatchUpdateException e) {
            // The driver's batch exception hides the server's reason in the chain.
            SQLException cause = e.getNextException() != null ? e.getNextException() : e;
            throw new SQLException(cause.getMessage(), cause.getSQLState(), e);
        } finally {
            ps.clearBatch();
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
        for (PreparedStatement ps : perRow) {
            ps.close();
        }
        for (PreparedStatement ps : setBasedPrepared.values()) {
            ps.close();
        }
    }
}
