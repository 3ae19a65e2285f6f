package dev.tpc.sink;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;
import java.util.Properties;

/**
 * The PostgreSQL server for tests that need one: {@code TPC_TEST_JDBC_URL}, {@code
 * TPC_TEST_DB_USER} and {@code TPC_TEST_DB_PASSWORD}, which {@code python -m sinks.build --test}
 * sets for a throwaway server it starts. Without them those tests are skipped, and say so.
 */
final class TestDatabase {
    static final String URL = System.getenv("TPC_TEST_JDBC_URL");
    static final String USER = System.getenv("TPC_TEST_DB_USER");
    private static final String PASSWORD = System.getenv("TPC_TEST_DB_PASSWORD");

    private TestDatabase() {}

    static void assumeConfigured() {
        if (URL == null) {
            System.out.println(
                    "SKIPPED: no PostgreSQL configured for the database-backed tests "
                            + "(TPC_TEST_JDBC_URL is not set); run them with `python -m sinks.build --test`");
        }
        assumeTrue(
                URL != null,
                "TPC_TEST_JDBC_URL is not set: no PostgreSQL for this test "
                        + "(python -m sinks.build --test starts one)");
    }

    static Connection connect() throws SQLException {
        Properties properties = new Properties();
        properties.setProperty("user", USER);
        if (PASSWORD != null) {
            properties.setProperty("password", PASSWORD);
        }
        return new org.postgresql.Driver().connect(URL, properties);
    }

    static SinkConfig config(
            String sinkId,
            String mode,
            List<String> statements,
            List<String> fields,
            int maxCommitRetries) {
        return builder(sinkId, mode, statements, fields, maxCommitRetries).build();
    }

    /** {@link #config}'s settings, for a test to add its own before building. */
    static SinkConfigBuilder builder(
            String sinkId,
            String mode,
            List<String> statements,
            List<String> fields,
            int maxCommitRetries) {
        return SinkConfig.builder()
                .setJdbcUrl(URL)
                .setUser(USER)
                .setPassword(PASSWORD)
                .setSinkId(sinkId)
                .setMode(mode)
                .setStatements(statements)
                .setFieldNames(fields)
                .setBatchSize(100)
                .setLockTimeoutMs(5_000)
                .setMaxCommitRetries(maxCommitRetries)
                .setStatementTimeoutMs(10_000)
                .setSocketTimeoutS(30)
                .setConnectTimeoutS(5)
                .setCommitRetryBackoffMs(1, 4);
    }
}
