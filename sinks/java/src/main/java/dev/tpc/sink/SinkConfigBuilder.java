package dev.tpc.sink;

import static dev.tpc.sink.SinkConfig.DEFAULT_BATCH_SIZE;
import static dev.tpc.sink.SinkConfig.DEFAULT_COMMIT_LOG_RETENTION_SECONDS;
import static dev.tpc.sink.SinkConfig.DEFAULT_COMMIT_RETRY_INITIAL_MILLIS;
import static dev.tpc.sink.SinkConfig.DEFAULT_COMMIT_RETRY_MAX_MILLIS;
import static dev.tpc.sink.SinkConfig.DEFAULT_CONNECT_TIMEOUT_SECONDS;
import static dev.tpc.sink.SinkConfig.DEFAULT_CONTROL_SCHEMA;
import static dev.tpc.sink.SinkConfig.DEFAULT_LOCK_TIMEOUT_MILLIS;
import static dev.tpc.sink.SinkConfig.DEFAULT_MAX_COMMIT_RETRIES;
import static dev.tpc.sink.SinkConfig.DEFAULT_MODE;
import static dev.tpc.sink.SinkConfig.DEFAULT_OWNER_WAIT_MILLIS;
import static dev.tpc.sink.SinkConfig.DEFAULT_PREPARED_TRANSACTION_WARNING_SECONDS;
import static dev.tpc.sink.SinkConfig.DEFAULT_ROW_ERROR_POLICY;
import static dev.tpc.sink.SinkConfig.DEFAULT_SOCKET_TIMEOUT_SECONDS;
import static dev.tpc.sink.SinkConfig.DEFAULT_STATEMENT_TIMEOUT_MILLIS;
import static dev.tpc.sink.SinkConfig.MAX_TABLES;
import static dev.tpc.sink.SinkConfig.SCHEMA;
import static dev.tpc.sink.SinkConfig.SINK_ID;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * The settings of a {@link SinkConfig}, with their defaults ({@link SinkConfig#builder()}).
 * Setters only record (a setter may be called again, later calls win), so the order of calls
 * does not matter; {@link #build()} validates them all, at once, in one {@link #sanityCheck()},
 * and says for a bad one which setter, what value, and what to do.
 *
 * <p>The Python builder ({@code sinks/two_phase_commit.py}) records its settings and hands them
 * to this builder, so its errors are these messages, with the setters named the Python way
 * ({@code setBatchSize} becomes {@code set_batch_size}): keep every Java setter the camel-case
 * twin of its Python one, in the same unit.
 */
public final class SinkConfigBuilder {
    /** A password in the URL would reach logs and the web UI. */
    private static final Pattern PASSWORD_IN_URL = Pattern.compile("(?i)password=");

    /** pgjdbc properties the sink sets on every connection, and what to do instead. */
    private static final Map<String, String> OWN_PROPERTIES = Map.of(
            "connectTimeout", "use setConnectTimeoutS instead",
            "socketTimeout", "use setSocketTimeoutS instead",
            "tcpKeepAlive", "it is always on, so that a vanished server is noticed");

    // The settings as given. Those without a check of their own are package-private: the
    // SinkConfig constructor, which only build() calls, copies them.
    String jdbcUrl;
    String user;
    String password;
    String passwordEnv;
    String passwordFile;
    String sinkId;
    private String mode = DEFAULT_MODE.name().toLowerCase(Locale.ROOT);
    private final List<String> statements = new ArrayList<>();
    private List<String> fieldNames = new ArrayList<>();
    int batchSize = DEFAULT_BATCH_SIZE;
    long lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MILLIS;
    long statementTimeoutMs = DEFAULT_STATEMENT_TIMEOUT_MILLIS;
    int socketTimeoutS = DEFAULT_SOCKET_TIMEOUT_SECONDS;
    int connectTimeoutS = DEFAULT_CONNECT_TIMEOUT_SECONDS;
    String controlSchema = DEFAULT_CONTROL_SCHEMA;
    final Map<String, String> connectionProperties = new LinkedHashMap<>();
    int maxCommitRetries = DEFAULT_MAX_COMMIT_RETRIES;
    long commitRetryInitialMs = DEFAULT_COMMIT_RETRY_INITIAL_MILLIS;
    long commitRetryMaxMs = DEFAULT_COMMIT_RETRY_MAX_MILLIS;
    private String onRowError = DEFAULT_ROW_ERROR_POLICY.name().toLowerCase(Locale.ROOT);
    private double commitLogRetentionHours = DEFAULT_COMMIT_LOG_RETENTION_SECONDS / 3600.0;
    private double preparedTransactionWarningS = DEFAULT_PREPARED_TRANSACTION_WARNING_SECONDS;
    private double ownerWaitS = DEFAULT_OWNER_WAIT_MILLIS / 1000.0;
    boolean idempotentStatements = false;
    private String commitScope = CommitScope.SUBTASK.name().toLowerCase(Locale.ROOT);
    /** The {@link #addTable} calls, in order. */
    private final List<TableSettings> tables = new ArrayList<>();

    /** {@link SinkConfig#builder()}. */
    SinkConfigBuilder() {}

    /** {@code jdbc:postgresql://host:port/database}, without a password. Required. */
    public SinkConfigBuilder setJdbcUrl(String url) {
        this.jdbcUrl = url;
        return this;
    }

    public SinkConfigBuilder setUser(String user) {
        this.user = user;
        return this;
    }

    /**
     * The password itself. It is serialized into the job graph with the configuration, so it
     * reaches the blob store, the JobManager's memory and every TaskManager: jobs use {@link
     * #setPasswordEnv} or {@link #setPasswordFile}. Kept for tests and tools that hold the value
     * and open connections in their own process. Never shown in messages, logs or {@link
     * SinkConfig#toString()}.
     */
    public SinkConfigBuilder setPassword(String password) {
        this.password = password;
        return this;
    }

    /**
     * The name of the environment variable holding the password, read by each process that
     * opens a connection (the TaskManagers' writers and committers, the client's pre-flight
     * check) when it opens one: only the name travels in the job graph.
     */
    public SinkConfigBuilder setPasswordEnv(String variable) {
        this.passwordEnv = variable;
        return this;
    }

    /**
     * The path of a file holding the password (e.g. a mounted Kubernetes secret), read at every
     * connection by the process that opens it, so a rotated secret is picked up at the next
     * (re)connect; a trailing newline is dropped. Only the path travels in the job graph.
     */
    public SinkConfigBuilder setPasswordFile(String path) {
        this.passwordFile = path;
        return this;
    }

    /** Stable, unique per database among running jobs; part of every transaction id. Required. */
    public SinkConfigBuilder setSinkId(String sinkId) {
        this.sinkId = sinkId;
        return this;
    }

    /** {@code prepared}, {@code staged} (default) or {@code at_least_once}. */
    public SinkConfigBuilder setMode(String mode) {
        this.mode = mode;
        return this;
    }

    /** A statement run for every row, with {@code :field} parameters. At least one. */
    public SinkConfigBuilder addStatement(String sql) {
        statements.add(sql);
        return this;
    }

    /** Replaces the statements added so far. */
    public SinkConfigBuilder setStatements(List<String> statements) {
        this.statements.clear();
        if (statements != null) {
            this.statements.addAll(statements);
        }
        return this;
    }

    /** The rows' field names, which the {@code :field} parameters name. Required. */
    public SinkConfigBuilder setFieldNames(List<String> fieldNames) {
        this.fieldNames = fieldNames == null ? new ArrayList<>() : new ArrayList<>(fieldNames);
        return this;
    }

    /** Rows sent to PostgreSQL per JDBC batch. */
    public SinkConfigBuilder setBatchSize(int rows) {
        this.batchSize = rows;
        return this;
    }

    /** 0: wait for locks forever (not recommended). */
    public SinkConfigBuilder setLockTimeoutMs(long millis) {
        this.lockTimeoutMs = millis;
        return this;
    }

    /** Must stay below the socket timeout; 0: none. */
    public SinkConfigBuilder setStatementTimeoutMs(long millis) {
        this.statementTimeoutMs = millis;
        return this;
    }

    /** Must exceed the statement timeout and stay below Flink's 180 s cancellation watchdog. */
    public SinkConfigBuilder setSocketTimeoutS(int seconds) {
        this.socketTimeoutS = seconds;
        return this;
    }

    public SinkConfigBuilder setConnectTimeoutS(int seconds) {
        this.connectTimeoutS = seconds;
        return this;
    }

    /** Schema of the sink's own tables (commit log, staging, dead letters). */
    public SinkConfigBuilder setControlSchema(String schema) {
        this.controlSchema = schema;
        return this;
    }

    /** A pgjdbc property; timeouts and keepalive have their own setters. */
    public SinkConfigBuilder setConnectionProperty(String key, String value) {
        connectionProperties.put(key, value);
        return this;
    }

    /**
     * Declares that applying a row a second time leaves the tables as they were: every
     * statement writes a natural key if absent ({@code ON CONFLICT DO NOTHING}) or
     * overwrites it with the same values. Only then may a start that restores no checkpoint
     * (which replays its input from the beginning) write through a sink id that already
     * committed; by default such a start is refused. Never for running sums or counters.
     */
    public SinkConfigBuilder setIdempotentStatements(boolean idempotent) {
        this.idempotentStatements = idempotent;
        return this;
    }

    /** Retries of a commit that failed with a transient error, before the job restarts. */
    public SinkConfigBuilder setMaxCommitRetries(int retries) {
        this.maxCommitRetries = retries;
        return this;
    }

    /** The wait before a commit retry: {@code initial}, doubling up to {@code maximum}. */
    public SinkConfigBuilder setCommitRetryBackoffMs(long initial, long maximum) {
        this.commitRetryInitialMs = initial;
        this.commitRetryMaxMs = maximum;
        return this;
    }

    /** {@code fail} (default) or {@code dead_letter}: see {@link RowErrorPolicy}. */
    public SinkConfigBuilder setOnRowError(String policy) {
        this.onRowError = policy;
        return this;
    }

    /** At least 1 second's worth; rounded up to whole seconds. */
    public SinkConfigBuilder setCommitLogRetentionHours(double hours) {
        this.commitLogRetentionHours = hours;
        return this;
    }

    /** At least 1; rounded up to whole seconds. */
    public SinkConfigBuilder setPreparedTransactionWarningS(double seconds) {
        this.preparedTransactionWarningS = seconds;
        return this;
    }

    /** See {@link SinkConfig#DEFAULT_OWNER_WAIT_MILLIS}; 0: refuse at once. */
    public SinkConfigBuilder setOwnerWaitS(double seconds) {
        this.ownerWaitS = seconds;
        return this;
    }

    /**
     * What one committing transaction covers: {@code subtask} (default) or {@code checkpoint}
     * (needs {@code setMode("staged")}): see {@link CommitScope}.
     */
    public SinkConfigBuilder setCommitScope(String scope) {
        this.commitScope = scope;
        return this;
    }

    /**
     * Adds a named input: its rows' field names and the statements run for each of its rows.
     * A sink with named inputs takes envelopes ({@link TableEnvelope}) instead of plain rows,
     * and commits all its tables together. Tables are applied in the order they were added.
     * Without {@link #setFieldNames} / statements of its own, the sink's single-table
     * settings are the first table's.
     */
    public SinkConfigBuilder addTable(
            String name, List<String> fieldNames, List<String> statements) {
        return addTable(name, fieldNames, statements, null);
    }

    /**
     * {@link #addTable(String, List, List)} with the SQL type of each field (e.g. {@code
     * text}, {@code int8}, {@code numeric}, {@code bytea}): needed by a statement that reads
     * the batch as the relation {@code tpc_batch} ({@link BatchStatement}).
     */
    public SinkConfigBuilder addTable(
            String name, List<String> fieldNames, List<String> statements, List<String> sqlTypes) {
        tables.add(new TableSettings(name, fieldNames, statements, sqlTypes));
        return this;
    }

    /**
     * The configuration, if every setting is valid.
     *
     * @throws SinkConfigurationException naming the first bad setting's setter, its value
     *     (never the password) and what to do
     */
    public SinkConfig build() {
        sanityCheck();
        return new SinkConfig(this);
    }

    /**
     * Checks every setting, in this order, and throws for the first bad one: the connection,
     * the sink id, the commit mode and scope, the tables, field names and statements, the batch
     * size and timeouts, the control schema, the connection properties, the commit retries, the
     * row error policy, and the housekeeping thresholds. A new setting gets its check here.
     *
     * <p>A {@code checked...()} method checks a setting and returns it as the configuration holds
     * it (parsed, converted); the {@link SinkConfig} constructor calls them again for the values.
     */
    private void sanityCheck() {
        checkJdbcUrl();
        checkPasswordSource();
        checkSinkId();
        checkedCommitScope(); // and the mode
        checkedStatements(); // and the tables and field names they are checked against
        checkBatchSizeAndTimeouts();
        checkControlSchema();
        checkConnectionProperties();
        checkCommitRetries();
        checkedRowErrorPolicy();
        checkedCommitLogRetentionSeconds();
        checkedPreparedTransactionWarningSeconds();
        checkedOwnerWaitMillis();
    }

    private void checkJdbcUrl() {
        if (jdbcUrl == null || jdbcUrl.isBlank()) {
            throw invalid(
                    "setJdbcUrl",
                    "the JDBC URL is required: " + "jdbc:postgresql://host:port/database");
        }
        if (PASSWORD_IN_URL.matcher(jdbcUrl).find()) {
            throw invalid(
                    "setJdbcUrl",
                    "the JDBC URL " + quote(SinkConfig.redactUrl(jdbcUrl))
                            + " holds a password: do not put it there (it would reach logs and the "
                            + "web UI); name where it is read instead: setPasswordEnv "
                            + "or setPasswordFile (from Python: set_password_env('PGPASSWORD') "
                            + "or set_password_file(path))");
        }
        for (String name : SinkConfig.urlParameters(jdbcUrl).keySet()) {
            if (OWN_PROPERTIES.containsKey(name)) {
                // pgjdbc would let the URL's value replace the sink's own.
                throw invalid(
                        "setJdbcUrl",
                        "the JDBC URL sets " + quote(name) + ", which the sink sets on every "
                                + "connection: leave it out of the URL: "
                                + OWN_PROPERTIES.get(name));
            }
        }
        if (!jdbcUrl.startsWith("jdbc:postgresql:")) {
            throw invalid(
                    "setJdbcUrl",
                    "the JDBC URL " + quote(jdbcUrl) + " is not "
                            + "PostgreSQL's: use jdbc:postgresql://host:port/database");
        }
    }

    private void checkPasswordSource() {
        int given = (password != null ? 1 : 0)
                + (passwordEnv != null ? 1 : 0)
                + (passwordFile != null ? 1 : 0);
        if (given > 1) {
            throw invalid(
                    passwordFile != null ? "setPasswordFile" : "setPasswordEnv",
                    "the password has more than one source: set only one of setPasswordEnv (an "
                            + "environment variable), setPasswordFile (a file) or setPassword");
        }
        if (passwordEnv != null && !passwordEnv.matches("[A-Za-z_][A-Za-z0-9_]*")) {
            throw invalid(
                    "setPasswordEnv",
                    "the environment variable's name is invalid (not shown: it may be the "
                            + "password given by mistake): give the variable's name (letters, "
                            + "digits, _), not its value");
        }
        if (passwordFile != null && passwordFile.isBlank()) {
            throw invalid("setPasswordFile", "the password file's path is empty");
        }
    }

    private void checkSinkId() {
        if (sinkId == null || !SINK_ID.matcher(sinkId).matches()) {
            throw invalid(
                    "setSinkId",
                    (sinkId == null
                                    ? "the sink id is required"
                                    : "sink id " + quote(sinkId) + " is invalid")
                            + ": use 1 to 64 characters from A-Z a-z 0-9 _ - (it becomes part of "
                            + "PostgreSQL transaction ids), stable and unique per database among "
                            + "running jobs");
        }
    }

    /** The commit mode. */
    CommitMode checkedMode() {
        return parsed("setMode", mode, CommitMode::parse);
    }

    /** The commit scope, which must suit the mode (checked first). */
    CommitScope checkedCommitScope() {
        CommitMode parsedMode = checkedMode();
        CommitScope scope = parsed("setCommitScope", commitScope, CommitScope::parse);
        if (scope == CommitScope.CHECKPOINT && parsedMode != CommitMode.STAGED) {
            throw invalid(
                    "setCommitScope",
                    "commit scope 'checkpoint' needs commit mode 'staged' (got '"
                            + parsedMode.name().toLowerCase(Locale.ROOT)
                            + "', setMode): one transaction applies every subtask's staged "
                            + "rows, and prepared transactions of several sessions cannot be "
                            + "committed as one");
        }
        return scope;
    }

    /**
     * The field names of the sink's one unnamed table: those set, or, with named tables and
     * neither field names nor statements of its own, the first table's.
     */
    List<String> checkedFieldNames() {
        return inheritsFirstTable(checkedTables())
                ? checkedTables().get(0).fieldNames()
                : fieldNames;
    }

    private boolean inheritsFirstTable(List<TableSpec> namedTables) {
        return !namedTables.isEmpty() && fieldNames.isEmpty() && statements.isEmpty();
    }

    /** The statements of the sink's one unnamed table, parsed and checked against its fields. */
    List<NamedStatement> checkedStatements() {
        List<TableSpec> namedTables = checkedTables();
        List<String> fieldNames = this.fieldNames;
        List<String> statements = this.statements;
        if (inheritsFirstTable(namedTables)) {
            fieldNames = namedTables.get(0).fieldNames();
            statements = tables.get(0).statements;
        }
        if (fieldNames.isEmpty()) {
            throw invalid(
                    "setFieldNames",
                    "the rows' field names are required: the sink "
                            + "binds :field parameters by name (from Python: set_row_type with the "
                            + "stream's Types.ROW_NAMED([...], [...]) output_type)");
        }
        if (statements.isEmpty()) {
            throw invalid(
                    "addStatement",
                    "give at least one SQL statement to run for "
                            + "every row, with :field parameters");
        }
        List<NamedStatement> parsed = new ArrayList<>();
        for (String sql : statements) {
            try {
                NamedStatement statement = NamedStatement.parse(sql);
                if (namedTables.isEmpty() && BatchStatement.readsBatch(sql)) {
                    throw new SinkConfigurationException("a statement reading "
                            + BatchStatement.RELATION + " needs the fields' SQL types: add "
                            + "it with addTable (Python: add_table(name, row_type, "
                            + "statements)): " + sql);
                }
                statement.bindIndexes(fieldNames); // fails early on unknown fields
                parsed.add(statement);
            } catch (SinkConfigurationException | NullPointerException e) {
                throw invalid("addStatement", sql == null ? "a statement is null" : e.getMessage());
            }
        }
        return parsed;
    }

    private void checkBatchSizeAndTimeouts() {
        if (batchSize < 1) {
            throw invalid(
                    "setBatchSize",
                    "batch size " + batchSize + " is invalid: use at "
                            + "least 1 (rows per JDBC batch; default " + DEFAULT_BATCH_SIZE
                            + ")");
        }
        atLeastZero(
                "setLockTimeoutMs",
                "lock timeout",
                lockTimeoutMs,
                "ms",
                DEFAULT_LOCK_TIMEOUT_MILLIS);
        atLeastZero(
                "setStatementTimeoutMs",
                "statement timeout",
                statementTimeoutMs,
                "ms",
                DEFAULT_STATEMENT_TIMEOUT_MILLIS);
        atLeastZero(
                "setSocketTimeoutS",
                "socket timeout",
                socketTimeoutS,
                "s",
                DEFAULT_SOCKET_TIMEOUT_SECONDS);
        atLeastZero(
                "setConnectTimeoutS",
                "connect timeout",
                connectTimeoutS,
                "s",
                DEFAULT_CONNECT_TIMEOUT_SECONDS);
        if (socketTimeoutS > 0
                && (statementTimeoutMs == 0 || socketTimeoutS * 1000L <= statementTimeoutMs)) {
            throw invalid(
                    "setSocketTimeoutS",
                    "the socket timeout (" + socketTimeoutS
                            + " s) must exceed the statement timeout (" + statementTimeoutMs
                            + " ms, setStatementTimeoutMs), or a long but legal statement would be "
                            + "cut off by the client and look like an outage; raise the socket "
                            + "timeout or set a statement timeout below it");
        }
    }

    private void checkControlSchema() {
        if (controlSchema == null || !SCHEMA.matcher(controlSchema).matches()) {
            throw invalid(
                    "setControlSchema",
                    "control schema " + quote(controlSchema)
                            + " is invalid: use a lower-case SQL identifier such as 'public'");
        }
    }

    private void checkConnectionProperties() {
        for (Map.Entry<String, String> property : connectionProperties.entrySet()) {
            String key = property.getKey();
            if (key == null || key.isBlank()) {
                throw invalid("setConnectionProperty", "a connection property needs a name");
            }
            if (OWN_PROPERTIES.containsKey(key)) {
                throw invalid(
                        "setConnectionProperty",
                        "connection property " + quote(key)
                                + " is set by the sink on every connection: "
                                + OWN_PROPERTIES.get(key));
            }
            if (property.getValue() == null) { // the value is never shown: it may be secret
                throw invalid(
                        "setConnectionProperty",
                        "connection property " + quote(key) + " needs a value");
            }
        }
    }

    private void checkCommitRetries() {
        if (maxCommitRetries < 0) {
            throw invalid(
                    "setMaxCommitRetries",
                    maxCommitRetries + " commit retries is "
                            + "invalid: use 0 or more (default " + DEFAULT_MAX_COMMIT_RETRIES
                            + "; more needs Flink's sink.committer.retries raised too)");
        }
        if (commitRetryInitialMs < 0 || commitRetryMaxMs < commitRetryInitialMs) {
            throw invalid(
                    "setCommitRetryBackoffMs",
                    "a back-off from "
                            + commitRetryInitialMs + " ms up to " + commitRetryMaxMs + " ms is "
                            + "invalid: need 0 <= initial <= maximum (default "
                            + DEFAULT_COMMIT_RETRY_INITIAL_MILLIS + " to "
                            + DEFAULT_COMMIT_RETRY_MAX_MILLIS + ")");
        }
    }

    RowErrorPolicy checkedRowErrorPolicy() {
        return parsed("setOnRowError", onRowError, RowErrorPolicy::parse);
    }

    long checkedCommitLogRetentionSeconds() {
        return wholeSeconds(
                "setCommitLogRetentionHours",
                "a commit-log retention of " + plain(commitLogRetentionHours) + " hours",
                commitLogRetentionHours * 3600,
                "keep commit-log rows at least 1 second "
                        + "(default " + DEFAULT_COMMIT_LOG_RETENTION_SECONDS / 3600
                        + " hours; see sinks/README.md)");
    }

    long checkedPreparedTransactionWarningSeconds() {
        return wholeSeconds(
                "setPreparedTransactionWarningS",
                "a prepared-transaction warning threshold of " + plain(preparedTransactionWarningS)
                        + " s",
                preparedTransactionWarningS,
                "use at least 1 second (default " + DEFAULT_PREPARED_TRANSACTION_WARNING_SECONDS
                        + ")");
    }

    long checkedOwnerWaitMillis() {
        if (!Double.isFinite(ownerWaitS) || ownerWaitS < 0) {
            throw invalid(
                    "setOwnerWaitS",
                    "an owner wait of " + plain(ownerWaitS) + " s is "
                            + "invalid: use 0 (refuse at once) or more seconds (default "
                            + DEFAULT_OWNER_WAIT_MILLIS / 1000 + ")");
        }
        return Math.round(ownerWaitS * 1000);
    }

    /** The added tables, each checked; the first bad one named, as {@code addTable}'s. */
    List<TableSpec> checkedTables() {
        checkTableCount(tables.size());
        List<TableSpec> specs = new ArrayList<>();
        java.util.Set<String> names = new java.util.HashSet<>();
        for (TableSettings table : tables) {
            String name = table.name;
            TableSpec spec;
            try {
                spec = TableSpec.of(name, table.fieldNames, table.statements, table.sqlTypes);
            } catch (SinkConfigurationException | NullPointerException e) {
                throw invalid(
                        "addTable",
                        e instanceof NullPointerException
                                ? "table " + quote(name) + ": a statement is null"
                                : e.getMessage());
            }
            if (!names.add(name)) {
                throw invalid("addTable", "table " + quote(name) + " is added twice");
            }
            specs.add(spec);
        }
        return specs;
    }

    /** A staged row's sequence number has room for {@link SinkConfig#MAX_TABLES} table indexes. */
    static void checkTableCount(int tables) {
        if (tables > MAX_TABLES) {
            throw invalid(
                    "addTable", tables + " tables in one sink are too many: at most " + MAX_TABLES);
        }
    }

    /** One {@link #addTable} call, as given: checked in {@link #sanityCheck()}. */
    private static final class TableSettings {
        final String name;
        final List<String> fieldNames;
        final List<String> statements;
        final List<String> sqlTypes;

        TableSettings(
                String name,
                List<String> fieldNames,
                List<String> statements,
                List<String> sqlTypes) {
            this.name = name;
            this.fieldNames = fieldNames == null ? null : new ArrayList<>(fieldNames);
            this.statements = statements == null ? null : new ArrayList<>(statements);
            this.sqlTypes = sqlTypes == null ? null : new ArrayList<>(sqlTypes);
        }
    }

    private static SinkConfigurationException invalid(String setter, String problem) {
        return new SinkConfigurationException(setter + ": " + problem);
    }

    /** {@code parse(text)}, its error (which names the value) attributed to the setter. */
    private static <T> T parsed(String setter, String text, Function<String, T> parse) {
        try {
            return parse.apply(text);
        } catch (SinkConfigurationException e) {
            throw invalid(setter, e.getMessage());
        }
    }

    private static String quote(String value) {
        return value == null ? "null" : "'" + value + "'";
    }

    /** 0.0001 rather than 1.0E-4, 0 rather than 0.0: as the number was most likely written. */
    private static String plain(double value) {
        return Double.isFinite(value)
                ? new BigDecimal(Double.toString(value)).stripTrailingZeros().toPlainString()
                : Double.toString(value);
    }

    private static void atLeastZero(
            String setter, String what, long value, String unit, long fallback) {
        if (value < 0) {
            throw invalid(
                    setter,
                    "a " + what + " of " + value + " " + unit + " is invalid: "
                            + "use 0 (none, not recommended) or more (default " + fallback + " "
                            + unit + ")");
        }
    }

    /** Whole seconds, rounded up (ignoring float noise below a microsecond), at least 1. */
    private static long wholeSeconds(String setter, String what, double seconds, String advice) {
        if (!Double.isFinite(seconds) || seconds < 1) {
            throw invalid(setter, what + " is invalid: " + advice);
        }
        return (long) Math.ceil(Math.round(seconds * 1e6) / 1e6);
    }
}
