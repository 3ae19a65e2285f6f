package dev.tpc.sink;

import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.execution.SuppressRestartsException;

import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.List;

/**
 * What happens to a row the database refuses for its own sake ({@link SqlStates#isRowError}),
 * once {@link StatementBatch} has isolated it: the job stops ({@link RowErrorPolicy#FAIL}) or the
 * row goes to the dead-letter table in the caller's transaction ({@link
 * RowErrorPolicy#DEAD_LETTER}). Knows nothing of what the rows mean.
 */
final class RefusedRows {
    /** Longest rendering of one value in an error message. */
    private static final int MAX_VALUE_CHARS = 200;

    private final SinkConfig config;
    private final ControlTables tables;
    private final int subtask;
    private final String where;
    private final Counter deadLettered;
    private String gid;
    private TableSpec table;
    private int statementOffset;

    /**
     * @param where "writer" or "committer", for messages
     * @param deadLettered counts rows sent to the dead-letter table
     */
    RefusedRows(
            SinkConfig config,
            ControlTables tables,
            int subtask,
            String where,
            Counter deadLettered) {
        this.config = config;
        this.tables = tables;
        this.subtask = subtask;
        this.where = where;
        this.deadLettered = deadLettered;
        this.table = config.tables().get(0);
    }

    /**
     * The table whose rows come next (a sink with several tables). Dead letters number
     * statements across the sink's tables, in order: table 1's first statement follows table
     * 0's last, so the number alone tells the table.
     */
    void setTable(int index) {
        List<TableSpec> tables = config.tables();
        this.table = tables.get(index);
        int offset = 0;
        for (int i = 0; i < index; i++) {
            offset += tables.get(i).statements().size();
        }
        this.statementOffset = offset;
    }

    /** The transaction the next refused rows belong to (null in at-least-once mode). */
    void setTransaction(String gid) {
        this.gid = gid;
    }

    /**
     * Called inside the transaction that refused the row, after a rollback to the savepoint
     * taken just before it: the transaction is usable.
     *
     * @param statement the 0-based index of the statement that refused it
     */
    void refused(Connection connection, Object[] row, int statement, SQLException error)
            throws SQLException {
        if (config.rowErrorPolicy() == RowErrorPolicy.FAIL) {
            // A restart would meet the same row again: fail the job at once instead of after
            // the whole restart strategy's worth of attempts.
            throw new SuppressRestartsException(
                    new RefusedRowException(describe(row, statement, error), error));
        }
        try (PreparedStatement ps = connection.prepareStatement("INSERT INTO "
                + tables.deadLetters + " (sink_id, subtask, gid, statement, sqlstate, message, "
                + "fields, payload) VALUES (?, ?, ?, ?, ?, ?, CAST(? AS jsonb), ?)")) {
            ps.setString(1, config.sinkId());
            ps.setInt(2, subtask);
            ps.setString(3, gid);
            ps.setInt(4, statementOffset + statement + 1);
            ps.setString(5, SqlStates.stateOf(error));
            ps.setString(
                    6,
                    storable((config.isMultiTable() ? "table " + table.name() + ": " : "")
                            + error.getMessage()));
            ps.setString(7, fieldsAsJson(table.fieldNames(), row));
            ps.setBytes(8, RowCodec.encode(row));
            ps.executeUpdate();
        } catch (IOException e) {
            throw new SQLException("cannot encode a refused row for the dead-letter table", e);
        }
        deadLettered.inc();
    }

    private String describe(Object[] row, int statement, SQLException error) {
        String state = SqlStates.stateOf(error);
        StringBuilder fields = new StringBuilder("{");
        List<String> names = table.fieldNames();
        for (int i = 0; i < row.length; i++) {
            fields.append(i == 0 ? "" : ", ")
                    .append(i < names.size() ? names.get(i) : "?")
                    .append('=')
                    .append(render(row[i]));
        }
        fields.append('}');
        String pending = "committer".equals(where)
                ? " Its staged batch " + gid + " stays pending, unapplied; after the fix, resume "
                        + "from the newest retained checkpoint and the commit is retried."
                : " Nothing of this transaction was pre-committed; resume from the newest "
                        + "retained checkpoint after the fix.";
        return "sink '" + config.sinkId() + "' subtask " + subtask + ": the database refused "
                + "a row (" + (config.isMultiTable() ? "table " + table.name() + ", " : "")
                + "statement " + (statement + 1) + ", SQLSTATE " + state + ": "
                + error.getMessage() + "); row " + fields + ". The sink's row error policy is "
                + "'fail', so the job stops without restarting (the row would be refused again "
                + "on every attempt): fix the row's source or the constraint, or choose "
                + "set_on_row_error('dead_letter') to record such rows in " + tables.deadLetters
                + " and go on." + pending;
    }

    private static String render(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof byte[]) {
            String hex = SetBasedInsert.text(value);
            return hex.length() > MAX_VALUE_CHARS ? hex.substring(0, MAX_VALUE_CHARS) + "..." : hex;
        }
        String text = storable(SetBasedInsert.text(value));
        if (text.length() > MAX_VALUE_CHARS) {
            text = text.substring(0, MAX_VALUE_CHARS) + "... (" + text.length() + " chars)";
        }
        return value instanceof String ? "'" + text + "'" : text;
    }

    /** Text PostgreSQL (text and jsonb) can hold: NUL as {@code \x00}, lone surrogates as
     * {@code \\uXXXX}, the convention of the Python side's {@code storable_text}. */
    static String storable(String text) {
        StringBuilder out = null;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            String replacement = null;
            if (c == 0) {
                replacement = "\\x00";
            } else if (Character.isHighSurrogate(c)
                    && i + 1 < text.length()
                    && Character.isLowSurrogate(text.charAt(i + 1))) {
                if (out != null) {
                    out.append(c).append(text.charAt(i + 1));
                }
                i++;
                continue;
            } else if (Character.isSurrogate(c)) {
                replacement = String.format("\\u%04x", (int) c);
            }
            if (replacement != null && out == null) {
                out = new StringBuilder(text.length() + 8).append(text, 0, i);
            }
            if (out != null) {
                out.append(replacement != null ? replacement : String.valueOf(c));
            }
        }
        return out == null ? text : out.toString();
    }

    /** A flat JSON object: field name to the value as text (as the set-based apply binds it). */
    static String fieldsAsJson(List<String> names, Object[] row) {
        StringBuilder json = new StringBuilder("{");
        for (int i = 0; i < row.length; i++) {
            json.append(i == 0 ? "" : ",");
            quote(json, i < names.size() ? names.get(i) : "field" + i).append(':');
            if (row[i] == null) {
                json.append("null");
            } else {
                quote(json, storable(SetBasedInsert.text(row[i])));
            }
        }
        return json.append('}').toString();
    }

    private static StringBuilder quote(StringBuilder json, String text) {
        json.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                json.append('\\').append(c);
            } else if (c < 0x20) {
                json.append(String.format("\\u%04x", (int) c));
            } else {
                json.append(c);
            }
        }
        return json.append('"');
    }
}
