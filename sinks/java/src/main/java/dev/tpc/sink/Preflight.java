package dev.tpc.sink;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * Checks made before a job starts (from Python, through the gateway) and again when a writer
 * opens: driver present, database reachable, prepared transactions enabled where needed, control
 * tables present, the user's statements valid against the schema. Fails with advice.
 */
public final class Preflight {
    private Preflight() {}

    /** Returns a one-line summary, or throws {@link SinkConfigurationException}. */
    public static String check(SinkConfig config) {
        try (Connection connection = Connections.open(config, "tpc-sink-preflight")) {
            if (config.mode() == CommitMode.PREPARED) {
                requirePreparedTransactions(connection);
            }
            new ControlTables(config.controlSchema()).ensure(connection);
            checkStatements(connection, config);
            return "sink '" + config.sinkId() + "' (" + config.mode() + ") ready on "
                    + connection.getMetaData().getDatabaseProductName() + " "
                    + connection.getMetaData().getDatabaseProductVersion();
        } catch (SQLException e) {
            throw new SinkConfigurationException(e.getMessage(), e);
        }
    }

    static void requirePreparedTransactions(Connection connection) throws SQLException {
        try (Statement st = connection.createStatement();
                ResultSet rs = st.executeQuery(
                        "SELECT current_setting('max_prepared_transactions')::int")) {
            rs.next();
            if (rs.getInt(1) <= 0) {
                throw new SinkConfigurationException("commit mode 'prepared' needs PostgreSQL's "
                        + "max_prepared_transactions > 0, but the server has 0 (the default). Set "
                        + "it in postgresql.conf to at least parallelism x sinks x 2 (e.g. 64) and "
                        + "restart PostgreSQL, or use commit mode 'staged', which needs no "
                        + "prepared transactions.");
            }
        }
    }

    /** Has the server parse and describe each statement, in a transaction that is rolled back. */
    static void checkStatements(Connection connection, SinkConfig config) throws SQLException {
        boolean autoCommit = connection.getAutoCommit();
        connection.setAutoCommit(false);
        try {
            for (TableSpec table : config.tables()) {
                for (NamedStatement statement : table.statements()) {
                    String sql = BatchStatement.readsBatch(statement.original())
                            ? BatchStatement.of(
                                            statement.original(),
                                            table.fieldNames(),
                                            table.sqlTypes())
                                    .sql()
                            : statement.jdbcSql();
                    try (PreparedStatement ps = connection.prepareStatement(sql)) {
                        ps.getParameterMetaData(); // forces a server-side parse/describe
                    } catch (SQLException e) {
                        connection.rollback();
                        throw new SinkConfigurationException(
                                "statement rejected by PostgreSQL: "
                                        + e.getMessage() + "\n  statement: " + statement.original()
                                        + (table.name().isEmpty()
                                                ? ""
                                                : "\n  table: " + table.name()),
                                e);
                    }
                }
            }
        } finally {
            connection.rollback();
            connection.setAutoCommit(autoCommit);
        }
    }
}
