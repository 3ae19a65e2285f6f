package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;

/**
 * Statements that read a whole batch as the relation {@code tpc_batch} ({@link BatchStatement}):
 * how they are bound, what the configuration refuses, and, against a real PostgreSQL, the use
 * they exist for: insert rows whose key is absent and add up only what was inserted, so that a
 * batch applied twice changes nothing the second time.
 */
class BatchStatementTest {
    private static final List<String> FIELDS = List.of("id", "account", "amount", "note");
    private static final List<String> TYPES = List.of("text", "text", "int8", "bytea");

    @Test
    void theBatchComesFirstInTheStatementsWithList() {
        assertEquals(
                "WITH tpc_batch(\"id\", \"n\") AS (SELECT * FROM unnest(CAST(? AS text[]), "
                        + "CAST(? AS int8[]))) INSERT INTO t SELECT * FROM tpc_batch",
                BatchStatement.of(
                                "INSERT INTO t SELECT * FROM tpc_batch",
                                List.of("id", "n"),
                                List.of("text", "int8"))
                        .sql());
        assertEquals(
                "WITH tpc_batch(\"id\") AS (SELECT * FROM unnest(CAST(? AS text[]))), "
                        + "x AS (SELECT id FROM tpc_batch) SELECT * FROM x",
                BatchStatement.of(
                                "with x AS (SELECT id FROM tpc_batch) SELECT * FROM x",
                                List.of("id"),
                                List.of("text"))
                        .sql());
        assertTrue(BatchStatement.of(
                        "WITH RECURSIVE r AS (SELECT 1) SELECT * FROM tpc_batch",
                        List.of("id"),
                        List.of("text"))
                .sql()
                .startsWith("WITH RECURSIVE tpc_batch(\"id\") AS"));
    }

    @Test
    void onlyAReferenceOutsideStringsAndCommentsCounts() {
        assertTrue(BatchStatement.readsBatch("INSERT INTO t SELECT id FROM TPC_BATCH"));
        assertFalse(
                BatchStatement.readsBatch("INSERT INTO t (v) VALUES ('tpc_batch') -- tpc_batch"));
        assertFalse(BatchStatement.readsBatch("INSERT INTO my_tpc_batch_log (v) VALUES (:v)"));
    }

    @Test
    void theConfigurationRefusesWhatCannotBeBound() {
        SinkConfigurationException both = assertThrows(
                SinkConfigurationException.class,
                () -> TableSpec.of(
                        "t", FIELDS, List.of("INSERT INTO t SELECT :id FROM tpc_batch"), TYPES));
        assertTrue(both.getMessage().contains("not both"), both.getMessage());
        SinkConfigurationException untyped = assertThrows(
                SinkConfigurationException.class,
                () -> TableSpec.of(
                        "t", FIELDS, List.of("INSERT INTO t SELECT id FROM tpc_batch"), null));
        assertTrue(untyped.getMessage().contains("needs the SQL type"), untyped.getMessage());
        SinkConfigurationException badType = assertThrows(
                SinkConfigurationException.class,
                () -> TableSpec.of(
                        "t",
                        List.of("id"),
                        List.of("INSERT INTO t SELECT id FROM tpc_batch"),
                        List.of("text[]); DROP TABLE t; --")));
        assertTrue(badType.getMessage().contains("not an SQL type"), badType.getMessage());
        SinkConfigurationException single = assertThrows(
                SinkConfigurationException.class,
                () -> TestDatabase.builder(
                                "batch-single",
                                "staged",
                                List.of("INSERT INTO t SELECT id FROM tpc_batch"),
                                List.of("id"),
                                1)
                        .setJdbcUrl("jdbc:postgresql://127.0.0.1:1/none")
                        .build());
        assertTrue(single.getMessage().contains("addTable"), single.getMessage());
    }

    @Test
    void aBatchAppliedTwiceAddsUpOnlyWhatItInserted() throws Exception {
        TestDatabase.assumeConfigured();
        String suffix = UUID.randomUUID().toString().substring(0, 8);
        String events = "batch_events_" + suffix;
        String totals = "batch_totals_" + suffix;
        String statement = "WITH inserted AS (INSERT INTO " + events + " (id, account, amount, "
                + "note) SELECT id, account, amount, note FROM tpc_batch ON CONFLICT (id) DO "
                + "NOTHING RETURNING account, amount) INSERT INTO " + totals + " (account, total) "
                + "SELECT account, sum(amount) FROM inserted GROUP BY account ON CONFLICT "
                + "(account) DO UPDATE SET total = " + totals + ".total + EXCLUDED.total";
        SinkConfig config = TestDatabase.builder(
                        "batch-" + suffix, "staged", List.of(), List.of(), 1)
                .addTable("events", FIELDS, List.of(statement), TYPES)
                .build();
        try (Connection c = TestDatabase.connect()) {
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TABLE " + events + " (id text PRIMARY KEY, account text NOT "
                        + "NULL, amount bigint NOT NULL, note bytea)");
                st.execute("CREATE TABLE " + totals + " (account text PRIMARY KEY, total "
                        + "numeric NOT NULL)");
            }
            try {
                List<Object[]> rows = Arrays.asList(
                        new Object[] {"e1", "a", 5L, null},
                        new Object[] {"e2", "a", 7L, null},
                        new Object[] {"e3", "b", 11L, null}); // note: NULL in every row
                for (int run = 0; run < 2; run++) {
                    c.setAutoCommit(false);
                    try (StatementBatch batch =
                            new StatementBatch(c, config, config.tables().get(0), null, false)) {
                        for (Object[] row : rows) {
                            batch.add(row);
                        }
                        batch.execute();
                    }
                    c.commit();
                }
                try (Statement st = c.createStatement();
                        ResultSet rs = st.executeQuery("SELECT string_agg(account || '=' || "
                                + "total, ',' ORDER BY account) FROM " + totals)) {
                    rs.next();
                    assertEquals("a=12,b=11", rs.getString(1), "the second batch added nothing");
                }
            } finally {
                c.setAutoCommit(true);
                try (Statement st = c.createStatement()) {
                    st.execute("DROP TABLE " + events + ", " + totals);
                }
            }
        }
    }
}
