package dev.tpc.sink;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A statement written over a whole batch of rows: it reads them as the relation {@code
 * tpc_batch}, whose columns are the row's fields, and takes no {@code :field} parameters. For
 * what one row at a time cannot say, e.g. "insert the rows whose key is absent, then add up what
 * was inserted" or "record the rows that were not inserted":
 *
 * <pre>
 * WITH inserted AS (
 *     INSERT INTO ledger (id, account, amount) SELECT id, account, amount FROM tpc_batch
 *     ON CONFLICT (id) DO NOTHING RETURNING account, amount)
 * INSERT INTO balances (account, total) SELECT account, sum(amount) FROM inserted GROUP BY account
 * ON CONFLICT (account) DO UPDATE SET total = balances.total + EXCLUDED.total
 * </pre>
 *
 * <p>The sink binds the batch as one array per field ({@code unnest}) and puts {@code tpc_batch}
 * first in the statement's {@code WITH} list. The arrays are cast to the fields' declared SQL
 * types, so a field that is NULL in every row of a batch still has its type. A batch the
 * database refuses for a row's sake is applied again one row at a time, as a batch of one row
 * ({@link StatementBatch}).
 */
final class BatchStatement {
    static final String RELATION = "tpc_batch";
    private static final Pattern REFERENCE =
            Pattern.compile("\\b" + RELATION + "\\b", Pattern.CASE_INSENSITIVE);
    private static final Pattern LEADING_WITH =
            Pattern.compile("\\s*WITH\\s+(RECURSIVE\\s+)?", Pattern.CASE_INSENSITIVE);
    private static final Pattern SQL_TYPE = Pattern.compile("[A-Za-z][A-Za-z0-9_ ]*");

    private final String sql;
    private final int fields;

    private BatchStatement(String sql, int fields) {
        this.sql = sql;
        this.fields = fields;
    }

    /** Whether {@code sql} reads the batch as {@code tpc_batch} (outside strings and comments). */
    static boolean readsBatch(String sql) {
        return REFERENCE.matcher(SetBasedInsert.mask(sql)).find();
    }

    /**
     * Checks a batch statement against its table's fields.
     *
     * @throws SinkConfigurationException if it also takes {@code :field} parameters, or the
     *     fields' SQL types are missing or malformed
     */
    static void check(NamedStatement statement, List<String> fieldNames, List<String> sqlTypes) {
        if (!statement.parameterNames().isEmpty()) {
            throw new SinkConfigurationException("a statement reads the batch as " + RELATION
                    + " or takes :field parameters, not both: " + statement.parameterNames()
                    + " in " + statement.original());
        }
        if (sqlTypes == null || sqlTypes.size() != fieldNames.size()) {
            throw new SinkConfigurationException("a statement reading " + RELATION
                    + " needs the SQL type of each of the fields " + fieldNames
                    + " (Python's add_table derives them from the row type)");
        }
        for (String type : sqlTypes) {
            if (type == null || !SQL_TYPE.matcher(type).matches()) {
                throw new SinkConfigurationException("'" + type + "' is not an SQL type name "
                        + "(e.g. text, int8, numeric, bytea, timestamptz)");
            }
        }
    }

    /** The statement with {@code tpc_batch} bound to arrays of these types, one per field. */
    static BatchStatement of(String userSql, List<String> fieldNames, List<String> sqlTypes) {
        List<String> arrays = new ArrayList<>();
        List<String> columns = new ArrayList<>();
        for (int f = 0; f < fieldNames.size(); f++) {
            arrays.add("CAST(? AS " + sqlTypes.get(f).toLowerCase(Locale.ROOT) + "[])");
            columns.add('"' + fieldNames.get(f).replace("\"", "\"\"") + '"');
        }
        String relation = RELATION + "(" + String.join(", ", columns) + ") AS (SELECT * FROM "
                + "unnest(" + String.join(", ", arrays) + "))";
        Matcher with = LEADING_WITH.matcher(SetBasedInsert.mask(userSql));
        String sql = with.lookingAt()
                ? "WITH " + (with.group(1) != null ? "RECURSIVE " : "") + relation + ", "
                        + userSql.substring(with.end())
                : "WITH " + relation + " " + userSql;
        return new BatchStatement(sql, fieldNames.size());
    }

    String sql() {
        return sql;
    }

    /** Binds the rows' fields as arrays (in the order of the table's fields). */
    void bind(Connection connection, PreparedStatement ps, List<Object[]> rows)
            throws SQLException {
        for (int f = 0; f < fields; f++) {
            String[] column = new String[rows.size()];
            for (int r = 0; r < column.length; r++) {
                column[r] = SetBasedInsert.text(rows.get(r)[f]);
            }
            ps.setArray(f + 1, connection.createArrayOf("text", column));
        }
    }
}
