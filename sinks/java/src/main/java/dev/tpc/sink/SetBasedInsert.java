package dev.tpc.sink;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * A user's single-row {@code INSERT ... VALUES (...)} statement, applied to a whole batch of rows
 * as one statement: {@code INSERT INTO t (a, b) VALUES (:a, f(:b)) ON CONFLICT ...} becomes
 * {@code INSERT INTO t (a, b) SELECT tpc_batch."a", f(tpc_batch."b") FROM unnest(CAST(? AS
 * text[]), CAST(? AS int8[])) AS tpc_batch("a", "b") ON CONFLICT ...}, with one array per field.
 * One round trip and one executor run per batch instead of one per row: the per-row form spends
 * its time waiting on the server for each row.
 *
 * <p>Only statements whose effect cannot tell the two forms apart are rewritten: one {@code VALUES}
 * row, no sub-query or {@code DEFAULT} in it, no parameter outside it. Rows are inserted in batch
 * order. The one difference PostgreSQL can show, an {@code ON CONFLICT DO UPDATE} hitting the
 * same key twice in one statement, is left to {@link StatementBatch}, which then applies that
 * batch row by row.
 */
public final class SetBasedInsert {
    private static final Pattern INSERT_INTO =
            Pattern.compile("\\s*INSERT\\s+INTO\\s.*", Pattern.DOTALL);
    private static final Pattern NOT_PER_ROW_SAFE = Pattern.compile("\\b(SELECT|DEFAULT)\\b");
    private static final Pattern TAIL = Pattern.compile(";?|(ON|RETURNING)\\s.*", Pattern.DOTALL);
    private static final Pattern DO_UPDATE = Pattern.compile("\\bDO\\s+UPDATE\\b");
    static final String ALIAS = "tpc_batch";

    private final String head;
    private final String values;
    private final String tail;
    private final List<String> fields;
    private final boolean updatesOnConflict;

    private SetBasedInsert(
            String head,
            String values,
            String tail,
            List<String> fields,
            boolean updatesOnConflict) {
        this.head = head;
        this.values = values;
        this.tail = tail;
        this.fields = Collections.unmodifiableList(fields);
        this.updatesOnConflict = updatesOnConflict;
    }

    /** The set-based form of {@code sql}, or empty when it must run row by row. */
    public static Optional<SetBasedInsert> of(String sql) {
        String masked = mask(sql).toUpperCase(Locale.ROOT);
        if (!INSERT_INTO.matcher(masked).matches()) {
            return Optional.empty();
        }
        int valuesAt = topLevelKeyword(masked, "VALUES");
        if (valuesAt < 0) {
            return Optional.empty();
        }
        int open = valuesAt + "VALUES".length();
        while (open < masked.length() && Character.isWhitespace(masked.charAt(open))) {
            open++;
        }
        if (open >= masked.length() || masked.charAt(open) != '(') {
            return Optional.empty();
        }
        int close = matchingParenthesis(masked, open);
        if (close < 0) {
            return Optional.empty();
        }
        String rest = masked.substring(close + 1).trim();
        if (!TAIL.matcher(rest).matches()) {
            return Optional.empty(); // several VALUES rows, or something this does not know
        }
        if (NOT_PER_ROW_SAFE.matcher(masked.substring(open, close)).find()) {
            return Optional.empty();
        }
        String head = sql.substring(0, valuesAt);
        String values = sql.substring(open + 1, close);
        String tail = sql.substring(close + 1);
        if (!parameters(head).isEmpty() || !parameters(tail).isEmpty()) {
            return Optional.empty(); // a parameter the SELECT form could not reach
        }
        List<String> fields = new ArrayList<>();
        for (String name : parameters(values)) {
            if (!fields.contains(name)) {
                fields.add(name);
            }
        }
        if (fields.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(new SetBasedInsert(
                head, values, tail, fields, DO_UPDATE.matcher(rest).find()));
    }

    /** The row fields the statement reads, in the order of the arrays bound to it. */
    public List<String> fields() {
        return fields;
    }

    /** Whether a batch may hit one key twice, which PostgreSQL refuses in one statement. */
    boolean updatesOnConflict() {
        return updatesOnConflict;
    }

    /**
     * The statement for arrays of these SQL types (one per field, in {@link #fields()} order);
     * a null type means the field is NULL in every row of the batch and is passed as an untyped
     * NULL, as a per-row bind of null would be.
     */
    public String sql(String[] types) {
        List<String> arrays = new ArrayList<>();
        List<String> columns = new ArrayList<>();
        for (int f = 0; f < fields.size(); f++) {
            arrays.add("CAST(? AS " + (types[f] == null ? "text" : types[f]) + "[])");
            columns.add(quoted(fields.get(f)));
        }
        String selected = NamedStatement.replaceParameters(values, name -> {
            int f = fields.indexOf(name);
            return types[f] == null ? "NULL" : ALIAS + "." + quoted(name);
        });
        return head + "SELECT " + selected + " FROM unnest(" + String.join(", ", arrays) + ") AS "
                + ALIAS + "(" + String.join(", ", columns) + ")" + tail;
    }

    /**
     * The SQL type a Java field value is passed as, or null for a type the set-based form does
     * not carry (the batch then runs row by row).
     */
    static String sqlType(Object value) {
        if (value instanceof String) {
            return "text";
        } else if (value instanceof Long) {
            return "int8";
        } else if (value instanceof Integer) {
            return "int4";
        } else if (value instanceof Short || value instanceof Byte) {
            return "int2";
        } else if (value instanceof Double) {
            return "float8";
        } else if (value instanceof Float) {
            return "float4";
        } else if (value instanceof Boolean) {
            return "bool";
        } else if (value instanceof BigDecimal || value instanceof BigInteger) {
            return "numeric";
        } else if (value instanceof Instant || value instanceof OffsetDateTime) {
            return "timestamptz";
        } else if (value instanceof LocalDateTime || value instanceof java.sql.Timestamp) {
            return "timestamp";
        } else if (value instanceof LocalDate || value instanceof java.sql.Date) {
            return "date";
        } else if (value instanceof LocalTime || value instanceof java.sql.Time) {
            return "time";
        } else if (value instanceof byte[]) {
            return "bytea";
        }
        return null;
    }

    /** bytea's hex input format: {@code \\x} and two hex digits a byte. */
    private static String hex(byte[] bytes) {
        StringBuilder text = new StringBuilder(2 + 2 * bytes.length).append("\\x");
        for (byte b : bytes) {
            text.append(Character.forDigit((b >> 4) & 0xF, 16))
                    .append(Character.forDigit(b & 0xF, 16));
        }
        return text.toString();
    }

    /** The value as PostgreSQL reads a literal of {@link #sqlType}. */
    static String text(Object value) {
        if (value == null) {
            return null;
        } else if (value instanceof java.sql.Timestamp) {
            return ((java.sql.Timestamp) value).toLocalDateTime().toString();
        } else if (value instanceof java.sql.Date) {
            return ((java.sql.Date) value).toLocalDate().toString();
        } else if (value instanceof java.sql.Time) {
            return ((java.sql.Time) value).toLocalTime().toString();
        } else if (value instanceof byte[]) {
            return hex((byte[]) value);
        }
        return value.toString(); // ISO-8601 for java.time, plain digits for numbers
    }

    private static String quoted(String identifier) {
        return '"' + identifier.replace("\"", "\"\"") + '"';
    }

    private static List<String> parameters(String sql) {
        List<String> names = new ArrayList<>();
        NamedStatement.replaceParameters(sql, name -> {
            names.add(name);
            return "?";
        });
        return names;
    }

    /** {@code sql} with quoted strings, quoted identifiers and comments blanked out. */
    static String mask(String sql) {
        StringBuilder out = new StringBuilder(sql.length());
        int i = 0;
        while (i < sql.length()) {
            int skip = NamedStatement.skipQuotedOrComment(sql, i);
            if (skip > i) {
                out.append(" ".repeat(skip - i));
                i = skip;
            } else {
                out.append(sql.charAt(i++));
            }
        }
        return out.toString();
    }

    private static int topLevelKeyword(String masked, String keyword) {
        int depth = 0;
        for (int i = 0; i < masked.length(); i++) {
            char c = masked.charAt(i);
            if (c == '(') {
                depth++;
            } else if (c == ')') {
                depth--;
            } else if (depth == 0
                    && masked.startsWith(keyword, i)
                    && (i == 0 || !isWordPart(masked.charAt(i - 1)))
                    && (i + keyword.length() >= masked.length()
                            || !isWordPart(masked.charAt(i + keyword.length())))) {
                return i;
            }
        }
        return -1;
    }

    private static int matchingParenthesis(String masked, int open) {
        int depth = 0;
        for (int i = open; i < masked.length(); i++) {
            char c = masked.charAt(i);
            if (c == '(') {
                depth++;
            } else if (c == ')' && --depth == 0) {
                return i;
            }
        }
        return -1;
    }

    private static boolean isWordPart(char c) {
        return Character.isLetterOrDigit(c) || c == '_' || c == '$';
    }
}
