package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.connector.sink2.CommittableMessage;
import org.apache.flink.streaming.api.connector.sink2.CommittableSummary;
import org.apache.flink.streaming.api.connector.sink2.CommittableWithLineage;
import org.apache.flink.streaming.runtime.operators.sink.CommitterOperatorFactory;
import org.apache.flink.streaming.runtime.operators.sink.SinkWriterOperatorFactory;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Checkpoint scope inside Flink's own Sink V2 operators, against a real PostgreSQL: two writer
 * subtasks ({@code SinkWriterOperator}, subtasks 0 and 1 of 2), the pre-commit aggregation
 * ({@link CheckpointCommittables}) and Flink's {@code CommitterOperator}, in the order Flink's
 * runtime calls them. Each case asserts on the rows in the database, and that a checkpoint's rows
 * of both subtasks became visible in one transaction (one transaction start time).
 */
class CheckpointScopeTest {
    private static final List<String> FIELDS = List.of("id", "v");

    private String sinkId;
    private String table;
    private Connection admin;
    private final List<OneInputStreamOperatorTestHarness<?, ?>> harnesses = new ArrayList<>();

    @BeforeEach
    void setUp() throws SQLException {
        TestDatabase.assumeConfigured();
        String suffix = UUID.randomUUID().toString().substring(0, 8);
        sinkId = "scope-" + suffix;
        table = "scope_out_" + suffix;
        admin = TestDatabase.connect();
        admin.setAutoCommit(true);
        try (Statement st = admin.createStatement()) {
            st.execute("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v text, "
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
                st.execute("DROP TABLE IF EXISTS " + table);
            }
            admin.close();
        }
    }

    private PostgresTwoPhaseCommitSink sink() {
        return new PostgresTwoPhaseCommitSink(TestDatabase.builder(
                        sinkId,
                        "staged",
                        List.of("INSERT INTO " + table + " (id, v) VALUES (:id, :v)"),
                        FIELDS,
                        5)
                .setCommitScope("checkpoint")
                .build());
    }

    private OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>> writer(
            PostgresTwoPhaseCommitSink sink, int subtask) throws Exception {
        OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>> harness =
                new OneInputStreamOperatorTestHarness<>(
                        new SinkWriterOperatorFactory<>(sink), 2, 2, subtask);
        harnesses.add(harness);
        harness.open();
        return harness;
    }

    private OneInputStreamOperatorTestHarness<
                    CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>
            aggregation() throws Exception {
        OneInputStreamOperatorTestHarness<
                        CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>
                harness =
                        new OneInputStreamOperatorTestHarness<>(new CheckpointCommittables(sinkId));
        harnesses.add(harness);
        harness.open();
        return harness;
    }

    private OneInputStreamOperatorTestHarness<
                    CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>
            committer(PostgresTwoPhaseCommitSink sink) throws Exception {
        OneInputStreamOperatorTestHarness<
                        CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>
                harness = new OneInputStreamOperatorTestHarness<>(
                        new CommitterOperatorFactory<>(sink, false, true));
        harnesses.add(harness);
        return harness;
    }

    private static void write(OneInputStreamOperatorTestHarness<Row, ?> writer, long... ids)
            throws Exception {
        for (long id : ids) {
            writer.processElement(new StreamRecord<>(Row.of(id, "v" + id)));
        }
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

    private static void deliver(
            OneInputStreamOperatorTestHarness<CommittableMessage<PgCommittable>, ?> to,
            List<StreamRecord<CommittableMessage<PgCommittable>>> records)
            throws Exception {
        for (StreamRecord<CommittableMessage<PgCommittable>> record : records) {
            to.processElement(record);
        }
    }

    /** Barrier {@code checkpoint} through both writers and the aggregation: its output. */
    private static List<StreamRecord<CommittableMessage<PgCommittable>>> checkpoint(
            long checkpoint,
            OneInputStreamOperatorTestHarness<
                            CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>
                    aggregation,
            List<OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>>> writers)
            throws Exception {
        for (var writer : writers) {
            writer.prepareSnapshotPreBarrier(checkpoint);
            deliver(aggregation, drain(writer));
            writer.snapshot(checkpoint, checkpoint);
        }
        aggregation.prepareSnapshotPreBarrier(checkpoint);
        return drain(aggregation);
    }

    private List<Long> ids() throws SQLException {
        List<Long> ids = new ArrayList<>();
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery("SELECT id FROM " + table + " ORDER BY id")) {
            while (rs.next()) {
                ids.add(rs.getLong(1));
            }
        }
        return ids;
    }

    /**
     * How many transactions wrote the given rows: each row holds its transaction's start time
     * ({@code now()}; not {@code xmin}, which differs under the savepoints every batch takes).
     */
    private long transactionsOf(String where) throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery(
                        "SELECT count(DISTINCT at) FROM " + table + " WHERE " + where)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private long count(String sql) throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private long logged() throws SQLException {
        return count("SELECT count(*) FROM tpc_commit_log WHERE sink_id = '" + sinkId
                + "' AND mode = 'CHECKPOINT'");
    }

    private long staged() throws SQLException {
        return count("SELECT count(*) FROM tpc_staged_batches WHERE sink_id = '" + sinkId + "'");
    }

    @Test
    void bothSubtasksOfACheckpointBecomeVisibleInOneTransaction() throws Exception {
        PostgresTwoPhaseCommitSink sink = sink();
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = aggregation();
        var committer = committer(sink);
        committer.open();

        write(w0, 1, 2, 3, 4, 5, 6, 7); // more than one batch (5) per subtask
        write(w1, 11, 12);
        List<StreamRecord<CommittableMessage<PgCommittable>>> out =
                checkpoint(1, aggregation, List.of(w0, w1));
        assertEquals(2, out.size(), "one summary and one committable: " + out);
        CommittableSummary<?> summary = (CommittableSummary<?>) out.get(0).getValue();
        assertEquals(0, summary.getSubtaskId());
        assertEquals(1, summary.getNumberOfSubtasks());
        assertEquals(1, summary.getCheckpointId());
        assertEquals(1, summary.getNumberOfCommittables());
        PgCommittable committable =
                ((CommittableWithLineage<PgCommittable>) out.get(1).getValue()).getCommittable();
        assertEquals(2, committable.members.size());
        assertEquals(9, committable.rowCount);

        deliver(committer, out);
        committer.snapshot(1, 1);
        assertEquals(List.of(), ids(), "nothing visible before the checkpoint completed");
        assertEquals(2, staged());
        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L, 11L, 12L), ids());
        assertEquals(1, transactionsOf("true"), "both subtasks' rows in one transaction");
        assertEquals(2, logged(), "each subtask's batch logged, in that transaction");
        assertEquals(0, staged());

        // The next checkpoint: its own transaction.
        write(w1, 13);
        write(w0, 8);
        deliver(committer, checkpoint(2, aggregation, List.of(w0, w1)));
        committer.snapshot(2, 2);
        committer.notifyOfCompletedCheckpoint(2);
        assertEquals(1, transactionsOf("id IN (8, 13)"));
        assertEquals(2, transactionsOf("true"));
    }

    @Test
    void anEmptyCheckpointHandsTheCommitterNothing() throws Exception {
        PostgresTwoPhaseCommitSink sink = sink();
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = aggregation();
        assertEquals(List.of(), checkpoint(1, aggregation, List.of(w0, w1)));
        write(w1, 1); // only one subtask has rows: one member
        List<StreamRecord<CommittableMessage<PgCommittable>>> out =
                checkpoint(2, aggregation, List.of(w0, w1));
        assertEquals(
                1,
                ((CommittableWithLineage<PgCommittable>) out.get(1).getValue())
                        .getCommittable()
                        .members
                        .size());
        assertEquals(
                0,
                count("SELECT count(*) FROM tpc_staged_batches WHERE sink_id = '" + sinkId
                        + "' AND subtask = 0"),
                "the empty subtask staged nothing");
    }

    @Test
    void aTransientCommitFailureIsRetriedAndTheCheckpointAppliedOnce() throws Exception {
        PostgresTwoPhaseCommitSink sink = sink();
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = aggregation();
        var committer = committer(sink);
        committer.open();

        write(w0, 1);
        deliver(committer, checkpoint(1, aggregation, List.of(w0, w1)));
        committer.notifyOfCompletedCheckpoint(1); // opens the committer's connection
        int before = committerBackend();

        write(w0, 2, 3);
        write(w1, 4);
        deliver(committer, checkpoint(2, aggregation, List.of(w0, w1)));
        terminate(before);
        committer.notifyOfCompletedCheckpoint(2);
        assertEquals(List.of(1L, 2L, 3L, 4L), ids());
        assertNotEquals(before, committerBackend(), "the retry ran on a new connection");
        assertEquals(1, transactionsOf("id IN (2, 3, 4)"));
        assertEquals(3, logged());
    }

    @Test
    void aCheckpointRedeliveredByRestoresIsAlreadyCommitted() throws Exception {
        PostgresTwoPhaseCommitSink sink = sink();
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = aggregation();
        var committer = committer(sink);
        committer.open();

        write(w0, 1, 2);
        write(w1, 3);
        deliver(committer, checkpoint(1, aggregation, List.of(w0, w1)));
        OperatorSubtaskState state = committer.snapshot(1, 1);
        committer.close(); // checkpoint 1 completed, the job failed before the notification
        assertEquals(List.of(), ids());

        var restored = committer(sink);
        restored.initializeState(state);
        restored.open();
        restored.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids(), "the restored checkpoint is committed");
        restored.close();

        var again = committer(sink);
        again.initializeState(state);
        again.open();
        again.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids(), "and counts as done the second time");
        assertEquals(2, logged());
    }

    @Test
    void aPartlyMissingCheckpointStopsTheJobInsteadOfApplyingHalfOfIt() throws Exception {
        PostgresTwoPhaseCommitSink sink = sink();
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = aggregation();
        var committer = committer(sink);
        committer.open();

        write(w0, 1);
        write(w1, 2);
        deliver(committer, checkpoint(1, aggregation, List.of(w0, w1)));
        try (Statement st = admin.createStatement()) {
            st.execute("DELETE FROM tpc_staged_batches WHERE sink_id = '" + sinkId
                    + "' AND subtask = 1");
        }
        Exception e = assertThrows(Exception.class, () -> committer.notifyOfCompletedCheckpoint(1));
        assertTrue(String.valueOf(rootMessage(e)).contains("is incomplete"), rootMessage(e));
        assertEquals(List.of(), ids());
    }

    @Test
    void theTailsOfWritersThatEndAtDifferentTimesCommitWithTheFinalCheckpoint() throws Exception {
        PostgresTwoPhaseCommitSink sink = sink();
        var w0 = writer(sink, 0);
        var w1 = writer(sink, 1);
        var aggregation = aggregation();
        var committer = committer(sink);
        committer.open();

        write(w0, 1);
        write(w1, 2);
        deliver(committer, checkpoint(1, aggregation, List.of(w0, w1)));
        write(w0, 3);
        w0.endInput(); // subtask 0's input ends: its tail is labelled checkpoint 2
        deliver(aggregation, drain(w0));
        write(w1, 4);
        w1.prepareSnapshotPreBarrier(2); // checkpoint 2 still runs in subtask 1
        deliver(aggregation, drain(w1));
        aggregation.prepareSnapshotPreBarrier(2);
        deliver(committer, drain(aggregation));
        write(w1, 5);
        w1.endInput(); // labelled 3
        deliver(aggregation, drain(w1));
        aggregation.endInput();
        List<StreamRecord<CommittableMessage<PgCommittable>>> tail = drain(aggregation);
        assertEquals(3, tail.get(0).getValue().getCheckpointId());
        deliver(committer, tail);
        committer.endInput();

        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L), ids());
        committer.notifyOfCompletedCheckpoint(2);
        assertEquals(List.of(1L, 2L, 3L, 4L), ids());
        assertEquals(1, transactionsOf("id IN (3, 4)"));
        committer.notifyOfCompletedCheckpoint(3);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L), ids());
        assertEquals(0, staged());
    }

    @Test
    void aSubtaskScopeCheckpointRestoredIntoCheckpointScopeIsCommitted() throws Exception {
        // The same sink id and operators in subtask scope, as a job before the switch ran it.
        PostgresTwoPhaseCommitSink before = new PostgresTwoPhaseCommitSink(TestDatabase.config(
                sinkId,
                "staged",
                List.of("INSERT INTO " + table + " (id, v) VALUES (:id, :v)"),
                FIELDS,
                5));
        var w0 = writer(before, 0);
        var w1 = writer(before, 1);
        var oldCommitter = committer(before);
        oldCommitter.open();
        write(w0, 1, 2);
        write(w1, 3);
        for (var w : List.of(w0, w1)) {
            w.prepareSnapshotPreBarrier(1);
            deliver(oldCommitter, drain(w));
        }
        OperatorSubtaskState state = oldCommitter.snapshot(1, 1);
        oldCommitter.close(); // stopped with checkpoint 1, before its notification

        var restored = committer(sink()); // now in checkpoint scope
        restored.initializeState(state);
        restored.open();
        restored.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids(), "the old one-subtask committables commit");
        assertEquals(0, staged());
    }

    @Test
    void checkpointScopeNeedsStagedMode() {
        SinkConfigurationException e = assertThrows(
                SinkConfigurationException.class,
                () -> TestDatabase.builder(sinkId, "prepared", List.of("SELECT 1"), FIELDS, 1)
                        .setCommitScope("checkpoint")
                        .build());
        assertTrue(e.getMessage().contains("needs commit mode 'staged'"), e.getMessage());
        assertThrows(
                SinkConfigurationException.class,
                () -> TestDatabase.builder(sinkId, "staged", List.of("SELECT 1"), FIELDS, 1)
                        .setCommitScope("job")
                        .build());
    }

    private static String rootMessage(Throwable e) {
        while (e.getCause() != null) {
            e = e.getCause();
        }
        return e.getMessage();
    }

    private int committerBackend() throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery("SELECT pid FROM pg_stat_activity WHERE "
                        + "application_name = 'tpc-sink-" + sinkId + "-0-committer'")) {
            return rs.next() ? rs.getInt(1) : -1;
        }
    }

    private void terminate(int pid) throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery("SELECT pg_terminate_backend(" + pid + ")")) {
            rs.next();
            assertTrue(rs.getBoolean(1), "the committer's session");
        }
    }
}
