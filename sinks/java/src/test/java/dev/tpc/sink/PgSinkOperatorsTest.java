package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.connector.sink2.CommittableMessage;
import org.apache.flink.streaming.api.connector.sink2.CommittableWithLineage;
import org.apache.flink.streaming.runtime.operators.sink.CommitterOperatorFactory;
import org.apache.flink.streaming.runtime.operators.sink.SinkWriterOperatorFactory;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The sink's writer and committer inside Flink's own Sink V2 operators
 * ({@code SinkWriterOperator}, {@code CommitterOperator}), driven by Flink's operator test
 * harnesses against a real PostgreSQL: the order of calls is the one Flink's runtime makes, not
 * one these tests imagine. Each case asserts on the rows in the database.
 */
class PgSinkOperatorsTest {
    private static final List<String> FIELDS = List.of("id", "v");

    private String sinkId;
    private String table;
    private Connection admin;
    private final List<OneInputStreamOperatorTestHarness<?, ?>> harnesses = new ArrayList<>();

    @BeforeEach
    void setUp() throws SQLException {
        TestDatabase.assumeConfigured();
        String suffix = UUID.randomUUID().toString().substring(0, 8);
        sinkId = "operators-" + suffix;
        table = "operators_out_" + suffix;
        admin = TestDatabase.connect();
        admin.setAutoCommit(true);
        try (Statement st = admin.createStatement()) {
            st.execute("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v text)");
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        for (OneInputStreamOperatorTestHarness<?, ?> harness : harnesses) {
            harness.close(); // closing twice is harmless; an unclosed writer would hold its fence
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
                st.execute("DROP TABLE IF EXISTS " + table);
            }
            admin.close();
        }
    }

    private PostgresTwoPhaseCommitSink sink(String mode) {
        return new PostgresTwoPhaseCommitSink(TestDatabase.config(
                sinkId,
                mode,
                List.of("INSERT INTO " + table + " (id, v) VALUES (:id, :v)"),
                FIELDS,
                10));
    }

    private OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>> writer(
            PostgresTwoPhaseCommitSink sink) throws Exception {
        OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>> harness =
                new OneInputStreamOperatorTestHarness<>(new SinkWriterOperatorFactory<>(sink));
        harnesses.add(harness);
        harness.open();
        return harness;
    }

    private OneInputStreamOperatorTestHarness<
                    CommittableMessage<PgCommittable>, CommittableMessage<PgCommittable>>
            committer(PostgresTwoPhaseCommitSink sink) throws Exception {
        // Streaming with checkpointing: the committer commits at completed checkpoints only.
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

    /** What the writer emitted since the last call: committables go on to the committer. */
    private static List<StreamRecord<CommittableMessage<PgCommittable>>> drain(
            OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>> writer) {
        List<StreamRecord<CommittableMessage<PgCommittable>>> records = new ArrayList<>();
        for (StreamRecord<? extends CommittableMessage<PgCommittable>> record :
                writer.extractOutputStreamRecords()) {
            records.add(new StreamRecord<>(record.getValue()));
        }
        writer.getOutput().clear();
        return records;
    }

    private static void deliver(
            OneInputStreamOperatorTestHarness<CommittableMessage<PgCommittable>, ?> committer,
            List<StreamRecord<CommittableMessage<PgCommittable>>> records)
            throws Exception {
        for (StreamRecord<CommittableMessage<PgCommittable>> record : records) {
            committer.processElement(record);
        }
    }

    private static long checkpointOf(
            List<StreamRecord<CommittableMessage<PgCommittable>>> records) {
        return records.stream()
                .map(StreamRecord::getValue)
                .filter(m -> m instanceof CommittableWithLineage)
                .mapToLong(CommittableMessage::getCheckpointId)
                .findFirst()
                .orElseThrow(() -> new AssertionError("no committable in " + records));
    }

    /** The SinkConfigurationException that {@code refused} carries (a test fails without one). */
    private static SinkConfigurationException configurationRefusal(Exception refused) {
        Throwable cause = refused;
        while (cause != null && !(cause instanceof SinkConfigurationException)) {
            cause = cause.getCause();
        }
        assertNotNull(cause, "no SinkConfigurationException in " + refused);
        return (SinkConfigurationException) cause;
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

    @ParameterizedTest
    @ValueSource(strings = {"prepared", "staged"})
    void theTailAfterEndOfInputCommitsWithTheFinalCheckpointAfterAnEarlierOne(String mode)
            throws Exception {
        PostgresTwoPhaseCommitSink sink = sink(mode);
        var writer = writer(sink);
        var committer = committer(sink);
        committer.open();

        write(writer, 1, 2, 3);
        writer.prepareSnapshotPreBarrier(1);
        writer.snapshot(1, 1);
        List<StreamRecord<CommittableMessage<PgCommittable>>> first = drain(writer);
        write(writer, 4, 5);
        writer.endInput(); // the tail is pre-committed here, for the checkpoint after the last one
        List<StreamRecord<CommittableMessage<PgCommittable>>> tail = drain(writer);
        long finalCheckpoint = checkpointOf(tail);
        assertEquals(2, finalCheckpoint);

        deliver(committer, first);
        deliver(committer, tail);
        committer.endInput(); // with checkpointing on, this commits nothing: a final one follows
        assertEquals(List.of(), ids());

        // Checkpoint 1 completes only now, after the end of input: its rows, not the tail's.
        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids());

        writer.snapshot(finalCheckpoint, 2);
        committer.snapshot(finalCheckpoint, 2);
        committer.notifyOfCompletedCheckpoint(finalCheckpoint);
        writer.notifyOfCompletedCheckpoint(finalCheckpoint);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L), ids());

        // A late duplicate notification (the runtime may send the max again) changes nothing.
        committer.notifyOfCompletedCheckpoint(finalCheckpoint);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L), ids());
    }

    @ParameterizedTest
    @ValueSource(strings = {"prepared", "staged"})
    void aTransientCommitFailureIsRetriedByTheOperatorAndCommitsOnce(String mode) throws Exception {
        PostgresTwoPhaseCommitSink sink = sink(mode);
        var writer = writer(sink);
        var committer = committer(sink);
        committer.open();

        write(writer, 1);
        writer.prepareSnapshotPreBarrier(1);
        deliver(committer, drain(writer));
        committer.notifyOfCompletedCheckpoint(1); // opens the committer's connection
        assertEquals(List.of(1L), ids());
        int before = committerBackend();

        write(writer, 2, 3);
        writer.prepareSnapshotPreBarrier(2);
        deliver(committer, drain(writer));
        terminate(before);
        // The first attempt meets the dead session (57P01/08006, transient): the committer
        // asks for retryLater, the operator calls again (sink.committer.retries), and the
        // retry on a new connection commits. Nothing is thrown.
        committer.notifyOfCompletedCheckpoint(2);
        assertEquals(List.of(1L, 2L, 3L), ids());
        assertNotEquals(before, committerBackend(), "the retry ran on a new connection");
    }

    @ParameterizedTest
    @ValueSource(strings = {"prepared", "staged"})
    void committablesRedeliveredAfterARestoreAreAlreadyCommitted(String mode) throws Exception {
        PostgresTwoPhaseCommitSink sink = sink(mode);
        var writer = writer(sink);
        var committer = committer(sink);
        committer.open();

        write(writer, 1, 2, 3);
        writer.prepareSnapshotPreBarrier(1);
        List<StreamRecord<CommittableMessage<PgCommittable>>> committables = drain(writer);
        deliver(committer, committables);
        // The checkpoint holds the committables (the committer snapshots before it commits);
        // the commit then happens, and the job fails before the next checkpoint.
        OperatorSubtaskState state = committer.snapshot(1, 1);
        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids());
        committer.close();

        var restored = committer(sink);
        restored.initializeState(state);
        restored.open();
        // Flink's harness restores as checkpoint 0 (CommitterOperatorTestBase#testStateRestore
        // says so), so the restored committables are committed at the next notification.
        restored.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids(), "the committed transaction counts as done");
        assertEquals(1, committedInLog(), "logged once");

        // Delivered once more by a second restore of the same checkpoint: still done.
        restored.close();
        var again = committer(sink);
        again.initializeState(state);
        again.open();
        again.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids());
    }

    @ParameterizedTest
    @ValueSource(strings = {"prepared", "staged"})
    void aRestoreCommitsWhatTheLostNotificationDidNotAndARestoreAgainDoublesNothing(String mode)
            throws Exception {
        PostgresTwoPhaseCommitSink sink = sink(mode);
        var writer = writer(sink);
        var committer = committer(sink);
        committer.open();

        write(writer, 7, 8);
        writer.prepareSnapshotPreBarrier(1);
        deliver(committer, drain(writer));
        OperatorSubtaskState state = committer.snapshot(1, 1);
        committer.close(); // checkpoint 1 completed, but the job failed before the notification
        assertEquals(List.of(), ids());

        var restored = committer(sink);
        restored.initializeState(state);
        restored.open();
        restored.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(7L, 8L), ids(), "the restored committables reach the committer");
        restored.close();

        var again = committer(sink);
        again.initializeState(state);
        again.open();
        again.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(7L, 8L), ids());
        assertEquals(1, committedInLog());
    }

    /**
     * A checkpoint taken after checkpoints 1 and 2 committed, with nothing pending, restored onto
     * a database that lost checkpoint 2's commit (an asynchronous standby promoted before it
     * arrived): the committer has nothing to check, so the writer must see the commit log behind
     * its state and stop. Restored onto the database that kept everything, it goes on.
     */
    @ParameterizedTest
    @ValueSource(strings = {"prepared", "staged"})
    void aRestoreOntoACommitLogThatLostCommitsOfTheCheckpointIsRefused(String mode)
            throws Exception {
        PostgresTwoPhaseCommitSink sink = sink(mode);
        var writer = writer(sink);
        var committer = committer(sink);
        committer.open();
        write(writer, 1, 2);
        writer.prepareSnapshotPreBarrier(1);
        writer.snapshot(1, 1);
        deliver(committer, drain(writer));
        committer.notifyOfCompletedCheckpoint(1);
        write(writer, 3);
        writer.prepareSnapshotPreBarrier(2);
        writer.snapshot(2, 2);
        deliver(committer, drain(writer));
        committer.notifyOfCompletedCheckpoint(2);
        writer.prepareSnapshotPreBarrier(3);
        OperatorSubtaskState idle = writer.snapshot(3, 3); // saw both commits; nothing pending
        assertEquals(
                0,
                drain(writer).stream()
                        .filter(r -> r.getValue() instanceof CommittableWithLineage)
                        .count());
        writer.close();
        committer.close();
        assertEquals(List.of(1L, 2L, 3L), ids());

        var intact = new OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>>(
                new SinkWriterOperatorFactory<>(sink));
        intact.setRestoredCheckpointId(3);
        intact.initializeState(idle);
        intact.open();
        intact.close();

        // The database goes back in time: checkpoint 2's commit and its row are gone.
        try (Statement st = admin.createStatement()) {
            st.execute("DELETE FROM " + table + " WHERE id = 3");
            assertEquals(
                    1,
                    st.executeUpdate("DELETE FROM tpc_commit_log WHERE sink_id = '" + sinkId
                            + "' AND counter = 2"));
        }
        var behind = new OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>>(
                new SinkWriterOperatorFactory<>(sink));
        behind.setRestoredCheckpointId(3);
        Exception refused = assertThrows(Exception.class, () -> {
            behind.initializeState(idle);
            behind.open();
        });
        Throwable cause = configurationRefusal(refused);
        assertTrue(
                cause.getMessage()
                        .startsWith("sink '" + sinkId + "' refuses to restore checkpoint 3: "
                                + "when it was taken, the commit log held this job's "
                                + "transactions up to checkpoint 2, but the database now holds "
                                + "them only up to checkpoint 1."),
                cause.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"prepared", "staged"})
    void aFreshStartOnASinkIdThatCommittedIsRefusedUnlessItsStatementsAreIdempotent(String mode)
            throws Exception {
        PostgresTwoPhaseCommitSink sink = sink(mode);
        var writer = writer(sink);
        var committer = committer(sink);
        committer.open();
        write(writer, 1, 2);
        writer.prepareSnapshotPreBarrier(1);
        deliver(committer, drain(writer));
        committer.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L), ids());
        writer.close();
        committer.close();

        // The same sink id, restoring nothing: the same command run a second time. (Not in
        // `harnesses`: a harness whose open failed is not closed again.)
        var again = new OneInputStreamOperatorTestHarness<Row, CommittableMessage<PgCommittable>>(
                new SinkWriterOperatorFactory<>(sink));
        Exception refused = assertThrows(Exception.class, again::open);
        Throwable cause = configurationRefusal(refused);
        assertTrue(
                cause.getMessage()
                        .startsWith("sink '" + sinkId + "' refuses a fresh start: it already "
                                + "committed input of an earlier run (1 transaction in its "
                                + "commit log, the newest at "),
                cause.getMessage());
        assertEquals(List.of(1L, 2L), ids());

        // Statements that apply a row again without effect make the replay harmless: allowed.
        PostgresTwoPhaseCommitSink idempotent = new PostgresTwoPhaseCommitSink(TestDatabase.builder(
                        sinkId,
                        mode,
                        List.of("INSERT INTO " + table
                                + " (id, v) VALUES (:id, :v) ON CONFLICT (id) DO NOTHING"),
                        FIELDS,
                        10)
                .setIdempotentStatements(true)
                .build());
        var replay = writer(idempotent);
        var replayCommitter = committer(idempotent);
        replayCommitter.open();
        write(replay, 1, 2, 3);
        replay.prepareSnapshotPreBarrier(1);
        deliver(replayCommitter, drain(replay));
        replayCommitter.notifyOfCompletedCheckpoint(1);
        assertEquals(List.of(1L, 2L, 3L), ids());
    }

    private long committedInLog() throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery(
                        "SELECT count(*) FROM tpc_commit_log WHERE sink_id = '" + sinkId + "'")) {
            rs.next();
            return rs.getLong(1);
        }
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
            assertEquals(true, rs.getBoolean(1), "the committer's session");
        }
    }
}
