package dev.tpc.sink;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Function;

/**
 * A SQL statement with {@code :name} parameters, rewritten to JDBC {@code ?} placeholders.
 *
 * <p>Skips quoted strings (standard, {@code E'..'} escape and {@code $tag$..$tag$} dollar-quoted),
 * quoted identifiers, comments and PostgreSQL {@code ::type} casts, so {@code amount::numeric},
 * {@code ':literal'} and a {@code :name} in a function body are not taken for parameters.
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
     * or {@code i} itself when none starts there, by PostgreSQL's lexical rules: standard strings
     * (also {@code U&'..'}, {@code B'..'}, {@code X'..'}) and quoted identifiers double their
     * quote; escape strings ({@code E'..'}) also take a backslash before any character; a
     * dollar-quoted string ends only at its own opening tag; block comments nest.
     *
     * <p>Callers scan left to right and ask at every position, so a position inside an
     * identifier ({@code x$y$}, the {@code e} of {@code one'..'}) must not start a dollar quote or an escape string:
     * PostgreSQL reads {@code $} and {@code E} there as part of the identifier.
     */
    static int skipQuotedOrComment(String sql, int i) {
        int n = sql.length();
        char c = sql.charAt(i);
        boolean afterWord = i > 0 && isWordPart(sql.charAt(i - 1));
        if (c == '\'' || c == '"') {
            return skipQuoted(sql, i, c, false);
        }
        if ((c == 'E' || c == 'e') && !afterWord && i + 1 < n && sql.charAt(i + 1) == '\'') {
            return skipQuoted(sql, i + 1, '\'', true);
        }
        if (c == '$' && !afterWord) {
            int tagEnd = dollarTagEnd(sql, i);
            if (tagEnd > i) {
                String tag = sql.substring(i, tagEnd);
                int end = sql.indexOf(tag, tagEnd);
                if (end < 0) {
                    throw new SinkConfigurationException(
                            "unterminated dollar-quoted string " + tag + " in statement: " + sql);
                }
                return end + tag.length();
            }
        }
        if (c == '-' && i + 1 < n && sql.charAt(i + 1) == '-') {
            int end = sql.indexOf('\n', i);
            return end < 0 ? n : end;
        }
        if (c == '/' && i + 1 < n && sql.charAt(i + 1) == '*') {
            int depth = 0;
            int j = i;
            while (j + 1 < n) {
                if (sql.charAt(j) == '/' && sql.charAt(j + 1) == '*') {
                    depth++;
                    j += 2;
                } else if (sql.charAt(j) == '*' && sql.charAt(j + 1) == '/') {
                    j += 2;
                    if (--depth == 0) {
                        return j;
                    }
                } else {
                    j++;
                }
            }
            return n;
        }
        return i;
    }

    /** Past the closing {@code quote} of the string or identifier whose opening one is at {@code i}. */
    private static int skipQuoted(String sql, int i, char quote, boolean backslashEscapes) {
        int n = sql.length();
        int j = i + 1;
        while (j < n) {
            char c = sql.charAt(j);
            if (backslashEscapes && c == '\\') {
                j += 2;
            } else if (c == quote && j + 1 < n && sql.charAt(j + 1) == quote) {
                j += 2;
            } else if (c == quote) {
                return j + 1;
            } else {
                j++;
            }
        }
        throw new SinkConfigurationException("unterminated quote in statement: " + sql);
    }

    /**
     * Past the delimiter {@code $tag$} (or {@code $$}) starting at {@code i}, or {@code i} when
     * none does: a tag is an identifier without {@code $}, so {@code $1} is a positional
     * parameter, not a quote.
     */
    private static int dollarTagEnd(String sql, int i) {
        int n = sql.length();
        int j = i + 1;
        if (j < n && isIdentifierStart(sql.charAt(j))) {
            j++;
            while (j < n && isIdentifierPart(sql.charAt(j))) {
                j++;
            }
        }
        return j < n && sql.charAt(j) == '$' ? j + 1 : i;
    }

    /** Characters PostgreSQL continues an identifier or a number with. */
    private static boolean isWordPart(char c) {
        return Character.isLetterOrDigit(c) || c == '_' || c == '$';
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
        List<String> missing = new ArrayList<>();
        for (int p = 0; p < indexes.length; p++) {
            indexes[p] = fieldNames.indexOf(parameterNames.get(p));
            if (indexes[p] < 0 && !missing.contains(":" + parameterNames.get(p))) {
                missing.add(":" + parameterNames.get(p));
            }
        }
        if (!missing.isEmpty()) {
            throw new SinkConfigurationException("statement names field(s) '"
                    + String.join("', '", missing) + "' that the rows lack; the rows have "
                    + fieldNames + " (check the stream's output_type=Types.ROW_NAMED(...)): "
                    + original);
        }
        return indexes;
    }
}
