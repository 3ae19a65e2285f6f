package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.reflect.Modifier;
import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Every setting is validated once, in {@link SinkConfigBuilder#build()}; a bad one is reported
 * with its setter, its value (never the password) and what to do.
 */
class SinkConfigBuilderTest {
    private static final String PASSWORD = "s3cret-Pa55";

    private static SinkConfigBuilder valid() {
        return SinkConfig.builder()
                .setJdbcUrl("jdbc:postgresql://127.0.0.1:5432/payments")
                .setUser("app")
                .setPassword(PASSWORD)
                .setSinkId("ledger")
                .setFieldNames(List.of("id", "v"))
                .addStatement("INSERT INTO out (id, v) VALUES (:id, :v)");
    }

    /** The message of the error {@code build()} raises for {@code change}, with checks common to all. */
    private static String error(
            UnaryOperator<SinkConfigBuilder> change, String setter, String... needles) {
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class, () -> change.apply(valid()).build());
        String message = e.getMessage();
        assertTrue(message.startsWith(setter + ": "), message);
        for (String needle : needles) {
            assertTrue(message.contains(needle), "'" + needle + "' not in: " + message);
        }
        assertFalse(message.contains(PASSWORD), message);
        return message;
    }

    @Test
    void defaultsLiveInTheBuilder() {
        SinkConfig config = valid().build();
        assertEquals(CommitMode.STAGED, config.mode());
        assertEquals(500, config.batchSize());
        assertEquals(30_000, config.lockTimeoutMillis());
        assertEquals(60_000, config.statementTimeoutMillis());
        assertEquals(90, config.socketTimeoutSeconds());
        assertEquals("public", config.controlSchema());
        assertEquals(10, config.maxCommitRetries());
        assertEquals(500, config.commitRetryDelayMillis(0));
        assertEquals(10_000, config.commitRetryDelayMillis(9));
        assertEquals(RowErrorPolicy.FAIL, config.rowErrorPolicy());
        assertEquals(7 * 24 * 3600, config.commitLogRetentionSeconds());
        assertEquals(15 * 60, config.preparedTransactionWarningSeconds());
        assertEquals(90_000, config.ownerWaitMillis());
        assertFalse(config.idempotentStatements());
        assertEquals(List.of("id", "v"), config.fieldNames());
        assertEquals(1, config.statements().size());
        assertFalse(config.toString().contains(PASSWORD), config.toString());
    }

    @Test
    void everySetterReachesTheConfig() {
        SinkConfig config = valid().setMode("PREPARED")
                .setBatchSize(7)
                .setLockTimeoutMs(1)
                .setStatementTimeoutMs(2_000)
                .setSocketTimeoutS(3)
                .setConnectTimeoutS(4)
                .setControlSchema("tpc")
                .setConnectionProperty("stringtype", "unspecified")
                .setMaxCommitRetries(0)
                .setCommitRetryBackoffMs(5, 6)
                .setOnRowError("dead_letter")
                .setCommitLogRetentionHours(1.5)
                .setPreparedTransactionWarningS(1.2)
                .setOwnerWaitS(0.25)
                .setIdempotentStatements(true)
                .setStatements(List.of("SELECT :v"))
                .build();
        assertEquals(CommitMode.PREPARED, config.mode());
        assertEquals(7, config.batchSize());
        assertEquals(1, config.lockTimeoutMillis());
        assertEquals(2_000, config.statementTimeoutMillis());
        assertEquals(3, config.socketTimeoutSeconds());
        assertEquals("4", config.jdbcProperties("x").getProperty("connectTimeout"));
        assertEquals("tpc", config.controlSchema());
        assertTrue(config.stringsUntyped());
        assertEquals(0, config.maxCommitRetries());
        assertEquals(6, config.commitRetryDelayMillis(3));
        assertEquals(RowErrorPolicy.DEAD_LETTER, config.rowErrorPolicy());
        assertEquals(5_400, config.commitLogRetentionSeconds());
        assertEquals(2, config.preparedTransactionWarningSeconds()); // rounded up
        assertEquals(250, config.ownerWaitMillis());
        assertTrue(config.idempotentStatements());
        assertEquals(1, config.statements().size()); // setStatements replaced the one added
        assertEquals(
                1,
                valid().setCommitLogRetentionHours(1.0 / 3600)
                        .build()
                        .commitLogRetentionSeconds()); // float noise is not rounded up to 2 s
    }

    /** Java serialization, as the job graph carries the sink. */
    private static String serialized(SinkConfig config) throws java.io.IOException {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        try (java.io.ObjectOutputStream out = new java.io.ObjectOutputStream(bytes)) {
            out.writeObject(config);
        }
        return bytes.toString(java.nio.charset.StandardCharsets.ISO_8859_1);
    }

    @Test
    void aPasswordFileIsReadAtEveryConnectionAndOnlyItsPathIsSerialized(
            @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path file = dir.resolve("password");
        java.nio.file.Files.writeString(file, PASSWORD + "\n");
        SinkConfig config =
                valid().setPassword(null).setPasswordFile(file.toString()).build();
        assertEquals(PASSWORD, config.jdbcProperties("x").getProperty("password"));
        String bytes = serialized(config);
        assertTrue(bytes.contains(file.toString()));
        assertFalse(bytes.contains(PASSWORD));
        assertFalse(config.toString().contains(PASSWORD), config.toString());
        // A rotated secret is picked up at the next connection.
        java.nio.file.Files.writeString(file, "rotated");
        assertEquals("rotated", config.jdbcProperties("x").getProperty("password"));
        // The control: an explicit value is serialized with the configuration.
        assertTrue(serialized(valid().build()).contains(PASSWORD));

        java.nio.file.Files.writeString(file, "\n");
        SinkConfigurationException empty =
                assertThrows(SinkConfigurationException.class, () -> config.jdbcProperties("x"));
        assertTrue(empty.getMessage().contains(file + " is empty"), empty.getMessage());
        java.nio.file.Files.delete(file);
        SinkConfigurationException missing =
                assertThrows(SinkConfigurationException.class, () -> config.jdbcProperties("x"));
        assertTrue(
                missing.getMessage().contains("cannot read the password file " + file),
                missing.getMessage());
        // The session options need no password: they never read the file.
        assertTrue(config.sessionOptions().contains("lock_timeout"));
    }

    @Test
    void aPasswordVariableIsReadWhereTheSinkRuns() throws Exception {
        String unset = "TPC_UNSET_" + System.nanoTime();
        SinkConfig config = valid().setPassword(null).setPasswordEnv(unset).build();
        assertTrue(serialized(config).contains(unset));
        SinkConfigurationException e =
                assertThrows(SinkConfigurationException.class, () -> config.jdbcProperties("x"));
        assertTrue(e.getMessage().contains("environment variable " + unset), e.getMessage());
        assertTrue(e.getMessage().contains("not set in this process"), e.getMessage());
        SinkConfig path = valid().setPassword(null).setPasswordEnv("PATH").build();
        assertEquals(System.getenv("PATH"), path.jdbcProperties("x").getProperty("password"));
        assertFalse(serialized(path).contains(System.getenv("PATH")));
    }

    @Test
    void thePasswordHasOneSource() {
        error(b -> b.setPasswordEnv("PGPASSWORD"), "setPasswordEnv", "only one of");
        error(
                b -> b.setPassword(null).setPasswordEnv("PG").setPasswordFile("/f"),
                "setPasswordFile",
                "only one of");
        String message = error(
                b -> b.setPassword(null).setPasswordEnv(PASSWORD),
                "setPasswordEnv",
                "not its value");
        assertFalse(message.contains(PASSWORD), message);
        error(b -> b.setPassword(null).setPasswordFile(" "), "setPasswordFile", "path is empty");
    }

    @Test
    void theOnlyWayInIsTheBuilder() {
        // Outside the package, SinkConfig.builder() and build() are the only way in.
        for (Class<?> type : List.of(SinkConfig.class, SinkConfigBuilder.class)) {
            assertTrue(Arrays.stream(type.getDeclaredConstructors())
                    .noneMatch(c -> Modifier.isPublic(c.getModifiers())
                            || Modifier.isProtected(c.getModifiers())));
        }
    }

    @Test
    void jdbcUrl() {
        error(b -> b.setJdbcUrl(null), "setJdbcUrl", "required", "jdbc:postgresql://");
        error(
                b -> b.setJdbcUrl("jdbc:mysql://db/x"),
                "setJdbcUrl",
                "'jdbc:mysql://db/x'",
                "jdbc:postgresql://host:port/database");
    }

    @Test
    void aPasswordInTheUrlIsRefusedWithoutEchoingIt() {
        String message = error(
                b -> b.setJdbcUrl("jdbc:postgresql://db/x?user=a&password=" + PASSWORD),
                "setJdbcUrl",
                "password=***",
                "setPasswordEnv",
                "set_password_env");
        assertFalse(message.contains(PASSWORD), message);
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "",
                "bad id!",
                "quote'd",
                "tpc:colon",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            })
    void sinkId(String sinkId) {
        error(
                b -> b.setSinkId(sinkId),
                "setSinkId",
                "sink id '" + sinkId + "' is invalid",
                "1 to 64 characters");
    }

    @Test
    void sinkIdIsRequired() {
        error(b -> b.setSinkId(null), "setSinkId", "required");
    }

    @Test
    void mode() {
        error(b -> b.setMode("eventually"), "setMode", "'eventually'", "'prepared', 'staged'");
        error(b -> b.setMode(null), "setMode", "unknown commit mode");
    }

    @Test
    void statements() {
        error(b -> b.setStatements(List.of()), "addStatement", "at least one");
        error(
                b -> b.addStatement("INSERT INTO out VALUES (:id, :amount, :amount, :cur)"),
                "addStatement",
                "':amount', ':cur' that the rows lack",
                "[id, v]");
        error(b -> b.addStatement("INSERT INTO out VALUES (?)"), "addStatement", "'?'");
        error(b -> b.addStatement("SELECT $x$ never closed"), "addStatement", "unterminated");
    }

    @Test
    void fieldNames() {
        error(b -> b.setFieldNames(List.of()), "setFieldNames", "required", "ROW_NAMED");
        error(b -> b.setFieldNames(null), "setFieldNames", "required");
    }

    @Test
    void batchSize() {
        error(b -> b.setBatchSize(0), "setBatchSize", "batch size 0", "at least 1");
    }

    @Test
    void timeoutsAreZeroOrPositive() {
        error(b -> b.setLockTimeoutMs(-1), "setLockTimeoutMs", "-1 ms", "default 30000 ms");
        error(b -> b.setStatementTimeoutMs(-1), "setStatementTimeoutMs", "-1 ms");
        error(b -> b.setSocketTimeoutS(-1), "setSocketTimeoutS", "-1 s");
        error(b -> b.setConnectTimeoutS(-5), "setConnectTimeoutS", "-5 s", "default 10 s");
    }

    @Test
    void theSocketTimeoutMustExceedTheStatementTimeout() {
        error(
                b -> b.setStatementTimeoutMs(120_000).setSocketTimeoutS(90),
                "setSocketTimeoutS",
                "(90 s) must exceed the statement timeout (120000 ms");
        error(b -> b.setStatementTimeoutMs(0), "setSocketTimeoutS", "(0 ms");
        valid().setStatementTimeoutMs(0).setSocketTimeoutS(0).build(); // neither: allowed
    }

    @Test
    void controlSchema() {
        error(
                b -> b.setControlSchema("Bad-Schema"),
                "setControlSchema",
                "'Bad-Schema'",
                "lower-case SQL identifier");
    }

    @ParameterizedTest
    @ValueSource(strings = {"connectTimeout", "socketTimeout", "tcpKeepAlive"})
    void connectionPropertiesTheSinkOwns(String key) {
        String message = error(
                b -> b.setConnectionProperty(key, "value-not-shown"),
                "setConnectionProperty",
                "'" + key + "'",
                "set by the sink");
        assertFalse(message.contains("value-not-shown"), message);
    }

    @Test
    void connectionPropertyNames() {
        error(b -> b.setConnectionProperty(" ", "x"), "setConnectionProperty", "needs a name");
        error(b -> b.setConnectionProperty("ssl", null), "setConnectionProperty", "needs a value");
        assertTrue(
                error(b -> b.setConnectionProperty("socketTimeout", "0"), "setConnectionProperty")
                        .contains("setSocketTimeoutS"));
    }

    @Test
    void commitRetries() {
        error(b -> b.setMaxCommitRetries(-1), "setMaxCommitRetries", "-1", "0 or more");
        error(b -> b.setCommitRetryBackoffMs(-1, 10), "setCommitRetryBackoffMs", "-1 ms");
        error(
                b -> b.setCommitRetryBackoffMs(500, 100),
                "setCommitRetryBackoffMs",
                "from 500 ms up to 100 ms",
                "initial <= maximum");
    }

    @Test
    void rowErrorPolicy() {
        error(b -> b.setOnRowError("skip"), "setOnRowError", "'skip'", "'fail' or 'dead_letter'");
    }

    @ParameterizedTest
    @CsvSource({"0, 0", "-1, -1", "0.0001, 0.0001", "NaN, NaN", "Infinity, Infinity"})
    void commitLogRetention(double hours, String shown) {
        error(
                b -> b.setCommitLogRetentionHours(hours),
                "setCommitLogRetentionHours",
                "retention of " + shown + " hours",
                "at least 1 second");
    }

    @ParameterizedTest
    @CsvSource({"0, 0", "-1, -1", "0.5, 0.5", "NaN, NaN"})
    void preparedTransactionWarning(double seconds, String shown) {
        error(
                b -> b.setPreparedTransactionWarningS(seconds),
                "setPreparedTransactionWarningS",
                "threshold of " + shown + " s",
                "at least 1 second");
    }

    @ParameterizedTest
    @CsvSource({"-1, -1", "-0.5, -0.5", "NaN, NaN", "-Infinity, -Infinity"})
    void ownerWait(double seconds, String shown) {
        error(
                b -> b.setOwnerWaitS(seconds),
                "setOwnerWaitS",
                "wait of " + shown + " s",
                "0 (refuse at once)");
    }

    @Test
    void commitScope() {
        assertEquals(CommitScope.SUBTASK, valid().build().commitScope());
        assertEquals(
                CommitScope.CHECKPOINT,
                valid().setCommitScope("checkpoint").build().commitScope());
        error(b -> b.setCommitScope("job"), "setCommitScope", "'job'", "subtask or checkpoint");
        error(b -> b.setCommitScope(null), "setCommitScope", "subtask or checkpoint");
        // The order of the calls does not matter: the rule is checked in build().
        error(
                b -> b.setCommitScope("checkpoint").setMode("prepared"),
                "setCommitScope",
                "needs commit mode 'staged'",
                "'prepared'");
        error(
                b -> b.setMode("at_least_once").setCommitScope("checkpoint"),
                "setCommitScope",
                "needs commit mode 'staged'");
    }

    @Test
    void tables() {
        SinkConfig single = valid().build();
        assertFalse(single.isMultiTable());
        assertEquals(1, single.tables().size());
        assertEquals(List.of("id", "v"), single.tables().get(0).fieldNames());

        SinkConfig tables = SinkConfig.builder()
                .setJdbcUrl("jdbc:postgresql://127.0.0.1:5432/payments")
                .setSinkId("books")
                .addTable("ledger", List.of("id", "v"), List.of("INSERT INTO l VALUES (:id, :v)"))
                .addTable("rejected", List.of("k"), List.of("INSERT INTO r VALUES (:k)"))
                .build();
        assertTrue(tables.isMultiTable());
        assertEquals(2, tables.tables().size());
        assertEquals(1, tables.tableIndex("rejected"));
        assertEquals(List.of("id", "v"), tables.fieldNames(), "the first table's");
        assertEquals(1, tables.statements().size());
        assertThrows(SinkConfigurationException.class, () -> tables.tableIndex("nope"));
        assertThrows(UnsupportedOperationException.class, () -> tables.tables().clear());

        error(
                b -> b.addTable("a", List.of("id"), List.of("SELECT :id"))
                        .addTable("a", List.of("id"), List.of("SELECT :id")),
                "addTable",
                "'a' is added twice");
        error(
                b -> b.addTable("b", List.of("id"), List.of("SELECT :nope")),
                "addTable",
                "table 'b': ");
        error(
                b -> b.addTable("no-dash", List.of("id"), List.of("SELECT :id")),
                "addTable",
                "'no-dash'");
        error(b -> b.addTable("c", List.of(), List.of("SELECT 1")), "addTable", "field names");
        error(b -> b.addTable("c", List.of("id"), List.of()), "addTable", "at least one SQL");
        error(b -> b.addTable("c", null, null), "addTable", "field names");
    }

    @Test
    void tooManyTables() {
        // A staged row's seq is (table index << 40) + position: 23 bits of table index.
        assertEquals((1 << 23) - 1, SinkConfig.MAX_TABLES);
        SinkConfigBuilder.checkTableCount(SinkConfig.MAX_TABLES);
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class,
                () -> SinkConfigBuilder.checkTableCount(SinkConfig.MAX_TABLES + 1));
        assertTrue(e.getMessage().startsWith("addTable: "), e.getMessage());
        assertTrue(e.getMessage().contains("too many"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"connectTimeout", "socketTimeout", "tcpKeepAlive"})
    void aUrlParameterThatWouldReplaceTheSinksOwnIsRefused(String name) {
        error(
                b -> b.setJdbcUrl(
                        "jdbc:postgresql://127.0.0.1:5432/payments?sslmode=require&" + name + "=5"),
                "setJdbcUrl",
                "'" + name + "'",
                "leave it out of the URL");
    }

    @Test
    void theUrlsOptionsAddToTheSinksSessionSettingsInsteadOfReplacingThem() {
        // pgjdbc lets a URL parameter replace a connection property: the sink's lock and
        // statement timeouts would be gone.
        SinkConfig config = valid().setJdbcUrl("jdbc:postgresql://127.0.0.1:5432/payments"
                        + "?sslmode=verify-full&options=-c%20search_path%3Dbooks"
                        + "&ApplicationName=mine&stringtype=unspecified")
                .setConnectionProperty("options", "-c work_mem=64MB")
                .build();
        String options = config.sessionOptions();
        assertTrue(options.startsWith("-c lock_timeout=30000 -c statement_timeout=60000"), options);
        assertTrue(options.endsWith(" -c search_path=books -c work_mem=64MB"), options);
        assertEquals(
                "jdbc:postgresql://127.0.0.1:5432/payments?sslmode=verify-full"
                        + "&stringtype=unspecified",
                config.connectionUrl());
        assertEquals(
                "jdbc:postgresql://h/db",
                SinkConfig.withoutParameters(
                        "jdbc:postgresql://h/db?options=x",
                        SinkConfig.URL_PARAMETERS_THE_SINK_SETS));
        assertEquals(
                "jdbc:postgresql://h/db",
                valid().setJdbcUrl("jdbc:postgresql://h/db").build().connectionUrl());
    }
}
