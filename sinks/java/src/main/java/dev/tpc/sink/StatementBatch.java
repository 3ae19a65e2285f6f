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
 * statement ({@link SetBasedInsert}); a statement that reads the batch as a relation runs once
 * per batch ({@link BatchStatement}); any other statement, and any batch the set-based form
 * cannot take, runs row by row in a JDBC batch.
 *
 * <p>A batch the database refuses for a row's sake ({@link SqlStates#isRowError}) is rolled back
 * to a savepoint taken before it and applied again one row at a time, each row under a savepoint
 * of its own, so that the refused rows are found and handed to {@link RefusedRows} (which stops
 * the job or records them as dead letters) while the others are applied. The happy path costs one
 * savepoint per batch.
 *
 * <p>A <em>trial</em> batch applies every batch and rolls it back at once: staged mode's writer
 * uses it under the "fail" policy to find refused rows before they are staged, so that the
 * committer never meets one.
 */
final class StatementBatch implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(StatementBatch.class);
    private static final String CARDINALITY_VIOLATION = "21000";

    private final Connection connection;
    private final List<NamedStatement> statements;
    private final List<PreparedStatement> perRow = new ArrayList<>();
    private final List<int[]> perRowIndexes = new ArrayList<>();
    /** Per statement: its {@link BatchStatement} form (then {@link #perRow} holds its SQL). */
    private final List<BatchStatement> batchStatements = new ArrayList<>();

    private final List<SetBasedInsert> setBased = new ArrayList<>();
    private final List<int[]> setBasedIndexes = new ArrayList<>();
    private final Map<String, PreparedStatement> setBasedPrepared = new HashMap<>();
    private final List<Object[]> rows = new ArrayList<>();
    private final int batchSize;
    private final boolean stringsUntyped;
    private final RefusedRows refused;
    private final boolean trial;
    private final int tableIndex;

    /** Without a handler for refused rows: every error is the caller's. */
    StatementBatch(Connection connection, SinkConfig config) throws SQLException {
        this(connection, config, null, false);
    }

    /**
     * @param refused what to do with rows the database refuses (null: fail the whole batch)
     * @param trial roll every batch back once applied (needs a transaction)
     */
    StatementBatch(Connection connection, SinkConfig config, RefusedRows refused, boolean trial)
            throws SQLException {
        this(connection, config, config.tables().get(0), refused, trial);
    }

    /** The statements of one table of the sink ({@link SinkConfig#tables()}). */
    StatementBatch(
            Connection connection,
            SinkConfig config,
            TableSpec table,
            RefusedRows refused,
            boolean trial)
            throws SQLException {
        this.connection = connection;
        this.refused = refused;
        this.trial = trial;
        this.statements = table.statements();
        this.tableIndex = Math.max(0, config.tables().indexOf(table));
        this.batchSize = config.batchSize();
        this.stringsUntyped = config.stringsUntyped();
        List<String> fieldNames = table.fieldNames();
        for (NamedStatement statement : statements) {
            if (BatchStatement.readsBatch(statement.original())) {
                BatchStatement.check(statement, fieldNames, table.sqlTypes());
                BatchStatement batch =
                        BatchStatement.of(statement.original(), fieldNames, table.sqlTypes());
                batchStatements.add(batch);
                perRow.add(connection.prepareStatement(batch.sql()));
                perRowIndexes.add(null);
                setBased.add(null);
                setBasedIndexes.add(null);
                continue;
            }
            batchStatements.add(null);
            perRow.add(connection.prepareStatement(statement.jdbcSql()));
            perRowIndexes.add(statement.bindIndexes(fieldNames));
            SetBasedInsert insert = SetBasedInsert.of(statement.original()).orElse(null);
            setBased.add(insert);
            setBasedIndexes.add(
                    insert == null
                            ? null
                            : insert.fields().stream()
                                    .mapToInt(fieldNames::indexOf)
                                    .toArray());
        }
    }

    /** Rows added and not yet applied. */
    int pending() {
        return rows.size();
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
        boolean inTransaction = !connection.getAutoCommit();
        Savepoint batch =
                (refused != null || trial) && inTransaction ? connection.setSavepoint() : null;
        try {
            try {
                for (int s = 0; s < statements.size(); s++) {
                    if (batchStatements.get(s) != null) {
                        applyBatchStatement(s, rows);
                    } else if (setBased.get(s) == null || !applySetBased(s)) {
                        applyPerRow(s);
                    }
                }
            } catch (SQLException e) {
                if (refused == null || !SqlStates.isRowError(e)) {
                    throw e;
                }
                // Under autocommit the failed batch was one implicit transaction: nothing of
                // it was applied, as after the rollback to the savepoint here.
                if (batch != null) {
                    connection.rollback(batch);
                }
                applyRowByRow(inTransaction);
            }
            if (batch != null) {
                if (trial) {
                    connection.rollback(batch);
                }
                connection.releaseSavepoint(batch);
            }
        } finally {
            rows.clear();
        }
    }

    /** Every row on its own (under a savepoint in a transaction); refused rows go to
     * {@link RefusedRows}. */
    private void applyRowByRow(boolean inTransaction) throws SQLException {
        for (Object[] row : rows) {
            Savepoint savepoint = inTransaction ? connection.setSavepoint() : null;
            int s = 0;
            try {
                for (; s < statements.size(); s++) {
                    if (batchStatements.get(s) != null) {
                        applyBatchStatement(s, java.util.Collections.singletonList(row));
                        continue;
                    }
                    PreparedStatement ps = perRow.get(s);
                    int[] indexes = perRowIndexes.get(s);
                    for (int p = 0; p < indexes.length; p++) {
                        ps.setObject(p + 1, jdbcValue(row[indexes[p]]));
                    }
                    ps.executeUpdate();
                }
            } catch (SQLException e) {
                if (!SqlStates.isRowError(e)) {
                    throw e;
                }
                if (savepoint != null) {
                    connection.rollback(savepoint);
                }
                refused.setTable(tableIndex);
                refused.refused(connection, row, s, e);
            }
            if (savepoint != null) {
                connection.releaseSavepoint(savepoint);
            }
        }
    }

    /** A statement over the whole batch ({@link BatchStatement}): one execution. */
    private void applyBatchStatement(int s, List<Object[]> batch) throws SQLException {
        PreparedStatement ps = perRow.get(s);
        batchStatements.get(s).bind(connection, ps, batch);
        ps.execute();
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
                if (type == null
                        || (types[f] != null && !types[f].equals(type))
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
                ? connection.setSavepoint()
                : null;
        try {
            ps.executeUpdate();
        } catch (SQLException e) {
            if (insert.updatesOnConflict() && CARDINALITY_VIOLATION.equals(e.getSQLState())) {
                if (savepoint != null) {
                    connection.rollback(savepoint);
                }
                LOG.debug(
                        "a batch updates one key twice; applying it row by row: {}",
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
