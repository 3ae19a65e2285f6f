package dev.tpc.sink;

import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * Commits pre-committed transactions once their checkpoint has completed. Idempotent: a
 * transaction that is neither prepared nor staged any more is looked up in the commit log, which
 * was written inside that transaction; found means already committed (normal after a restore),
 * not found means it was lost, and the job stops (no restart: retrying cannot find it) rather
 * than continue with a gap.
 */
final class PgCommitter implements Committer<PgCommittable> {
    private static final Logger LOG = LoggerFactory.getLogger(PgCommitter.class);

    private enum Outcome {
        COMMITTED,
        ALREADY_COMMITTED
    }

    private final SinkConfig config;
    private final ControlTables tables;
    private final String applicationName;
    private final int subtask;
    /** A test's hooks (fault injection), null in production: see {@link SinkHooks}. */
    private final SinkHooks hooks;

    private Connection connection;
    private final Housekeeping housekeeping;

    private final Counter committed;
    private final Counter rowsCommitted;
    private final Counter alreadyCommitted;
    private final Counter retried;
    private final Histogram commitLatencyMillis;
    private final RefusedRows refusedRows;

    PgCommitter(SinkConfig config, CommitterInitContext context) {
        this.config = config;
        this.tables = new ControlTables(config.controlSchema());
        this.subtask = context.getTaskInfo().getIndexOfThisSubtask();
        this.applicationName = "tpc-sink-" + config.sinkId() + "-" + subtask + "-committer";
        this.hooks = SinkHooks.load();
        this.committed = context.metricGroup().counter("tpcTransactionsCommitted");
        // What the commit log's row_count adds up to for this subtask's commits: a monitor can
        // hold it against the database (monitoring/postgres-exporter-queries.yaml).
        this.rowsCommitted = context.metricGroup().counter("tpcRowsCommitted");
        this.alreadyCommitted = context.metricGroup().counter("tpcTransactionsRecovered");
        this.retried = context.metricGroup().counter("tpcCommitRetries");
        this.commitLatencyMillis = context.metricGroup()
                .histogram("tpcCommitLatencyMillis", new DescriptiveStatisticsHistogram(1000));
        this.housekeeping = new Housekeeping(config);
        context.metricGroup().gauge("tpcOldestPreparedTransactionAgeSeconds", (Gauge<Long>)
                housekeeping::oldestPreparedTransactionAgeSeconds);
        this.refusedRows = new RefusedRows(
                config,
                tables,
                subtask,
                "committer",
                context.metricGroup().counter("tpcRowsDeadLettered"));
    }

    /**
     * Flink calls this when a checkpoint completed (and on restore, for the restored
     * checkpoint's committables). A transient failure (see {@link SqlStates}) is retried: Flink
     * calls again right away for every request marked {@code retryLater()}, at most {@code
     * sink.committer.retries} times (CheckpointCommittableManagerImpl#commit loops with no
     * delay), so the back-off happens here, as a sleep before asking for the retry. Once this
     * sink's own budget ({@link SinkConfig#maxCommitRetries()}, default 10, the same as Flink's
     * default cap) is spent, the commit fails, the job restarts per its restart strategy, and
     * the restored committer commits the same transactions again: nothing is lost, the commit
     * is only later. Permanent errors fail at once.
     */
    @Override
    public void commit(Collection<CommitRequest<PgCommittable>> requests)
            throws IOException, InterruptedException {
        int backOffAfterRetry = -1; // the highest retry count among requests asking to retry
        for (CommitRequest<PgCommittable> request : requests) {
            PgCommittable committable = request.getCommittable();
            if (hooks != null && request.getNumberOfRetries() == 0) {
                hooks.at(
                        SinkHooks.Point.COMMIT,
                        config.sinkId(),
                        subtask,
                        committable.gid,
                        committable.rowCount);
            }
            try {
                Outcome outcome = committable.isCheckpoint()
                        ? commitCheckpoint(committable)
                        : committable.mode == CommitMode.STAGED
                                ? commitStaged(committable)
                                : commitPrepared(committable);
                if (outcome == Outcome.ALREADY_COMMITTED) {
                    alreadyCommitted.inc();
                    request.signalAlreadyCommitted();
                } else {
                    committed.inc();
                    rowsCommitted.inc(committable.rowCount);
                    commitLatencyMillis.update(
                            System.currentTimeMillis() - committable.preparedAtMillis);
                }
            } catch (SQLException e) {
                closeConnection();
                String state = SqlStates.stateOf(e);
                int retries = request.getNumberOfRetries();
                if (SqlStates.isTransient(e) && retries < config.maxCommitRetries()) {
                    retried.inc();
                    LOG.warn(
                            "commit of {} failed ({}), retry {} of {} in {} ms: {}",
                            committable.gid,
                            SqlStates.describe(state),
                            retries + 1,
                            config.maxCommitRetries(),
                            config.commitRetryDelayMillis(retries),
                            e.getMessage());
                    request.retryLater();
                    backOffAfterRetry = Math.max(backOffAfterRetry, retries);
                } else {
                    throw new IOException(
                            "sink '" + config.sinkId() + "' could not commit "
                                    + committable.gid + " (" + SqlStates.describe(state)
                                    + (SqlStates.isTransient(e)
                                            ? ", after " + retries + " retries; the "
                                                    + "job restarts and commits it again"
                                            : "")
                                    + "): "
                                    + e.getMessage(),
                            e);
                }
            }
        }
        if (backOffAfterRetry >= 0) {
            Thread.sleep(config.commitRetryDelayMillis(backOffAfterRetry)); // interruptible
        } else {
            housekeeping(); // not while the database is failing: it would only add waits
        }
    }

    private Outcome commitPrepared(PgCommittable committable) throws SQLException, IOException {
        Connection c = connection();
        c.setAutoCommit(true); // COMMIT PREPARED cannot run inside a transaction block
        try (Statement st = c.createStatement()) {
            st.execute("COMMIT PREPARED " + TransactionId.quoted(committable.gid));
            return Outcome.COMMITTED;
        } catch (SQLException e) {
            if ("42704".equals(e.getSQLState())) { // no such prepared transaction
                return alreadyCommittedOrLost(c, committable);
            }
            throw e;
        }
    }

    private Outcome commitStaged(PgCommittable committable) throws SQLException, IOException {
        Connection c = connection();
        c.setAutoCommit(false);
        try {
            try (PreparedStatement lock = c.prepareStatement("SELECT subtask, counter, row_count "
                    + "FROM " + tables.stagedBatches + " WHERE gid = ? FOR UPDATE")) {
                lock.setString(1, committable.gid);
                try (ResultSet rs = lock.executeQuery()) {
                    if (!rs.next()) {
                        c.rollback();
                        return alreadyCommittedOrLost(c, committable);
                    }
                }
            }
            applyStaged(c, List.of(committable));
            try (PreparedStatement deleteRows = c.prepareStatement(
                            "DELETE FROM " + tables.stagedRows + " WHERE gid = ?");
                    PreparedStatement deleteBatch = c.prepareStatement(
                            "DELETE FROM " + tables.stagedBatches + " WHERE gid = ?");
                    PreparedStatement log = c.prepareStatement("INSERT INTO " + tables.commitLog
                            + " (gid, sink_id, subtask, counter, row_count, mode, lineage) "
                            + "SELECT ?, ?, subtask, counter, row_count, 'STAGED', lineage FROM "
                            + tables.stagedBatches + " WHERE gid = ?")) {
                log.setString(1, committable.gid);
                log.setString(2, config.sinkId());
                log.setString(3, committable.gid);
                log.executeUpdate();
                deleteRows.setString(1, committable.gid);
                deleteRows.executeUpdate();
                deleteBatch.setString(1, committable.gid);
                deleteBatch.executeUpdate();
            }
            c.commit();
            return Outcome.COMMITTED;
        } catch (SQLException | IOException | RuntimeException e) {
            try {
                c.rollback();
            } catch (SQLException ignored) {
                // the connection is replaced on the next attempt
            }
            throw e;
        }
    }

    /**
     * Checkpoint scope: every subtask's staged batch of one checkpoint, applied in one
     * transaction, which also logs each batch in the commit log and deletes it from staging. So
     * the whole checkpoint becomes visible at once, and either all of its batches are still
     * staged (not committed yet) or none is (committed, and logged). Anything in between means
     * a batch was removed by someone else: the checkpoint is lost, and the job stops.
     */
    private Outcome commitCheckpoint(PgCommittable checkpoint) throws SQLException, IOException {
        Connection c = connection();
        c.setAutoCommit(false);
        String[] gids = checkpoint.members.stream().map(m -> m.gid).toArray(String[]::new);
        try {
            java.util.Set<String> staged = new java.util.HashSet<>();
            try (PreparedStatement lock = c.prepareStatement(
                    "SELECT gid FROM " + tables.stagedBatches + " WHERE gid = ANY(?) FOR UPDATE")) {
                lock.setArray(1, c.createArrayOf("text", gids));
                try (ResultSet rs = lock.executeQuery()) {
                    while (rs.next()) {
                        staged.add(rs.getString(1));
                    }
                }
            }
            if (staged.isEmpty()) {
                c.rollback();
                return checkpointCommittedOrLost(c, checkpoint);
            }
            if (staged.size() != gids.length) {
                List<String> missing = new ArrayList<>();
                for (String gid : gids) {
                    if (!staged.contains(gid)) {
                        missing.add(gid);
                    }
                }
                throw new IOException("checkpoint " + checkpoint.gid + " of sink '"
                        + config.sinkId() + "' is incomplete: its staged batches " + missing
                        + " are gone while " + staged.size() + " others are still staged. "
                        + "One transaction applies them all, so this was done by someone else "
                        + "(rolled back by hand, or another job with the same sink id). "
                        + "Stopping rather than applying part of a checkpoint.");
            }
            applyStaged(c, checkpoint.members);
            java.sql.Array members = c.createArrayOf("text", gids);
            try (PreparedStatement log = c.prepareStatement("INSERT INTO " + tables.commitLog
                            + " (gid, sink_id, subtask, counter, row_count, mode, lineage) "
                            + "SELECT gid, ?, subtask, counter, row_count, 'CHECKPOINT', lineage FROM "
                            + tables.stagedBatches + " WHERE gid = ANY(?)");
                    PreparedStatement deleteRows = c.prepareStatement(
                            "DELETE FROM " + tables.stagedRows + " WHERE gid = ANY(?)");
                    PreparedStatement deleteBatches = c.prepareStatement(
                            "DELETE FROM " + tables.stagedBatches + " WHERE gid = ANY(?)")) {
                log.setString(1, config.sinkId());
                log.setArray(2, members);
                log.executeUpdate();
                deleteRows.setArray(1, members);
                deleteRows.executeUpdate();
                deleteBatches.setArray(1, members);
                deleteBatches.executeUpdate();
            }
            c.commit();
            return Outcome.COMMITTED;
        } catch (SQLException | IOException | RuntimeException e) {
            try {
                c.rollback();
            } catch (SQLException ignored) {
                // the connection is replaced on the next attempt
            }
            throw e;
        }
    }

    /**
     * Applies staged batches through the user's statements inside the caller's transaction:
     * table by table, in the order the tables were added (so that rows of a later table may
     * refer to an earlier one's), and within a table batch by batch, in the given order. Rows
     * are streamed, never a whole checkpoint in memory; each batch of {@code batchSize} rows
     * is applied set-based where its statements allow ({@link StatementBatch}). Checks that
     * each staged batch held as many rows as were staged.
     */
    private void applyStaged(Connection c, List<PgCommittable> batches)
            throws SQLException, IOException {
        List<TableSpec> targets = config.tables();
        long[] applied = new long[batches.size()];
        try (PreparedStatement rows = c.prepareStatement("SELECT payload FROM " + tables.stagedRows
                + " WHERE gid = ? AND seq >= ? AND seq < ? ORDER BY seq")) {
            rows.setFetchSize(config.batchSize()); // stream, do not load a whole checkpoint
            for (int t = 0; t < targets.size(); t++) {
                try (StatementBatch target =
                        new StatementBatch(c, config, targets.get(t), refusedRows, false)) {
                    for (int b = 0; b < batches.size(); b++) {
                        String gid = batches.get(b).gid;
                        refusedRows.setTransaction(gid);
                        rows.setString(1, gid);
                        rows.setLong(2, TableSpec.firstSeq(t));
                        rows.setLong(
                                3,
                                t + 1 < targets.size()
                                        ? TableSpec.firstSeq(t + 1)
                                        : Long.MAX_VALUE);
                        try (ResultSet rs = rows.executeQuery()) {
                            while (rs.next()) {
                                target.add(RowCodec.decode(rs.getBytes(1)));
                                applied[b]++;
                            }
                        }
                        target.execute(); // a batch never mixes two transactions' rows
                    }
                }
            }
        }
        for (int b = 0; b < batches.size(); b++) {
            if (applied[b] != batches.get(b).rowCount) {
                throw new IOException("staged batch " + batches.get(b).gid + " holds " + applied[b]
                        + " rows but " + batches.get(b).rowCount + " were staged");
            }
        }
    }

    /** No batch of the checkpoint is staged: all of them must be in the commit log. */
    private Outcome checkpointCommittedOrLost(Connection c, PgCommittable checkpoint)
            throws SQLException, IOException {
        List<String> lost = new ArrayList<>();
        try (PreparedStatement ps =
                c.prepareStatement("SELECT 1 FROM " + tables.commitLog + " WHERE gid = ?")) {
            for (PgCommittable member : checkpoint.members) {
                ps.setString(1, member.gid);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) {
                        lost.add(member.gid);
                    }
                }
            }
        } finally {
            if (!c.getAutoCommit()) {
                c.rollback();
            }
        }
        if (lost.isEmpty()) {
            LOG.info(
                    "{} ({} batches) was already committed (recovered after a restore)",
                    checkpoint.gid,
                    checkpoint.members.size());
            return Outcome.ALREADY_COMMITTED;
        }
        throw lost("checkpoint " + checkpoint.gid + " of sink '" + config.sinkId()
                + "' is lost: its staged batches " + lost + " are neither pending nor in the "
                + "commit log, so their rows were never applied.");
    }

    private Outcome alreadyCommittedOrLost(Connection c, PgCommittable committable)
            throws SQLException, IOException {
        try (PreparedStatement ps =
                c.prepareStatement("SELECT 1 FROM " + tables.commitLog + " WHERE gid = ?")) {
            ps.setString(1, committable.gid);
            try (ResultSet rs = ps.executeQuery()) {
                if (rs.next()) {
                    LOG.info(
                            "{} was already committed (recovered after a restore)",
                            committable.gid);
                    return Outcome.ALREADY_COMMITTED;
                }
            }
        } finally {
            if (!c.getAutoCommit()) {
                c.rollback();
            }
        }
        throw lost("transaction " + committable.gid + " of sink '" + config.sinkId()
                + "' is lost: it is neither pending nor in the commit log, so its "
                + committable.rowCount + " rows were never applied.");
    }

    /**
     * A committable of a completed checkpoint that the database does not have, pending or
     * committed. No retry can bring it back (the database went back in time, or someone removed
     * it), so restarting would only fail the same way, for as long as the restart strategy
     * allows: the job stops at once, as it does for a stale restore. The rows stay unapplied;
     * what to do then is in README.md, "Failover to a standby".
     */
    private static SuppressRestartsException lost(String what) {
        return new SuppressRestartsException(new IOException(what + " Did the database go back "
                + "in time (a failover to an asynchronous standby that had not received it, a "
                + "restore from a backup), was it rolled back or removed by hand, or did another "
                + "job use the same sink id? Stopping the job rather than skipping data; "
                + "restarting cannot bring it back."));
    }

    /**
     * Trims the commit log to its retention and warns about old prepared transactions of this
     * sink id ({@link Housekeeping}: at the first commit, then every few minutes).
     */
    private void housekeeping() {
        try {
            Connection c = connection();
            housekeeping.afterCommit(c);
            c.setAutoCommit(true);
        } catch (SQLException e) {
            LOG.warn("sink '{}': housekeeping skipped: {}", config.sinkId(), e.getMessage());
        }
    }

    private Connection connection() throws SQLException {
        if (connection == null || connection.isClosed()) {
            connection = Connections.open(config, applicationName);
        }
        return connection;
    }

    private void closeConnection() {
        if (connection != null) {
            try {
                connection.close();
            } catch (SQLException ignored) {
                // broken already
            }
            connection = null;
        }
    }

    @Override
    public void close() {
        closeConnection();
    }
}
