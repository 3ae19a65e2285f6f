package dev.tpc.sink;

import java.io.Serializable;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Everything a sink needs at run time. Serialized into the job graph, so the password travels
 * with the job (as with Flink's JDBC connector); {@link #toString()} never shows it.
 *
 * <p>Created only by {@link Builder}, which holds the defaults and validates every setting once,
 * in {@link Builder#build()}. The Python builder ({@code sinks/two_phase_commit.py}) records its
 * settings and hands them to this builder, so its errors are these messages, with the setters
 * named the Python way ({@code setBatchSize} becomes {@code set_batch_size}): keep every Java
 * setter the camel-case twin of its Python one, in the same unit.
 */
public final class SinkConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Sink ids become part of PREPARE TRANSACTION literals and LIKE-free prefixes. */
    public static final Pattern SINK_ID = Pattern.compile("[A-Za-z0-9_-]{1,64}");

    /** Tables of one sink: a staged row's sequence number holds its table's index. */
    public static final int MAX_TABLES = (1 << (63 - TableSpec.SEQ_TABLE_SHIFT)) - 1;

    public static final Pattern SCHEMA = Pattern.compile("[a-z_][a-z0-9_]{0,62}");

    /** A password in the URL would reach logs and the web UI. */
    private static final Pattern PASSWORD_IN_URL = Pattern.compile("(?i)password=");

    /** pgjdbc properties the sink sets on every connection, and what to do instead. */
    private static final Map<String, String> OWN_PROPERTIES = Map.of(
            "connectTimeout", "use setConnectTimeoutS instead",
            "socketTimeout", "use setSocketTimeoutS instead",
            "tcpKeepAlive", "it is always on, so that a vanished server is noticed");

    public static final CommitMode DEFAULT_MODE = CommitMode.STAGED;
    public static final int DEFAULT_BATCH_SIZE = 500;
    public static final String DEFAULT_CONTROL_SCHEMA = "public";
    public static final RowErrorPolicy DEFAULT_ROW_ERROR_POLICY = RowErrorPolicy.FAIL;

    private final String jdbcUrl;
    private final String user;
    private final String password;
    private final String sinkId;
    private final CommitMode mode;
    private final List<NamedStatement> statements;
    private final List<String> fieldNames;
    private final int batchSize;
    private final long lockTimeoutMillis;
    private final String controlSchema;
    private final Map<String, String> connectionProperties;
    private final int maxCommitRetries;
    private final long statementTimeoutMillis;
    private final int socketTimeoutSeconds;
    private final int connectTimeoutSeconds;
    private final long commitRetryInitialMillis;
    private final long commitRetryMaxMillis;
    private final RowErrorPolicy rowErrorPolicy;
    private final long commitLogRetentionSeconds;
    private final long preparedTransactionWarningSeconds;
    /*
     * How long a writer waits for another job's session to release its (sink id, subtask)
     * before refusing to start (WriterFence). Above the ~60 s after which the server's TCP
     * keepalives (below) end the session of a job that died without closing its connections,
     * so that a job resumed right after a crash is not refused.
     */
    public static final long DEFAULT_OWNER_WAIT_MILLIS = 90_000;
    private final long ownerWaitMillis;
    /*
     * Whether a row applied a second time leaves the tables as they were (Builder
     * #setIdempotentStatements): only then may a start that restores no checkpoint write
     * through a sink id that already committed (PgWriter refuses it otherwise).
     */
    private final boolean idempotentStatements;
    private final CommitScope commitScope;
    /** Named inputs ({@link Builder#addTable}); empty: one unnamed table, the builder's own. */
    private final List<TableSpec> namedTables;
    /** Without named inputs, the sink's one table: its field names and statements. */
    private final TableSpec singleTable;

    /*
     * Timeouts, chosen as a chain so that every wait ends, and ends in the right order:
     *   lock_timeout (30 s) < statement_timeout (60 s) < socket timeout (90 s)
     *       < Flink's task.cancellation.timeout (180 s).
     * A lock wait fails as a lock wait (55P03, with the hot-key explanation), not as a cancelled
     * statement; a statement is cancelled by the server (57014) before the client gives up on
     * the socket; and a read stuck on a dead or hung server (a socket read cannot be interrupted)
     * ends before Flink's cancellation watchdog would kill the whole TaskManager. 60 s is far
     * above any statement the sink runs (a batch of rows, COMMIT PREPARED, a staged checkpoint
     * applied in batches); raise it with the socket timeout for very large checkpoints.
     */
    public static final long DEFAULT_LOCK_TIMEOUT_MILLIS = 30_000;
    public static final long DEFAULT_STATEMENT_TIMEOUT_MILLIS = 60_000;
    public static final int DEFAULT_SOCKET_TIMEOUT_SECONDS = 90;
    public static final int DEFAULT_CONNECT_TIMEOUT_SECONDS = 10;
    /*
     * Commit retries (see PgCommitter): Flink retries a commit at most sink.committer.retries
     * times (default 10), back to back, so the committer sleeps between them: 0.5 s doubling to
     * at most 10 s, i.e. 0.5+1+2+4+8+10+10+10+10+10 = 65.5 s over 10 retries. That rides out a
     * database restart or a one-minute outage of the committer alone without a failover, and
     * stays well inside the 2-minute checkpoint timeout (a sleeping committer holds up its
     * task's checkpoints, and an expired checkpoint fails the job). Longer outages are ridden
     * out by the job's exponential-delay restart strategy (flink-conf/config.yaml).
     */
    public static final int DEFAULT_MAX_COMMIT_RETRIES = 10;
    public static final long DEFAULT_COMMIT_RETRY_INITIAL_MILLIS = 500;
    public static final long DEFAULT_COMMIT_RETRY_MAX_MILLIS = 10_000;
    /*
     * Housekeeping (see Housekeeping): commit-log rows are kept 7 days, far longer than anyone
     * restores a checkpoint after; and a prepared transaction of this sink older than 15
     * minutes is warned about: the sink's own live only from a checkpoint's pre-commit to its
     * commit (seconds), while every prepared transaction holds back VACUUM for the whole server.
     */
    public static final long DEFAULT_COMMIT_LOG_RETENTION_SECONDS = 7 * 24 * 3600;
    public static final long DEFAULT_PREPARED_TRANSACTION_WARNING_SECONDS = 15 * 60;

    /** Only {@link Builder#build()} creates a configuration, after validating every setting. */
    private SinkConfig(
            Builder settings,
            CommitMode mode,
            List<String> fieldNames,
            List<NamedStatement> statements,
            RowErrorPolicy rowErrorPolicy,
            long commitLogRetentionSeconds,
            long preparedTransactionWarningSeconds,
            long ownerWaitMillis,
            CommitScope commitScope,
            List<TableSpec> namedTables) {
        this.jdbcUrl = settings.jdbcUrl;
        this.user = settings.user;
        this.password = settings.password;
        this.sinkId = settings.sinkId;
        this.mode = mode;
        this.statements = Collections.unmodifiableList(statements);
        this.fieldNames = Collections.unmodifiableList(new ArrayList<>(fieldNames));
        this.batchSize = settings.batchSize;
        this.lockTimeoutMillis = settings.lockTimeoutMs;
        this.controlSchema = settings.controlSchema;
        this.connectionProperties =
                Collections.unmodifiableMap(new LinkedHashMap<>(settings.connectionProperties));
        this.maxCommitRetries = settings.maxCommitRetries;
        this.statementTimeoutMillis = settings.statementTimeoutMs;
        this.socketTimeoutSeconds = settings.socketTimeoutS;
        this.connectTimeoutSeconds = settings.connectTimeoutS;
        this.commitRetryInitialMillis = settings.commitRetryInitialMs;
        this.commitRetryMaxMillis = settings.commitRetryMaxMs;
        this.rowErrorPolicy = rowErrorPolicy;
        this.commitLogRetentionSeconds = commitLogRetentionSeconds;
        this.preparedTransactionWarningSeconds = preparedTransactionWarningSeconds;
        this.ownerWaitMillis = ownerWaitMillis;
        this.idempotentStatements = settings.idempotentStatements;
        this.commitScope = commitScope;
        this.namedTables = Collections.unmodifiableList(new ArrayList<>(namedTables));
        this.singleTable = new TableSpec("", this.fieldNames, this.statements);
    }

    /** A builder with every setting at its default; {@link Builder#build()} validates. */
    public static Builder builder() {
        return new Builder();
    }

    static String redactUrl(String url) {
        return url == null ? null : url.replaceAll("(?i)(password=)[^&]*", "$1***");
    }

    public Properties jdbcProperties(String applicationName) {
        Properties props = new Properties();
        props.putAll(connectionProperties);
        if (user != null) {
            props.setProperty("user", user);
        }
        if (password != null) {
            props.setProperty("password", password);
        }
        // Not reWriteBatchedInserts: it folds a batch of upserts into one multi-row INSERT,
        // which PostgreSQL rejects when two rows hit the same key ("ON CONFLICT DO UPDATE
        // command cannot affect row a second time").
        // Every connection (writers, committers, the preflight check) gets the same bounds:
        // connecting, reading (pgjdbc's socketTimeout, also during login), and TCP keepalive.
        props.setProperty("connectTimeout", Integer.toString(connectTimeoutSeconds));
        props.setProperty("socketTimeout", Integer.toString(socketTimeoutSeconds));
        props.setProperty("tcpKeepAlive", "true");
        // Server-side session settings travel in the startup packet, so they hold from the
        // first statement on. The keepalives make the server notice a vanished client (a
        // killed or partitioned TaskManager) within about a minute and release its locks,
        // instead of the kernel's two hours. A user's own `options` come last and win.
        String options = "-c lock_timeout=" + lockTimeoutMillis
                + " -c statement_timeout=" + statementTimeoutMillis
                + " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10"
                + " -c tcp_keepalives_count=3";
        String own = connectionProperties.get("options");
        props.setProperty("options", own == null || own.isBlank() ? options : options + " " + own);
        props.setProperty("ApplicationName", applicationName);
        return props;
    }

    /** The session settings every connection gets, without credentials (for logs and tests). */
    public String sessionOptions() {
        return jdbcProperties("-").getProperty("options");
    }

    /**
     * Whether strings are bound untyped ({@code stringtype=unspecified}, in the URL or the
     * connection properties), so that PostgreSQL casts them to the target column's type (uuid,
     * jsonb, enums). An array cannot be untyped: such string fields are then applied row by row.
     */
    public boolean stringsUntyped() {
        String property = connectionProperties.get("stringtype");
        return "unspecified".equalsIgnoreCase(property)
                || (property == null
                        && jdbcUrl.toLowerCase(java.util.Locale.ROOT)
                                .matches(".*[?&]stringtype=unspecified(&.*)?"));
    }

    /** What to do with rows the database refuses ({@link RowErrorPolicy}). */
    public RowErrorPolicy rowErrorPolicy() {
        return rowErrorPolicy;
    }

    /**
     * How long commit-log rows of this sink id are kept. The newest row of each job lineage and
     * subtask is kept whatever its age (see {@link Housekeeping#trimCommitLog}).
     */
    public long commitLogRetentionSeconds() {
        return commitLogRetentionSeconds;
    }

    /** Age above which the committer warns about this sink id's prepared transactions. */
    public long preparedTransactionWarningSeconds() {
        return preparedTransactionWarningSeconds;
    }

    /** See {@link #DEFAULT_OWNER_WAIT_MILLIS}. */
    public long ownerWaitMillis() {
        return ownerWaitMillis;
    }

    /**
     * What one committing transaction covers ({@link CommitScope}: "subtask", the default, or
     * "checkpoint", which needs staged mode); see {@link Builder#setCommitScope}.
     */
    public CommitScope commitScope() {
        return commitScope;
    }

    /** Whether rows arrive as envelopes of named tables ({@link Builder#addTable}). */
    public boolean isMultiTable() {
        return !namedTables.isEmpty();
    }

    /** The tables, in the order they are applied: the named ones, or the one unnamed table. */
    public List<TableSpec> tables() {
        return namedTables.isEmpty() ? List.of(singleTable) : namedTables;
    }

    /** The index of a named table, for envelopes. */
    public int tableIndex(String name) {
        for (int i = 0; i < namedTables.size(); i++) {
            if (namedTables.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new SinkConfigurationException(
                "sink '" + sinkId + "' has no table '" + name + "'; its tables are " + namedTables);
    }

    public String jdbcUrl() {
        return jdbcUrl;
    }

    public String sinkId() {
        return sinkId;
    }

    public CommitMode mode() {
        return mode;
    }

    public List<NamedStatement> statements() {
        return statements;
    }

    public List<String> fieldNames() {
        return fieldNames;
    }

    public int batchSize() {
        return batchSize;
    }

    public long lockTimeoutMillis() {
        return lockTimeoutMillis;
    }

    public String controlSchema() {
        return controlSchema;
    }

    public int maxCommitRetries() {
        return maxCommitRetries;
    }

    /** Whether the statements may apply a row again without effect: see the builder's setter. */
    public boolean idempotentStatements() {
        return idempotentStatements;
    }

    public long statementTimeoutMillis() {
        return statementTimeoutMillis;
    }

    public int socketTimeoutSeconds() {
        return socketTimeoutSeconds;
    }

    /**
     * How long the committer waits before retry number {@code retry + 1} of a commit that failed
     * with a transient error: doubling from the initial back-off, capped at the maximum.
     */
    public long commitRetryDelayMillis(int retry) {
        long delay = commitRetryInitialMillis;
        for (int i = 0; i < retry && delay < commitRetryMaxMillis; i++) {
            delay *= 2;
        }
        return Math.min(delay, commitRetryMaxMillis);
    }

    @Override
    public String toString() {
        return "SinkConfig{sinkId=" + sinkId + ", mode=" + mode + ", url=" + redactUrl(jdbcUrl)
                + ", user=" + user + ", statements=" + statements.size() + ", batchSize="
                + batchSize + ", lockTimeoutMs=" + lockTimeoutMillis + ", statementTimeoutMs="
                + statementTimeoutMillis + ", socketTimeoutS=" + socketTimeoutSeconds
                + ", connectTimeoutS=" + connectTimeoutSeconds + ", commitRetries="
                + maxCommitRetries + ", commitLogRetentionS=" + commitLogRetentionSeconds
                + ", preparedWarningS=" + preparedTransactionWarningSeconds
                + (idempotentStatements ? ", idempotentStatements" : "")
                + ", scope=" + commitScope
                + (namedTables.isEmpty() ? "" : ", tables=" + namedTables) + "}";
    }

    /**
     * Settings with their defaults; {@link #build()} validates them all, at once, and says for a
     * bad one which setter, what value, and what to do. Setters only record (a setter may be
     * called again, later calls win), so the order of calls does not matter.
     */
    public static final class Builder {
        private String jdbcUrl;
        private String user;
        private String password;
        private String sinkId;
        private String mode = DEFAULT_MODE.name().toLowerCase(Locale.ROOT);
        private final List<String> statements = new ArrayList<>();
        private List<String> fieldNames = new ArrayList<>();
        private int batchSize = DEFAULT_BATCH_SIZE;
        private long lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MILLIS;
        private long statementTimeoutMs = DEFAULT_STATEMENT_TIMEOUT_MILLIS;
        private int socketTimeoutS = DEFAULT_SOCKET_TIMEOUT_SECONDS;
        private int connectTimeoutS = DEFAULT_CONNECT_TIMEOUT_SECONDS;
        private String controlSchema = DEFAULT_CONTROL_SCHEMA;
        private final Map<String, String> connectionProperties = new LinkedHashMap<>();
        private int maxCommitRetries = DEFAULT_MAX_COMMIT_RETRIES;
        private long commitRetryInitialMs = DEFAULT_COMMIT_RETRY_INITIAL_MILLIS;
        private long commitRetryMaxMs = DEFAULT_COMMIT_RETRY_MAX_MILLIS;
        private String onRowError = DEFAULT_ROW_ERROR_POLICY.name().toLowerCase(Locale.ROOT);
        private double commitLogRetentionHours = DEFAULT_COMMIT_LOG_RETENTION_SECONDS / 3600.0;
        private double preparedTransactionWarningS = DEFAULT_PREPARED_TRANSACTION_WARNING_SECONDS;
        private double ownerWaitS = DEFAULT_OWNER_WAIT_MILLIS / 1000.0;
        private boolean idempotentStatements = false;
        private String commitScope = CommitScope.SUBTASK.name().toLowerCase(Locale.ROOT);
        /** The {@link #addTable} calls, in order. */
        private final List<TableSettings> tables = new ArrayList<>();

        private Builder() {}

        /** {@code jdbc:postgresql://host:port/database}, without a password. Required. */
        public Builder setJdbcUrl(String url) {
            this.jdbcUrl = url;
            return this;
        }

        public Builder setUser(String user) {
            this.user = user;
            return this;
        }

        /** Never shown in messages, logs or {@link SinkConfig#toString()}. */
        public Builder setPassword(String password) {
            this.password = password;
            return this;
        }

        /** Stable, unique per database among running jobs; part of every transaction id. Required. */
        public Builder setSinkId(String sinkId) {
            this.sinkId = sinkId;
            return this;
        }

        /** {@code prepared}, {@code staged} (default) or {@code at_least_once}. */
        public Builder setMode(String mode) {
            this.mode = mode;
            return this;
        }

        /** A statement run for every row, with {@code :field} parameters. At least one. */
        public Builder addStatement(String sql) {
            statements.add(sql);
            return this;
        }

        /** Replaces the statements added so far. */
        public Builder setStatements(List<String> statements) {
            this.statements.clear();
            if (statements != null) {
                this.statements.addAll(statements);
            }
            return this;
        }

        /** The rows' field names, which the {@code :field} parameters name. Required. */
        public Builder setFieldNames(List<String> fieldNames) {
            this.fieldNames = fieldNames == null ? new ArrayList<>() : new ArrayList<>(fieldNames);
            return this;
        }

        /** Rows sent to PostgreSQL per JDBC batch. */
        public Builder setBatchSize(int rows) {
            this.batchSize = rows;
            return this;
        }

        /** 0: wait for locks forever (not recommended). */
        public Builder setLockTimeoutMs(long millis) {
            this.lockTimeoutMs = millis;
            return this;
        }

        /** Must stay below the socket timeout; 0: none. */
        public Builder setStatementTimeoutMs(long millis) {
            this.statementTimeoutMs = millis;
            return this;
        }

        /** Must exceed the statement timeout and stay below Flink's 180 s cancellation watchdog. */
        public Builder setSocketTimeoutS(int seconds) {
            this.socketTimeoutS = seconds;
            return this;
        }

        public Builder setConnectTimeoutS(int seconds) {
            this.connectTimeoutS = seconds;
            return this;
        }

        /** Schema of the sink's own tables (commit log, staging, dead letters). */
        public Builder setControlSchema(String schema) {
            this.controlSchema = schema;
            return this;
        }

        /** A pgjdbc property; timeouts and keepalive have their own setters. */
        public Builder setConnectionProperty(String key, String value) {
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
        public Builder setIdempotentStatements(boolean idempotent) {
            this.idempotentStatements = idempotent;
            return this;
        }

        /** Retries of a commit that failed with a transient error, before the job restarts. */
        public Builder setMaxCommitRetries(int retries) {
            this.maxCommitRetries = retries;
            return this;
        }

        /** The wait before a commit retry: {@code initial}, doubling up to {@code maximum}. */
        public Builder setCommitRetryBackoffMs(long initial, long maximum) {
            this.commitRetryInitialMs = initial;
            this.commitRetryMaxMs = maximum;
            return this;
        }

        /** {@code fail} (default) or {@code dead_letter}: see {@link RowErrorPolicy}. */
        public Builder setOnRowError(String policy) {
            this.onRowError = policy;
            return this;
        }

        /** At least 1 second's worth; rounded up to whole seconds. */
        public Builder setCommitLogRetentionHours(double hours) {
            this.commitLogRetentionHours = hours;
            return this;
        }

        /** At least 1; rounded up to whole seconds. */
        public Builder setPreparedTransactionWarningS(double seconds) {
            this.preparedTransactionWarningS = seconds;
            return this;
        }

        /** See {@link #DEFAULT_OWNER_WAIT_MILLIS}; 0: refuse at once. */
        public Builder setOwnerWaitS(double seconds) {
            this.ownerWaitS = seconds;
            return this;
        }

        /**
         * What one committing transaction covers: {@code subtask} (default) or {@code checkpoint}
         * (needs {@code setMode("staged")}): see {@link CommitScope}.
         */
        public Builder setCommitScope(String scope) {
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
        public Builder addTable(String name, List<String> fieldNames, List<String> statements) {
            return addTable(name, fieldNames, statements, null);
        }

        /**
         * {@link #addTable(String, List, List)} with the SQL type of each field (e.g. {@code
         * text}, {@code int8}, {@code numeric}, {@code bytea}): needed by a statement that reads
         * the batch as the relation {@code tpc_batch} ({@link BatchStatement}).
         */
        public Builder addTable(
                String name,
                List<String> fieldNames,
                List<String> statements,
                List<String> sqlTypes) {
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
            if (jdbcUrl == null || jdbcUrl.isBlank()) {
                throw invalid(
                        "setJdbcUrl",
                        "the JDBC URL is required: " + "jdbc:postgresql://host:port/database");
            }
            if (PASSWORD_IN_URL.matcher(jdbcUrl).find()) {
                throw invalid(
                        "setJdbcUrl",
                        "the JDBC URL " + quote(redactUrl(jdbcUrl))
                                + " holds a password: do not put it there (it would reach logs and the "
                                + "web UI); pass it with setPassword, read from the environment (from "
                                + "Python: set_password_env('PGPASSWORD'))");
            }
            if (!jdbcUrl.startsWith("jdbc:postgresql:")) {
                throw invalid(
                        "setJdbcUrl",
                        "the JDBC URL " + quote(jdbcUrl) + " is not "
                                + "PostgreSQL's: use jdbc:postgresql://host:port/database");
            }
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
            CommitMode parsedMode = parsed("setMode", mode, CommitMode::parse);
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
            List<TableSpec> namedTables = namedTables();
            List<String> fieldNames = this.fieldNames;
            List<String> statements = this.statements;
            if (!namedTables.isEmpty() && fieldNames.isEmpty() && statements.isEmpty()) {
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
                    throw invalid(
                            "addStatement", sql == null ? "a statement is null" : e.getMessage());
                }
            }
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
            if (controlSchema == null || !SCHEMA.matcher(controlSchema).matches()) {
                throw invalid(
                        "setControlSchema",
                        "control schema " + quote(controlSchema)
                                + " is invalid: use a lower-case SQL identifier such as 'public'");
            }
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
            RowErrorPolicy policy = parsed("setOnRowError", onRowError, RowErrorPolicy::parse);
            long retentionSeconds = wholeSeconds(
                    "setCommitLogRetentionHours",
                    "a commit-log retention of " + plain(commitLogRetentionHours) + " hours",
                    commitLogRetentionHours * 3600,
                    "keep commit-log rows at least 1 second "
                            + "(default " + DEFAULT_COMMIT_LOG_RETENTION_SECONDS / 3600
                            + " hours; see sinks/README.md)");
            long warningSeconds = wholeSeconds(
                    "setPreparedTransactionWarningS",
                    "a prepared-transaction warning threshold of "
                            + plain(preparedTransactionWarningS) + " s",
                    preparedTransactionWarningS,
                    "use at least 1 second (default " + DEFAULT_PREPARED_TRANSACTION_WARNING_SECONDS
                            + ")");
            if (!Double.isFinite(ownerWaitS) || ownerWaitS < 0) {
                throw invalid(
                        "setOwnerWaitS",
                        "an owner wait of " + plain(ownerWaitS) + " s is "
                                + "invalid: use 0 (refuse at once) or more seconds (default "
                                + DEFAULT_OWNER_WAIT_MILLIS / 1000 + ")");
            }
            return new SinkConfig(
                    this,
                    parsedMode,
                    fieldNames,
                    parsed,
                    policy,
                    retentionSeconds,
                    warningSeconds,
                    Math.round(ownerWaitS * 1000),
                    scope,
                    namedTables);
        }

        /** The added tables, each checked; the first bad one named, as {@code addTable}'s. */
        private List<TableSpec> namedTables() {
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

        /** A staged row's sequence number has room for {@link #MAX_TABLES} table indexes. */
        static void checkTableCount(int tables) {
            if (tables > MAX_TABLES) {
                throw invalid(
                        "addTable",
                        tables + " tables in one sink are too many: at most " + MAX_TABLES);
            }
        }

        /** One {@link #addTable} call, as given: checked in {@link #build()}. */
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
                    ? new BigDecimal(Double.toString(value))
                            .stripTrailingZeros()
                            .toPlainString()
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
        private static long wholeSeconds(
                String setter, String what, double seconds, String advice) {
            if (!Double.isFinite(seconds) || seconds < 1) {
                throw invalid(setter, what + " is invalid: " + advice);
            }
            return (long) Math.ceil(Math.round(seconds * 1e6) / 1e6);
        }
    }
}
