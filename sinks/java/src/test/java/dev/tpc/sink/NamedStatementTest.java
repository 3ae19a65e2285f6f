package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import java.util.List;

class NamedStatementTest {
    private static void assertParsed(String sql, String jdbcSql, String... names) {
        NamedStatement statement = NamedStatement.parse(sql);
        assertEquals(jdbcSql, statement.jdbcSql());
        assertEquals(List.of(names), statement.parameterNames());
        assertEquals(sql, statement.original());
    }

    @Test
    void namedParametersBecomePlaceholdersInOrder() {
        assertParsed(
                "INSERT INTO t (a, b) VALUES (:a, :b_2)",
                "INSERT INTO t (a, b) VALUES (?, ?)",
                "a",
                "b_2");
    }

    @Test
    void aParameterUsedTwiceIsBoundTwice() {
        assertParsed(
                "UPDATE t SET n = n + :d WHERE k = :k AND :d > 0",
                "UPDATE t SET n = n + ? WHERE k = ? AND ? > 0",
                "d",
                "k",
                "d");
    }

    @Test
    void castsAreNotParameters() {
        assertParsed(
                "SELECT :amount::numeric, x::text, (:t)::timestamptz",
                "SELECT ?::numeric, x::text, (?)::timestamptz",
                "amount",
                "t");
    }

    @Test
    void quotedStringsAndIdentifiersAreLeftAlone() {
        assertParsed(
                "INSERT INTO \"t:x\" (\"c\"\"::y\") VALUES (':no', 'it''s :no', :yes)",
                "INSERT INTO \"t:x\" (\"c\"\"::y\") VALUES (':no', 'it''s :no', ?)",
                "yes");
    }

    @Test
    void commentsAreLeftAlone() {
        assertParsed(
                "SELECT :a -- :b\n, /* :c\n */ :d /* :e */",
                "SELECT ? -- :b\n, /* :c\n */ ? /* :e */",
                "a",
                "d");
        assertParsed("SELECT :a -- :b", "SELECT ? -- :b", "a");
    }

    @Test
    void digitsAndArraySlicesAreNotParameters() {
        assertParsed(
                "SELECT a[1:2], '10:30', x FROM t WHERE y = :y",
                "SELECT a[1:2], '10:30', x FROM t WHERE y = ?",
                "y");
    }

    @Test
    void unicodeLettersFormNames() {
        assertParsed("VALUES (:pr\u00e9nom)", "VALUES (?)", "pr\u00e9nom");
    }

    @Test
    void positionalPlaceholdersAreRefused() {
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class,
                () -> NamedStatement.parse("INSERT INTO t VALUES (?)"));
        assertTrue(e.getMessage().contains("named parameters"), e.getMessage());
    }

    @Test
    void aQuestionMarkInsideAStringIsFine() {
        assertParsed("SELECT '?', :a", "SELECT '?', ?", "a");
    }

    @Test
    void anUnterminatedQuoteIsRefused() {
        assertThrows(SinkConfigurationException.class, () -> NamedStatement.parse("SELECT 'x"));
        assertThrows(SinkConfigurationException.class, () -> NamedStatement.parse("SELECT \"x"));
    }

    @Test
    void bindIndexesFollowTheRowFields() {
        NamedStatement statement = NamedStatement.parse("VALUES (:b, :a, :b)");
        assertArrayEquals(new int[] {1, 0, 1}, statement.bindIndexes(List.of("a", "b")));
    }

    @Test
    void anUnknownFieldIsReportedWithTheRowsFields() {
        NamedStatement statement = NamedStatement.parse("VALUES (:missing)");
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class, () -> statement.bindIndexes(List.of("a", "b")));
        assertTrue(
                e.getMessage().contains("':missing'") && e.getMessage().contains("[a, b]"),
                e.getMessage());
    }

    @Test
    void dollarQuotedStringsAreLeftAlone() {
        assertParsed(
                "SELECT $$ :no ' $$, $fn$ :no $$ $fn$, :yes",
                "SELECT $$ :no ' $$, $fn$ :no $$ $fn$, ?",
                "yes");
    }

    @Test
    void positionalDollarParametersAreNotQuotes() {
        assertParsed("SELECT $1, :a, x$y", "SELECT $1, ?, x$y", "a");
    }

    @Test
    void escapeStringsMayHoldBackslashQuotes() {
        assertParsed(
                "SELECT E'it\\'s :no', e'\\\\', :yes", "SELECT E'it\\'s :no', e'\\\\', ?", "yes");
    }

    @Test
    void escapeStringsWithoutBackslashQuotesAreLeftAlone() {
        assertParsed("SELECT E'a\\n:no', :yes", "SELECT E'a\\n:no', ?", "yes");
    }

    @Test
    void aDollarQuoteEndsOnlyAtItsOwnTag() {
        assertParsed(
                "SELECT $a$ :no $b$ :no $$ :no $b$ 'x $a$, :yes",
                "SELECT $a$ :no $b$ :no $$ :no $b$ 'x $a$, ?",
                "yes");
        assertParsed(
                "DO $body$ BEGIN PERFORM $q$ :no $q$; END $body$ -- :no",
                "DO $body$ BEGIN PERFORM $q$ :no $q$; END $body$ -- :no");
        assertParsed("SELECT $_t1$:no$_t1$, :yes", "SELECT $_t1$:no$_t1$, ?", "yes");
    }

    @Test
    void aQuestionMarkInADollarQuoteIsFine() {
        assertParsed("SELECT $$ ? $$, :a", "SELECT $$ ? $$, ?", "a");
    }

    @Test
    void dollarSignsThatOpenNoQuote() {
        // $1 and $12$ are positional parameters (a tag cannot start with a digit); a $ inside
        // an identifier belongs to it, so x$y$ is one word, not the start of a $y$ quote.
        assertParsed("SELECT $1, $12$, :a", "SELECT $1, $12$, ?", "a");
        assertParsed("SELECT x$y$ + :a, z$$ FROM t", "SELECT x$y$ + ?, z$$ FROM t", "a");
    }

    @Test
    void anUnterminatedDollarQuoteIsRefused() {
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class, () -> NamedStatement.parse("SELECT $fn$ :x $$"));
        assertTrue(e.getMessage().contains("$fn$"), e.getMessage());
    }

    @Test
    void escapeStringsAlsoDoubleQuotes() {
        assertParsed("SELECT E'a''b :no\\\\', :yes", "SELECT E'a''b :no\\\\', ?", "yes");
        assertThrows(SinkConfigurationException.class, () -> NamedStatement.parse("SELECT E'x\\'"));
    }

    @Test
    void anEInsideAWordDoesNotMakeAnEscapeString() {
        // The e ends the identifier one, so a standard string follows, which the backslash
        // does not escape.
        assertParsed("SELECT one'\\', :yes", "SELECT one'\\', ?", "yes");
    }

    @Test
    void unicodeAndBitStringsAreStandardStrings() {
        assertParsed(
                "SELECT U&'d\\0061t :no' UESCAPE '!', U&\"c :no\", B'01', X'1F', :yes",
                "SELECT U&'d\\0061t :no' UESCAPE '!', U&\"c :no\", B'01', X'1F', ?",
                "yes");
        // In a U& string a backslash escapes nothing that matters to the lexer: '\' ends it.
        assertParsed("SELECT U&'\\', :yes", "SELECT U&'\\', ?", "yes");
    }

    @Test
    void blockCommentsNest() {
        assertParsed("SELECT /* a /* :no */ :no */ :yes", "SELECT /* a /* :no */ :no */ ?", "yes");
    }

    @Test
    void castsStillAreNotParameters() {
        assertParsed(
                "SELECT $$1$$::int + :a::int, E'x'::text, $1::text",
                "SELECT $$1$$::int + ?::int, E'x'::text, $1::text",
                "a");
    }
}
