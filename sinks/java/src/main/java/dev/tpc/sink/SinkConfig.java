package dev.tpc.sink;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Pattern;

/**
 * Everything a sink needs at run time. Serialized into the job graph, so it holds where the
 * password comes from (an environment variable's name or a file's path), not the password:
 * {@link #jdbcProperties} reads it in the process that opens the connection, when it opens it.
 * Only {@link SinkConfigBuilder#setPassword} puts a value here (tests and tools);
 * {@link #toString()} never shows it.
 *
 * <p>Immutable. Created only by {@link SinkConfigBuilder} ({@link #builder()}), which holds the
 * defaults and validates every setting once, in {@link SinkConfigBuilder#build()}.
 */
public final class SinkConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Sink ids become part of PREPARE TRANSACTION literals and LIKE-free prefixes. */
    public static final Pattern SINK_ID = Pattern.compile("[A-Za-z0-9_-]{1,64}");

    /** Tables of one sink: a staged row's sequence number holds its table's index. */
    public static final int MAX_TABLES = (1 << (63 - TableSpec.SEQ_TABLE_SHIFT)) - 1;

    public static final Pattern SCHEMA = Pattern.compile("[a-z_][a-z0-9_]{0,62}");

    public static final CommitMode DEFAULT_MODE = CommitMode.STAGED;
    public static final int DEFAULT_BATCH_SIZE = 500;
    public static final String DEFAULT_CONTROL_SCHEMA = "public";
    public static final RowErrorPolicy DEFAULT_ROW_ERROR_POLICY = RowErrorPolicy.FAIL;

    private final String jdbcUrl;
    private final String user;
    private final String password;
    private final String passwordEnv;
    private final String passwordFile;
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
     * Whether a row applied a second time leaves the tables as they were (SinkConfigBuilder
     * #setIdempotentStatements): only then may a start that restores no checkpoint write
     * through a sink id that already committed (PgWriter refuses it otherwise).
     */
    private final boolean idempotentStatements;
    private final CommitScope commitScope;
    /** Named inputs ({@link SinkConfigBuilder#addTable}); empty: one unnamed table, the builder's own. */
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

    /** Only {@link SinkConfigBuilder#build()} creates a configuration, after its sanity check. */
    SinkConfig(SinkConfigBuilder settings) {
        this.jdbcUrl = settings.jdbcUrl;
        this.user = settings.user;
        this.password = settings.password;
        this.passwordEnv = settings.passwordEnv;
        this.passwordFile = settings.passwordFile;
        this.sinkId = settings.sinkId;
        this.mode = settings.checkedMode();
        this.statements = Collections.unmodifiableList(settings.checkedStatements());
        this.fieldNames =
                Collections.unmodifiableList(new ArrayList<>(settings.checkedFieldNames()));
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
        this.rowErrorPolicy = settings.checkedRowErrorPolicy();
        this.commitLogRetentionSeconds = settings.checkedCommitLogRetentionSeconds();
        this.preparedTransactionWarningSeconds =
                settings.checkedPreparedTransactionWarningSeconds();
        this.ownerWaitMillis = settings.checkedOwnerWaitMillis();
        this.idempotentStatements = settings.idempotentStatements;
        this.commitScope = settings.checkedCommitScope();
        this.namedTables = Collections.unmodifiableList(new ArrayList<>(settings.checkedTables()));
        this.singleTable = new TableSpec("", this.fieldNames, this.statements);
    }

    /** A builder with every setting at its default; {@link SinkConfigBuilder#build()} validates. */
    public static SinkConfigBuilder builder() {
        return new SinkConfigBuilder();
    }

    /**
     * The URL's query parameters as pgjdbc reads them (names as written, values decoded), in
     * order. pgjdbc lets them override the connection properties, so the sink looks at them.
     */
    static Map<String, String> urlParameters(String url) {
        Map<String, String> parameters = new LinkedHashMap<>();
        int query = url == null ? -1 : url.indexOf('?');
        if (query < 0) {
            return parameters;
        }
        for (String pair : url.substring(query + 1).split("&")) {
            if (pair.isEmpty()) {
                continue;
            }
            int equals = pair.indexOf('=');
            String name = equals < 0 ? pair : pair.substring(0, equals);
            String value = equals < 0 ? "" : pair.substring(equals + 1);
            parameters.put(name, java.net.URLDecoder.decode(value, StandardCharsets.UTF_8));
        }
        return parameters;
    }

    /** The URL without the query parameters {@code names}. */
    static String withoutParameters(String url, java.util.Set<String> names) {
        int query = url.indexOf('?');
        if (query < 0) {
            return url;
        }
        List<String> kept = new ArrayList<>();
        for (String pair : url.substring(query + 1).split("&")) {
            int equals = pair.indexOf('=');
            String name = equals < 0 ? pair : pair.substring(0, equals);
            if (!pair.isEmpty() && !names.contains(name)) {
                kept.add(pair);
            }
        }
        return url.substring(0, query) + (kept.isEmpty() ? "" : "?" + String.join("&", kept));
    }

    /**
     * The URL the sink connects with: its own, without {@code options} (merged into the
     * connection's, {@link #jdbcProperties}) and {@code ApplicationName} (the sink names its
     * sessions, so that {@code sinks.admin} and the fence find them); pgjdbc would let those
     * override the sink's.
     */
    public String connectionUrl() {
        return withoutParameters(jdbcUrl, URL_PARAMETERS_THE_SINK_SETS);
    }

    static final java.util.Set<String> URL_PARAMETERS_THE_SINK_SETS =
            java.util.Set.of("options", "ApplicationName");

    static String redactUrl(String url) {
        return url == null ? null : url.replaceAll("(?i)(password=)[^&]*", "$1***");
    }

    /**
     * The connection's properties, with the password read now, in this process (see {@link
     * #password()}).
     */
    public Properties jdbcProperties(String applicationName) {
        Properties props = propertiesWithoutPassword(applicationName);
        String resolved = password();
        if (resolved != null) {
            props.setProperty("password", resolved);
        }
        return props;
    }

    /**
     * The password, from its source, read at each call: the environment of this process (a
     * TaskManager's for writers and committers, the client's for the pre-flight check), or the
     * file, read again at every connection so that a rotated secret is picked up. Null without
     * a source (e.g. trust or certificate authentication).
     *
     * @throws SinkConfigurationException naming the variable or the file (never the value) when
     *     it is missing, unreadable or empty
     */
    public String password() {
        if (passwordEnv != null) {
            String value = System.getenv(passwordEnv);
            if (value == null || value.isEmpty()) {
                throw new SinkConfigurationException("sink '" + sinkId + "': environment variable "
                        + passwordEnv + " (the database password) is "
                        + (value == null ? "not set" : "empty") + " in this process ("
                        + processName() + "). The sink reads it where it runs: every TaskManager "
                        + "(and the client, for the pre-flight check) needs it in its "
                        + "environment when it starts; or use a password file "
                        + "(--password-file / set_password_file) mounted on every TaskManager");
            }
            return value;
        }
        if (passwordFile != null) {
            String value;
            try {
                value = java.nio.file.Files.readString(
                        java.nio.file.Path.of(passwordFile), StandardCharsets.UTF_8);
            } catch (java.io.IOException | RuntimeException e) {
                throw new SinkConfigurationException("sink '" + sinkId + "': cannot read the "
                        + "password file " + passwordFile + " in this process (" + processName()
                        + "): " + e.getClass().getSimpleName() + ". The sink reads it where it "
                        + "runs: the file must exist on every TaskManager (e.g. a mounted "
                        + "secret), readable by the user Flink runs as");
            }
            // A file written by `echo` or an editor ends with a newline that is no part of it.
            value = value.replaceAll("[\r\n]+$", "");
            if (value.isEmpty()) {
                throw new SinkConfigurationException("sink '" + sinkId + "': the password file "
                        + passwordFile + " is empty (" + processName() + ")");
            }
            return value;
        }
        return password;
    }

    /** Where the password comes from, for messages: never the password itself. */
    public String passwordSource() {
        if (passwordEnv != null) {
            return "environment variable " + passwordEnv;
        }
        if (passwordFile != null) {
            return "file " + passwordFile;
        }
        return password != null ? "the configuration (setPassword)" : "none";
    }

    private static String processName() {
        return "process "
                + java.lang.management.ManagementFactory.getRuntimeMXBean().getName();
    }

    private Properties propertiesWithoutPassword(String applicationName) {
        Properties props = new Properties();
        props.putAll(connectionProperties);
        if (user != null) {
            props.setProperty("user", user);
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
        // The URL's `options` (pgjdbc would let them replace the sink's), then the
        // connection property's: later settings win, so a user's own take precedence.
        for (String own : new String[] {
            urlParameters(jdbcUrl).get("options"), connectionProperties.get("options")
        }) {
            if (own != null && !own.isBlank()) {
                options = options + " " + own;
            }
        }
        props.setProperty("options", options);
        props.setProperty("ApplicationName", applicationName);
        return props;
    }

    /** The session settings every connection gets, without credentials (for logs and tests). */
    public String sessionOptions() {
        return propertiesWithoutPassword("-").getProperty("options");
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
     * "checkpoint", which needs staged mode); see {@link SinkConfigBuilder#setCommitScope}.
     */
    public CommitScope commitScope() {
        return commitScope;
    }

    /** Whether rows arrive as envelopes of named tables ({@link SinkConfigBuilder#addTable}). */
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
                + ", user=" + user + ", password from " + passwordSource() + ", statements="
                + statements.size() + ", batchSize="
                + batchSize + ", lockTimeoutMs=" + lockTimeoutMillis + ", statementTimeoutMs="
                + statementTimeoutMillis + ", socketTimeoutS=" + socketTimeoutSeconds
                + ", connectTimeoutS=" + connectTimeoutSeconds + ", commitRetries="
                + maxCommitRetries + ", commitLogRetentionS=" + commitLogRetentionSeconds
                + ", preparedWarningS=" + preparedTransactionWarningSeconds
                + (idempotentStatements ? ", idempotentStatements" : "")
                + ", scope=" + commitScope
                + (namedTables.isEmpty() ? "" : ", tables=" + namedTables) + "}";
    }
}
