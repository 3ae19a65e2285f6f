package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.streaming.api.connector.sink2.CommittableMessage;
import org.apache.flink.streaming.runtime.operators.sink.CommitterOperatorFactory;
import org.apache.flink.streaming.runtime.operators.sink.SinkWriterOperatorFactory;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Several tables through one sink ({@link SinkConfigBuilder#addTable}), through Flink's Sink V2
 * operators against a real PostgreSQL: two writer subtasks take envelopes of two tables, where
 * a row of the second table refers (foreign key) to a row of the first that arrived after it
 * (and, in checkpoint scope, that the other subtask wrote). All tables of a transaction are
 * committed together, tables in the order they were added.
 */
class MultiTableTest {
    private String sinkId;
    private String parent;
    private String child;
    private Connection admin;
    private final List<OneInputStreamOperatorTestHarness<?, ?>> harnesses = new ArrayList<>();

    @BeforeEach
    void setUp() throws SQLException {
        TestDatabase.assumeConfigured();
        String suffix = UUID.randomUUID().toString().substring(0, 8);
        sinkId = "tables-" + suffix;
        parent = "tables_parent_" + suffix;
        child = "tables_child_" + suffix;
        admin = TestDatabase.connect();
        admin.setAutoCommit(true);
        try (Statement st = admin.createStatement()) {
            st.execute("CREATE TABLE " + parent + " (id bigint PRIMARY KEY, v text, "
                    + "at timestamptz NOT NULL DEFAULT now())");
            st.execute("CREATE TABLE " + child + " (k text PRIMARY KEY, parent_id bigint NOT "
                    + "NULL REFERENCES " + parent + " (id), n bigint NOT NULL, "
                    + "at timestamptz NOT NULL DEFAULT now())");
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        for (OneInputStreamOperatorTestHarness<?, ?> harness : harnesses) {
            harness.close();
        }
        if (admin != null) {
            try (Statement st = admin.createStatement()) {
                List<String> gids = new ArrayList<>();
                try (ResultSet rs = st.executeQuery("SELECT gid FROM pg_prepared_xacts WHERE "
                        + "starts_with(gid, '" + TransactionId.sinkPrefix(sinkId) + "')")) {
                    while (rs.next()) {
                        gids.add(rs.getString(1));
                    }
                }
                for (String gid : gids) {
                    st.execute("ROLLBACK PREPARED " + TransactionId.quoted(gid));
                }
                st.execute("DROP TABLE IF EXISTS " + child);
                st.execute("DROP TABLE IF EXISTS " + parent);
            }
            admin.close();
        }
    }

    private SinkConfig config(String mode, String scope) {
        return builder(mode, scope).build();
    }

    private SinkConfigBuilder builder(String mode, String scope) {
        // No fields and statements of the sink's own: it takes the first table's.
        return TestDatabase.builder(sinkId, mode, List.of(), List.of(), 5)
                .setCommitScope(scope)
                .addTable(
                        "parent",
                        List.of("id", "v"),
                        List.of("INSERT INTO " + parent + " (id, v) VALUES (:id, :v)"))
                .addTable(
                        "child",
                        List.of("k", "parent_id", "n"),
                        List.of("INSERT INTO " + child + " (k, parent_id, n) VALUES (:k, "
                                + ":parent_id, :n) ON CONFLICT (k) DO UPDATE SET n = "
                                + child + ".n + EXCLUDED.n"));
    }

    private static Row parentRow(long id) throws Exception {
        return Row.of(0, RowCodec.encode(new Object[] {id, "v" + id}));
    }

    private static Row childRow(String k, long parentId, long n) throws Exception {
        return Row.of(1, RowCodec.encode(new Object[] {k, parentId, n}));
    }

    private OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>> writer(
            PostgresTwoPhaseCommitSink sink, int subtask) throws Exception {
        var harness = new OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>>(
                new SinkWriterOperatorFactory<>(sink), 2, 2, subtask);
        harnesses.add(harness);
        harness.open();
        return harness;
    }

    private <T> T track(T harness) {
        harnesses.add((OneInputStreamOperatorTestHarness<?, ?>) harness);
        return harness;
    }

    private static List<StreamRecord<CommittableMessage<PgCommittable>>> drain(
            OneInputStreamOperatorTestHarness<?, CommittableMessage<PgCommittable>> operator) {
        List<StreamRecord<CommittableMessage<PgCommittable>>> records = new ArrayList<>();
        for (StreamRecord<? extends CommittableMessage<PgCommittable>> record :
                operator.extractOutputStreamRecords()) {
            records.add(new StreamRecord<>(record.getValue()));
        }
        operator.getOutput().clear();
        return records;
    }

    private long count(String sql) throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    @ParameterizedTest
    @CsvSource({"staged, checkpoint", "staged, subtask", "prepared, subtask"})
    void twoTablesFromTwoSubtasksCommitTogetherInTableOrder(String mode, String scope)
            throws Exception {
        PostgresTwoPhaseCommitSink sink = new PostgresTwoPhaseCommitSink(config(mode, scope));
        boolean checkpointScope = "checkpoint".equals(scope);
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = track(new OneInputStreamOperatorTestHarness<
                CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>(
                new CheckpointCommittables(sinkId)));
        aggregation.open();
        var committer = track(new OneInputStreamOperatorTestHarness<
                CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>(
                new CommitterOperatorFactory<>(sink, false, true)));
        committer.open();

        // Subtask 0 writes a child before its parent; in checkpoint scope subtask 1 also writes
        // a child of subtask 0's parent (one transaction holds both).
        w0.processElement(new StreamRecord<>(childRow("a", 3, 5)));
        w0.processElement(new StreamRecord<>(childRow("a", 3, 2))); // the same key again
        w0.processElement(new StreamRecord<>(parentRow(3)));
        w1.processElement(new StreamRecord<>(parentRow(1)));
        if (checkpointScope) {
            w1.processElement(new StreamRecord<>(childRow("b", 3, 1)));
        }
        for (var w : List.of(w1, w0)) {
            w.prepareSnapshotPreBarrier(1);
            var out = drain(w);
            for (var record : out) {
                if (checkpointScope) {
                    aggregation.processElement(record);
                } else {
                    committer.processElement(record);
                }
            }
        }
        if (checkpointScope) {
            aggregation.prepareSnapshotPreBarrier(1);
            for (var record : drain(aggregation)) {
                committer.processElement(record);
            }
        }
        assertEquals(0, count("SELECT count(*) FROM " + child));
        committer.notifyOfCompletedCheckpoint(1);

        assertEquals(2, count("SELECT count(*) FROM " + parent));
        assertEquals(7, count("SELECT n FROM " + child + " WHERE k = 'a'"));
        assertEquals(
                checkpointScope ? 1 : 0, count("SELECT count(*) FROM " + child + " WHERE k = 'b'"));
        long transactions = count("SELECT count(DISTINCT at) FROM (SELECT at FROM " + parent
                + " UNION ALL SELECT at FROM " + child + ") t");
        assertEquals(checkpointScope ? 1 : 2, transactions);
        assertEquals(
                0,
                count("SELECT count(*) FROM tpc_staged_rows WHERE starts_with(gid, '"
                        + TransactionId.sinkPrefix(sinkId) + "')"));
    }

    @Test
    void aRowRefusedInTheSecondTableIsDeadLetteredWithItsTable() throws Exception {
        PostgresTwoPhaseCommitSink sink = new PostgresTwoPhaseCommitSink(
                builder("staged", "checkpoint").setOnRowError("dead_letter").build());
        var w0 = writer(sink, 0);
        var aggregation = track(new OneInputStreamOperatorTestHarness<
                CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>(
                new CheckpointCommittables(sinkId)));
        aggregation.open();
        var committer = track(new OneInputStreamOperatorTestHarness<
                CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>(
                new CommitterOperatorFactory<>(sink, false, true)));
        committer.open();
        w0.processElement(new StreamRecord<>(parentRow(1)));
        w0.processElement(new StreamRecord<>(childRow("orphan", 99, 1))); // no parent 99
        w0.processElement(new StreamRecord<>(childRow("ok", 1, 1)));
        w0.prepareSnapshotPreBarrier(1);
        for (var record : drain(w0)) {
            aggregation.processElement(record);
        }
        aggregation.prepareSnapshotPreBarrier(1);
        for (var record : drain(aggregation)) {
            committer.processElement(record);
        }
        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(1, count("SELECT count(*) FROM " + child));
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery(
                        "SELECT statement, sqlstate, message, fields->>'k' FROM tpc_dead_letters "
                                + "WHERE sink_id = '" + sinkId + "'")) {
            assertTrue(rs.next());
            assertEquals(2, rs.getInt(1), "numbered across tables: the child's first statement");
            assertEquals("23503", rs.getString(2));
            assertTrue(rs.getString(3).startsWith("table child: "), rs.getString(3));
            assertEquals("orphan", rs.getString(4));
        }
    }

    @Test
    void inPreparedModeABatchOfALaterTableFollowsTheEarlierTablesRows() throws Exception {
        // Batches of 2 rows: the children's batch fills while the parent's is still pending.
        SinkConfig config = TestDatabase.builder(sinkId, "prepared", List.of(), List.of(), 5)
                .setBatchSize(2)
                .addTable(
                        "parent",
                        List.of("id", "v"),
                        List.of("INSERT INTO " + parent + " (id, v) VALUES (:id, :v)"))
                .addTable(
                        "child",
                        List.of("k", "parent_id", "n"),
                        List.of("INSERT INTO " + child + " (k, parent_id, n) VALUES (:k, "
                                + ":parent_id, :n)"))
                .build();
        PostgresTwoPhaseCommitSink sink = new PostgresTwoPhaseCommitSink(config);
        var w0 = writer(sink, 0);
        var committer = track(new OneInputStreamOperatorTestHarness<
                CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>(
                new CommitterOperatorFactory<>(sink, false, true)));
        committer.open();
        w0.processElement(new StreamRecord<>(parentRow(1)));
        w0.processElement(new StreamRecord<>(childRow("a", 1, 1)));
        w0.processElement(new StreamRecord<>(childRow("b", 1, 1))); // the children's batch runs
        w0.prepareSnapshotPreBarrier(1);
        for (var record : drain(w0)) {
            committer.processElement(record);
        }
        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(2, count("SELECT count(*) FROM " + child));
    }

    @Test
    void tablesAreCheckedWhenBuilt() {
        java.util.function.Supplier<SinkConfigBuilder> base =
                () -> TestDatabase.builder("t", "staged", List.of(), List.of(), 1)
                        .addTable("a", List.of("id"), List.of("SELECT :id"));
        SinkConfig config = base.get().build();
        assertEquals(List.of("id"), config.fieldNames(), "the first table's, when none given");
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class,
                () -> base.get()
                        .addTable("a", List.of("id"), List.of("SELECT :id"))
                        .build());
        assertTrue(e.getMessage().startsWith("addTable: table 'a' is added twice"), e.getMessage());
        e = assertThrows(
                SinkConfigurationException.class,
                () -> base.get()
                        .addTable("b", List.of("id"), List.of("SELECT :nope"))
                        .build());
        assertTrue(e.getMessage().startsWith("addTable: table 'b': "), e.getMessage());
        assertThrows(
                SinkConfigurationException.class,
                () -> base.get()
                        .addTable("no-dash", List.of("id"), List.of("SELECT :id"))
                        .build());
        assertEquals(0, config.tableIndex("a"));
        assertEquals(1, config.tables().size());
        assertThrows(SinkConfigurationException.class, () -> config.tableIndex("b"));
    }
}
