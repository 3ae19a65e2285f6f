package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.util.List;

class SetBasedInsertTest {
    private static SetBasedInsert rewritten(String sql) {
        return SetBasedInsert.of(sql)
                .orElseThrow(() -> new AssertionError("not rewritten: " + sql));
    }

    @Test
    void aSingleRowInsertBecomesOneStatementOverArrays() {
        SetBasedInsert insert = rewritten("INSERT INTO t (a, b) VALUES (:a, f(:b))");
        assertEquals(List.of("a", "b"), insert.fields());
        assertFalse(insert.updatesOnConflict());
        assertEquals(
                "INSERT INTO t (a, b) SELECT tpc_batch.\"a\", f(tpc_batch.\"b\") "
                        + "FROM unnest(CAST(? AS text[]), CAST(? AS int8[])) AS tpc_batch(\"a\", \"b\")",
                insert.sql(new String[] {"text", "int8"}));
    }

    @Test
    void eachFieldIsOneArrayEvenWhenUsedTwice() {
        SetBasedInsert insert = rewritten("insert into t (a, b, c) values (:b, :a, :b || 'x')");
        assertEquals(List.of("b", "a"), insert.fields());
        assertEquals(
                "insert into t (a, b, c) SELECT tpc_batch.\"b\", tpc_batch.\"a\", "
                        + "tpc_batch.\"b\" || 'x' FROM unnest(CAST(? AS text[]), CAST(? AS int4[])) "
                        + "AS tpc_batch(\"b\", \"a\")",
                insert.sql(new String[] {"text", "int4"}));
    }

    @Test
    void aFieldNullInTheWholeBatchIsAnUntypedNull() {
        SetBasedInsert insert = rewritten("INSERT INTO t (a, b) VALUES (:a, :b)");
        assertEquals(
                "INSERT INTO t (a, b) SELECT tpc_batch.\"a\", NULL "
                        + "FROM unnest(CAST(? AS int8[]), CAST(? AS text[])) AS tpc_batch(\"a\", \"b\")",
                insert.sql(new String[] {"int8", null}));
    }

    @Test
    void conflictClausesAndReturningStay() {
        SetBasedInsert nothing =
                rewritten("INSERT INTO t (k) VALUES (:k) ON CONFLICT (k) DO NOTHING RETURNING k");
        assertFalse(nothing.updatesOnConflict());
        assertTrue(nothing.sql(new String[] {"text"})
                .endsWith("AS tpc_batch(\"k\") ON CONFLICT (k) DO NOTHING RETURNING k"));
        SetBasedInsert update = rewritten("INSERT INTO t (k, n) VALUES (:k, :n) "
                + "ON CONFLICT (k) DO UPDATE SET n = t.n + EXCLUDED.n");
        assertTrue(update.updatesOnConflict());
    }

    @Test
    void aTrailingSemicolonIsAccepted() {
        rewritten("INSERT INTO t (a) VALUES (:a);");
    }

    @Test
    void keywordsInsideStringsAndIdentifiersDoNotCount() {
        SetBasedInsert insert = rewritten(
                "INSERT INTO \"values\" (\"select\") VALUES (:a || ' SELECT DEFAULT VALUES (x), (y)')");
        assertEquals(List.of("a"), insert.fields());
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "INSERT INTO t (a) VALUES (:a), (:a)", // several rows
                "INSERT INTO t (a, b) VALUES (:a, DEFAULT)", // DEFAULT
                "INSERT INTO t (a, b) VALUES (:a, (SELECT max(b) FROM t))", // sees earlier rows
                "INSERT INTO t (k, n) VALUES (:k, :n) ON CONFLICT (k) DO UPDATE SET n = :n",
                "INSERT INTO t (a) SELECT :a", // no VALUES
                "INSERT INTO t (a) VALUES ('constant')", // no field
                "UPDATE t SET a = :a",
                "DELETE FROM t WHERE a = :a",
                "WITH x AS (SELECT 1) INSERT INTO t (a) VALUES (:a)",
                "INSERT INTO t (a) VALUES (:a) WHERE false", // unknown tail
                "INSERT INTO t (a) VALUES (:a", // unbalanced
            })
    void runsRowByRow(String sql) {
        assertTrue(SetBasedInsert.of(sql).isEmpty(), sql);
    }

    @Test
    void sqlTypesOfJavaValues() {
        assertEquals("text", SetBasedInsert.sqlType("x"));
        assertEquals("int8", SetBasedInsert.sqlType(1L));
        assertEquals("int4", SetBasedInsert.sqlType(1));
        assertEquals("int2", SetBasedInsert.sqlType((short) 1));
        assertEquals("int2", SetBasedInsert.sqlType((byte) 1));
        assertEquals("float8", SetBasedInsert.sqlType(1.0));
        assertEquals("float4", SetBasedInsert.sqlType(1.0f));
        assertEquals("bool", SetBasedInsert.sqlType(true));
        assertEquals("numeric", SetBasedInsert.sqlType(BigDecimal.ONE));
        assertEquals("numeric", SetBasedInsert.sqlType(BigInteger.ONE));
        assertEquals("timestamptz", SetBasedInsert.sqlType(Instant.EPOCH));
        assertEquals("timestamptz", SetBasedInsert.sqlType(OffsetDateTime.now()));
        assertEquals("timestamp", SetBasedInsert.sqlType(LocalDateTime.now()));
        assertEquals("timestamp", SetBasedInsert.sqlType(new java.sql.Timestamp(0)));
        assertEquals("date", SetBasedInsert.sqlType(LocalDate.now()));
        assertEquals("date", SetBasedInsert.sqlType(new java.sql.Date(0)));
        assertEquals("time", SetBasedInsert.sqlType(LocalTime.NOON));
        assertEquals("time", SetBasedInsert.sqlType(new java.sql.Time(0)));
        assertEquals("bytea", SetBasedInsert.sqlType(new byte[0]));
        assertNull(SetBasedInsert.sqlType(new Object()));
        assertNull(SetBasedInsert.sqlType(null));
    }

    @Test
    void textIsWhatPostgresReads() {
        assertNull(SetBasedInsert.text(null));
        assertEquals("\\x00ff10", SetBasedInsert.text(new byte[] {0, (byte) 0xff, 0x10}));
        assertEquals("2026-03-29T02:30", SetBasedInsert.text(LocalDateTime.of(2026, 3, 29, 2, 30)));
        assertEquals(
                "2026-11-27T02:30:00.000000001",
                SetBasedInsert.text(java.sql.Timestamp.valueOf("2026-11-27 02:30:00.000000001")));
        assertEquals("2026-11-27", SetBasedInsert.text(java.sql.Date.valueOf("2026-11-27")));
        assertEquals("23:59:59", SetBasedInsert.text(java.sql.Time.valueOf("23:59:59")));
        assertEquals(
                "2026-11-27T10:00+05:30",
                SetBasedInsert.text(OffsetDateTime.parse("2026-11-27T10:00:00+05:30")));
        assertEquals("0.10", SetBasedInsert.text(new BigDecimal("0.10")));
        assertEquals("1E+3", SetBasedInsert.text(new BigDecimal("1E+3")));
    }
}
