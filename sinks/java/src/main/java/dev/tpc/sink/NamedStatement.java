package dev.tpc.sink;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Function;

/**
 * A SQL statement with {@code :name} parameters, rewritten to JDBC {@code ?} placeholders.
 *
 * <p>Skips quoted strings, quoted identifiers, comments and PostgreSQL {@code ::type} casts, so
 * {@code amount::numeric} and {@code ':literal'} are not taken for parameters.
 */
public final class NamedStatement implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String original;
    private final String jdbcSql;
    private final List<String> parameterNames;

    private NamedStatement(String original, String jdbcSql, List<String> parameterNames) {
        this.original = original;
        this.jdbcSql = jdbcSql;
        this.parameterNames = Collections.unmodifiableList(parameterNames);
    }

    public static NamedStatement parse(String sql) {
        List<String> names = new ArrayList<>();
        String jdbcSql = replaceParameters(sql, name -> {
            names.add(name);
            return "?";
        });
        return new NamedStatement(sql, jdbcSql, names);
    }

    /**
     * {@code sql} with every {@code :name} parameter replaced by {@code replacement(name)};
     * quoted strings, quoted identifiers, comments and {@code ::} casts are left as they are.
     */
    static String replaceParameters(String sql, Function<String, String> replacement) {
        StringBuilder out = new StringBuilder(sql.length());
        int i = 0;
        int n = sql.length();
        while (i < n) {
            char c = sql.charAt(i);
            int skip = skipQuotedOrComment(sql, i);
            if (skip > i) {
                out.append(sql, i, skip);
                i = skip;
            } else if (c == ':' && i + 1 < n && sql.charAt(i + 1) == ':') {
                out.append("::");
                i += 2;
            } else if (c == ':' && i + 1 < n && isIdentifierStart(sql.charAt(i + 1))) {
                int end = i + 1;
                while (end < n && isIdentifierPart(sql.charAt(end))) {
                    end++;
                }
                out.append(replacement.apply(sql.substring(i + 1, end)));
                i = end;
            } else if (c == '?') {
                throw new SinkConfigurationException(
                        "use named parameters (:field) rather than '?' in statement: " + sql);
            } else {
                out.append(c);
                i++;
            }
        }
        return out.toString();
    }

    /**
     * The index just past the quoted string, quoted identifier or comment starting at {@code i},
     * or {@code i} itself when none starts there.
     */
    static int skipQuotedOrComment(String sql, int i) {
        int n = sql.length();
        char c = sql.charAt(i);
        if (c == '\'' || c == '"') {
            int end = sql.indexOf(c, i + 1);
            while (end >= 0 && end + 1 < n && sql.charAt(end + 1) == c) {
                end = sql.indexOf(c, end + 2);
            }
            if (end < 0) {
                throw new SinkConfigurationException("unterminated quote in statement: " + sql);
            }
            return end + 1;
        }
        if (c == '-' && i + 1 < n && sql.charAt(i + 1) == '-') {
            int end = sql.indexOf('\n', i);
            return end < 0 ? n : end;
        }
        if (c == '/' && i + 1 < n && sql.charAt(i + 1) == '*') {
            int end = sql.indexOf("*/", i + 2);
            return end < 0 ? n : end + 2;
        }
        return i;
    }

    private static boolean isIdentifierStart(char c) {
        return Character.isLetter(c) || c == '_';
    }

    private static boolean isIdentifierPart(char c) {
        return Character.isLetterOrDigit(c) || c == '_';
    }

    public String original() {
        return original;
    }

    public String jdbcSql() {
        return jdbcSql;
    }

    public List<String> parameterNames() {
        return parameterNames;
    }

    /** Positions in the row of each parameter, in placeholder order. */
    public int[] bindIndexes(List<String> fieldNames) {
        int[] indexes = new int[parameterNames.size()];
        for (int p = 0; p < indexes.length; p++) {
            int index = fieldNames.indexOf(parameterNames.get(p));
            if (index < 0) {
                throw new SinkConfigurationException(
                        "statement names field ':" + parameterNames.get(p)
                                + "' but the rows have only " + fieldNames
                                + " (check the stream's output_type=Types.ROW_NAMED(...)): "
                                + original);
            }
            indexes[p] = index;
        }
        return indexes;
    }
}
