package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.api.common.TaskInfo;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.metrics.SimpleCounter;
import org.apache.flink.metrics.groups.SinkCommitterMetricGroup;
import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.reflect.Proxy;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.UUID;

/**
 * The committer against a real PostgreSQL, driven as Flink's committer operator drives it: a
 * commit call per completed checkpoint, the same committables again after a restore, and
 * another call right away for every request that asked to be retried.
 */
class PgCommitterTest {
    private static final List<String> FIELDS = List.of("id", "v");

    private String sinkId;
    private String table;
    private Connection admin;
    private Committer<PgCommittable> committer;

    @BeforeEach
    void setUp() throws SQLException {
        TestDatabase.assumeConfigured();
        String suffix = UUID.randomUUID().toString().substring(0, 8);
        sinkId = "committer-" + suffix;
        table = "committer_out_" + suffix;
        admin = TestDatabase.connect();
        admin.setAutoCommit(true);
        try (Statement st = admin.createStatement()) {
            st.execute("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v text)");
        }
        new ControlTables("public").ensure(admin);
    }

    @AfterEach
    void tearDown() throws Exception {
        if (committer != null) {
            committer.close();
        }
        if (admin != null) {
            try (Statement st = admin.createStatement();
                    ResultSet rs = st.executeQuery("SELECT gid FROM pg_prepared_xacts WHERE "
                            + "starts_with(gid, '" + TransactionId.sinkPrefix(sinkId) + "')")) {
                while (rs.next()) {
                    try (Statement rollback = admin.createStatement()) {
                        rollback.execute(
                                "ROLLBACK PREPARED " + TransactionId.quoted(rs.getString(1)));
                    }
                }
            }
            try (Statement st = admin.createStatement()) {
                st.execute("DROP TABLE IF EXISTS " + table);
            }
            admin.close();
        }
    }

    private Committer<PgCommittable> committer(String mode, int maxCommitRetries) {
        SinkConfig config = TestDatabase.config(
                sinkId,
                mode,
                List.of("INSERT INTO " + table + " (id, v) VALUES (:id, :v)"),
                FIELDS,
                maxCommitRetries);
        committer = new PgCommitter(config, initContext());
        return committer;
    }

    /** What a writer leaves at pre-commit in prepared mode: rows, a log row, PREPARE. */
    private PgCommittable prepared(long counter, long id) throws SQLException {
        TransactionId tx = TransactionId.create(sinkId, 0, counter, "job.0");
        try (Connection c = TestDatabase.connect()) {
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.execute("INSERT INTO " + table + " VALUES (" + id + ", 'p')");
                st.execute("INSERT INTO tpc_commit_log (gid, sink_id, subtask, counter, "
                        + "row_count, lineage, mode) VALUES ('" + tx.gid + "', '" + sinkId
                        + "', 0, " + counter + ", 1, 'l', 'PREPARED')");
                st.execute("PREPARE TRANSACTION " + TransactionId.quoted(tx.gid));
            }
        }
        return new PgCommittable(tx.gid, CommitMode.PREPARED, 1, System.currentTimeMillis());
    }

    /** What a writer leaves at pre-commit in staged mode: the rows and their batch, committed. */
    private PgCommittable staged(long counter, long... ids) throws SQLException, IOException {
        TransactionId tx = TransactionId.create(sinkId, 0, counter, "job.0");
        try (Connection c = TestDatabase.connect();
                PreparedStatement row = c.prepareStatement(
                        "INSERT INTO tpc_staged_rows (gid, seq, payload) VALUES (?, ?, ?)");
                PreparedStatement batch = c.prepareStatement(
                        "INSERT INTO tpc_staged_batches (gid, "
                                + "sink_id, subtask, counter, row_count, lineage) VALUES (?, ?, 0, ?, ?, 'l')")) {
            for (int seq = 0; seq < ids.length; seq++) {
                row.setString(1, tx.gid);
                row.setLong(2, seq);
                row.setBytes(3, RowCodec.encode(new Object[] {ids[seq], "s" + ids[seq]}));
                row.executeUpdate();
            }
            batch.setString(1, tx.gid);
            batch.setString(2, sinkId);
            batch.setLong(3, counter);
            batch.setLong(4, ids.length);
            batch.executeUpdate();
        }
        return new PgCommittable(tx.gid, CommitMode.STAGED, ids.length, System.currentTimeMillis());
    }

    private long rows() throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery("SELECT count(*) FROM " + table)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private boolean inCommitLog(String gid) throws SQLException {
        try (PreparedStatement ps =
                admin.prepareStatement("SELECT 1 FROM tpc_commit_log WHERE gid = ?")) {
            ps.setString(1, gid);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next();
            }
        }
    }

    @Test
    void preparedCommitsAndARedeliveryAfterARestoreIsAlreadyCommitted() throws Exception {
        Committer<PgCommittable> committer = committer("prepared", 3);
        PgCommittable c = prepared(1, 10);
        Request first = new Request(c, 0);
        committer.commit(List.of(first));
        assertFalse(first.alreadyCommitted || first.retryLater);
        assertEquals(1, rows());

        Request again = new Request(c, 0); // the restored checkpoint hands it over once more
        committer.commit(List.of(again));
        assertTrue(again.alreadyCommitted);
        assertEquals(1, rows());
    }

    @Test
    void stagedAppliesTheRowsOnceAndARedeliveryIsAlreadyCommitted() throws Exception {
        Committer<PgCommittable> committer = committer("staged", 3);
        PgCommittable c = staged(1, 1, 2, 3);
        Request first = new Request(c, 0);
        committer.commit(List.of(first));
        assertFalse(first.alreadyCommitted || first.retryLater);
        assertEquals(3, rows());
        assertTrue(inCommitLog(c.gid));

        Request again = new Request(c, 0);
        committer.commit(List.of(again));
        assertTrue(again.alreadyCommitted);
        assertEquals(3, rows());
    }

    @Test
    void aTransactionNeitherPendingNorLoggedIsLostAndFailsLoudly() {
        Committer<PgCommittable> committer = committer("prepared", 3);
        String gid = TransactionId.create(sinkId, 0, 7, "job.0").gid;
        for (CommitMode mode : new CommitMode[] {CommitMode.PREPARED, CommitMode.STAGED}) {
            // Not retried: a restart would find it lost again.
            SuppressRestartsException e = assertThrows(
                    SuppressRestartsException.class,
                    () -> committer.commit(
                            List.of(new Request(new PgCommittable(gid, mode, 5, 0), 0))));
            assertTrue(e.getCause().getMessage().contains("is lost"), e.getMessage());
        }
    }

    @Test
    void aKilledConnectionIsRetriedAndTheRetryCommits() throws Exception {
        Committer<PgCommittable> committer = committer("prepared", 3);
        committer.commit(List.of(new Request(prepared(1, 1), 0))); // opens its connection
        terminateCommitterSessions();

        PgCommittable c = prepared(2, 2);
        Request request = new Request(c, 0);
        committer.commit(List.of(request));
        assertTrue(request.retryLater, "a terminated session (57P01/08006) is transient");
        assertEquals(1, rows());

        Request retry = new Request(c, 1); // Flink calls again for requests marked retryLater
        committer.commit(List.of(retry));
        assertFalse(retry.retryLater || retry.alreadyCommitted);
        assertEquals(2, rows());
    }

    @Test
    void whenTheRetriesAreSpentTheCommitFailsAndTheTransactionStaysPrepared() throws Exception {
        Committer<PgCommittable> committer = committer("prepared", 0);
        committer.commit(List.of(new Request(prepared(1, 1), 0)));
        terminateCommitterSessions();

        PgCommittable c = prepared(2, 2);
        IOException e =
                assertThrows(IOException.class, () -> committer.commit(List.of(new Request(c, 0))));
        assertTrue(e.getMessage().contains("after 0 retries"), e.getMessage());
        // Nothing is lost: the restarted job's committer commits it.
        Request afterRestart = new Request(c, 0);
        committer.commit(List.of(afterRestart));
        assertFalse(afterRestart.alreadyCommitted);
        assertEquals(2, rows());
    }

    private void terminateCommitterSessions() throws SQLException {
        try (Statement st = admin.createStatement();
                ResultSet rs = st.executeQuery("SELECT count(pg_terminate_backend(pid)) FROM "
                        + "pg_stat_activity WHERE application_name = 'tpc-sink-" + sinkId
                        + "-0-committer'")) {
            rs.next();
            assertEquals(1, rs.getInt(1), "the committer's session");
        }
    }

    /** A commit request as Flink's committer operator hands it over. */
    private static final class Request implements Committer.CommitRequest<PgCommittable> {
        private final PgCommittable committable;
        private final int retries;
        boolean retryLater;
        boolean alreadyCommitted;

        Request(PgCommittable committable, int retries) {
            this.committable = committable;
            this.retries = retries;
        }

        @Override
        public PgCommittable getCommittable() {
            return committable;
        }

        @Override
        public int getNumberOfRetries() {
            return retries;
        }

        @Override
        public void signalFailedWithKnownReason(Throwable t) {
            throw new AssertionError("unexpected", t);
        }

        @Override
        public void signalFailedWithUnknownReason(Throwable t) {
            throw new AssertionError("unexpected", t);
        }

        @Override
        public void retryLater() {
            retryLater = true;
        }

        @Override
        public void updateAndRetryLater(PgCommittable committable) {
            retryLater = true;
        }

        @Override
        public void signalAlreadyCommitted() {
            alreadyCommitted = true;
        }
    }

    /** Subtask 0 of 1, with metrics that go nowhere. */
    private static CommitterInitContext initContext() {
        TaskInfo task = proxy(TaskInfo.class, (name, args) -> {
            switch (name) {
                case "getIndexOfThisSubtask":
                case "getAttemptNumber":
                    return 0;
                case "getNumberOfParallelSubtasks":
                case "getMaxNumberOfParallelSubtasks":
                    return 1;
                default:
                    return "committer-test";
            }
        });
        SinkCommitterMetricGroup metrics = proxy(SinkCommitterMetricGroup.class, (name, args) -> {
            switch (name) {
                case "counter":
                    return args.length > 1 ? args[1] : new SimpleCounter();
                case "gauge":
                case "histogram":
                case "meter":
                    return args[1];
                default:
                    return null;
            }
        });
        return proxy(CommitterInitContext.class, (name, args) -> {
            switch (name) {
                case "getTaskInfo":
                    return task;
                case "metricGroup":
                    return metrics;
                case "getRestoredCheckpointId":
                    return java.util.OptionalLong.empty();
                default:
                    throw new UnsupportedOperationException(name);
            }
        });
    }

    private interface Answer {
        Object answer(String method, Object[] args);
    }

    @SuppressWarnings("unchecked")
    private static <T> T proxy(Class<T> type, Answer answer) {
        return (T) Proxy.newProxyInstance(
                PgCommitterTest.class.getClassLoader(),
                new Class<?>[] {type},
                (self, method, args) -> {
                    if (method.getDeclaringClass() == Object.class) {
                        return method.getName().equals("toString")
                                ? type.getSimpleName()
                                : method.getName().equals("hashCode")
                                        ? System.identityHashCode(self)
                                        : self == args[0];
                    }
                    return answer.answer(method.getName(), args);
                });
    }
}
