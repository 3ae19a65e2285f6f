package dev.tpc.sink;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Pattern;

/**
 * Everything a sink needs at run time. Serialized into the job graph, so the password travels
 * with the job (as with Flink's JDBC connector); {@link #toString()} never shows it.
 */
public final class SinkConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Sink ids become part of PREPARE TRANSACTION literals and LIKE-free prefixes. */
    public static final Pattern SINK_ID = Pattern.compile("[A-Za-z0-9_-]{1,64}");

    public static final Pattern SCHEMA = Pattern.compile("[a-z_][a-z0-9_]{0,62}");

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

    public SinkConfig(String jdbcUrl, String user, String password, String sinkId, String mode,
            List<String> statements, List<String> fieldNames, int batchSize,
            long lockTimeoutMillis, String controlSchema, Map<String, String> connectionProperties,
            int maxCommitRetries) {
        if (jdbcUrl == null || !jdbcUrl.startsWith("jdbc:postgresql:")) {
            throw new SinkConfigurationException(
                    "JDBC URL must start with jdbc:postgresql:// (got '" + redactUrl(jdbcUrl) + "')");
        }
        if (sinkId == null || !SINK_ID.matcher(sinkId).matches()) {
            throw new SinkConfigurationException("sink id '" + sinkId + "' is invalid: use 1 to 64 "
                    + "characters from A-Z a-z 0-9 _ - (it becomes part of transaction ids)");
        }
        if (controlSchema == null || !SCHEMA.matcher(controlSchema).matches()) {
            throw new SinkConfigurationException("control schema '" + controlSchema
                    + "' is invalid: use a lower-case SQL identifier such as 'public'");
        }
        if (statements == null || statements.isEmpty()) {
            throw new SinkConfigurationException("give at least one SQL statement to run per row");
        }
        if (batchSize < 1) {
            throw new SinkConfigurationException("batch size must be at least 1, got " + batchSize);
        }
        if (fieldNames == null || fieldNames.isEmpty()) {
            throw new SinkConfigurationException("the row's field names are required "
                    + "(pass the stream's Types.ROW_NAMED(...) type)");
        }
        this.jdbcUrl = jdbcUrl;
        this.user = user;
        this.password = password;
        this.sinkId = sinkId;
        this.mode = CommitMode.parse(mode);
        this.fieldNames = Collections.unmodifiableList(new ArrayList<>(fieldNames));
        List<NamedStatement> parsed = new ArrayList<>();
        for (String sql : statements) {
            NamedStatement statement = NamedStatement.parse(sql);
            statement.bindIndexes(this.fieldNames); // fails early on unknown fields
            parsed.add(statement);
        }
        this.statements = Collections.unmodifiableList(parsed);
        this.batchSize = batchSize;
        this.lockTimeoutMillis = lockTimeoutMillis;
        this.controlSchema = controlSchema;
        this.connectionProperties = Collections.unmodifiableMap(
                new LinkedHashMap<>(connectionProperties == null ? Map.of() : connectionProperties));
        this.maxCommitRetries = maxCommitRetries;
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
        props.putIfAbsent("connectTimeout", "10");
        props.putIfAbsent("tcpKeepAlive", "true");
        props.setProperty("ApplicationName", applicationName);
        return props;
    }

    /**
     * Whether strings are bound untyped ({@code stringtype=unspecified}, in the URL or the
     * connection properties), so that PostgreSQL casts them to the target column's type (uuid,
     * jsonb, enums). An array cannot be untyped: such string fields are then applied row by row.
     */
    public boolean stringsUntyped() {
        String property = connectionProperties.get("stringtype");
        return "unspecified".equalsIgnoreCase(property)
                || (property == null && jdbcUrl.toLowerCase(java.util.Locale.ROOT)
                        .matches(".*[?&]stringtype=unspecified(&.*)?"));
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

    @Override
    public String toString() {
        return "SinkConfig{sinkId=" + sinkId + ", mode=" + mode + ", url=" + redactUrl(jdbcUrl)
                + ", user=" + user + ", statements=" + statements.size() + ", batchSize="
                + batchSize + "}";
    }
}
