package dev.tpc.sink;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.regex.Pattern;

/**
 * One named input of a sink: its rows' field names and the statements run for each row. A sink
 * configured with {@link SinkConfigBuilder#addTable} takes several, and commits them together; a sink
 * without has one, unnamed, made of the constructor's fields and statements.
 */
public final class TableSpec implements Serializable {
    private static final long serialVersionUID = 1L;

    public static final Pattern NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,62}");

    /**
     * Staged rows of several tables share one staged batch per subtask and checkpoint; a row's
     * sequence number is its table's index shifted by this many bits, plus its position, so the
     * rows of one table are one range of the primary key (gid, seq), in order.
     */
    static final int SEQ_TABLE_SHIFT = 40;

    private final String name;
    private final List<String> fieldNames;
    private final List<NamedStatement> statements;
    /** The fields' SQL types (null when not given): what a {@link BatchStatement} binds. */
    private final List<String> sqlTypes;

    TableSpec(String name, List<String> fieldNames, List<NamedStatement> statements) {
        this(name, fieldNames, statements, null);
    }

    TableSpec(
            String name,
            List<String> fieldNames,
            List<NamedStatement> statements,
            List<String> sqlTypes) {
        this.name = name;
        this.fieldNames = Collections.unmodifiableList(new ArrayList<>(fieldNames));
        this.statements = Collections.unmodifiableList(new ArrayList<>(statements));
        this.sqlTypes =
                sqlTypes == null ? null : Collections.unmodifiableList(new ArrayList<>(sqlTypes));
    }

    static TableSpec of(String name, List<String> fieldNames, List<String> statements) {
        return of(name, fieldNames, statements, null);
    }

    /**
     * Parses and checks the statements against the fields; fails early, with the table named.
     * {@code sqlTypes}, one per field, may be null unless a statement reads the batch as a
     * relation ({@link BatchStatement}).
     */
    static TableSpec of(
            String name, List<String> fieldNames, List<String> statements, List<String> sqlTypes) {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new SinkConfigurationException("table name '" + name + "' is invalid: use a "
                    + "name like an SQL identifier (letters, digits, _; it names an input)");
        }
        if (fieldNames == null || fieldNames.isEmpty()) {
            throw new SinkConfigurationException("table '" + name + "': the row's field names "
                    + "are required (pass the stream's Types.ROW_NAMED(...) type)");
        }
        if (statements == null || statements.isEmpty()) {
            throw new SinkConfigurationException(
                    "table '" + name + "': give at least one SQL " + "statement to run per row");
        }
        List<NamedStatement> parsed = new ArrayList<>();
        for (String sql : statements) {
            NamedStatement statement = NamedStatement.parse(sql);
            try {
                if (BatchStatement.readsBatch(sql)) {
                    BatchStatement.check(statement, fieldNames, sqlTypes);
                }
                statement.bindIndexes(fieldNames);
            } catch (SinkConfigurationException e) {
                throw new SinkConfigurationException("table '" + name + "': " + e.getMessage(), e);
            }
            parsed.add(statement);
        }
        return new TableSpec(name, fieldNames, parsed, sqlTypes);
    }

    public String name() {
        return name;
    }

    public List<String> fieldNames() {
        return fieldNames;
    }

    public List<NamedStatement> statements() {
        return statements;
    }

    /** The fields' SQL types, or null when not given. */
    public List<String> sqlTypes() {
        return sqlTypes;
    }

    /** The first staged-row sequence number of table {@code index}. */
    static long firstSeq(int index) {
        return ((long) index) << SEQ_TABLE_SHIFT;
    }

    @Override
    public String toString() {
        return name + fieldNames;
    }
}
