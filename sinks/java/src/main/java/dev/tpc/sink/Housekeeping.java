package dev.tpc.sink;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;

/**
 * The committer's housekeeping for one sink id: trims the commit log to its retention, and
 * watches for old prepared transactions of this sink id. Runs on the committer's connection
 * after commits; a failure is logged and never fails a commit. Public for tests and tools.
 *
 * <p>When: the first commit after the committer starts trims and checks (so bounded jobs, with
 * few commits, trim too); after that, the commit log is trimmed at most every {@link
 * #TRIM_INTERVAL_MILLIS}, or every retention if that is shorter (but not more often than every
 * {@link #MIN_TRIM_INTERVAL_MILLIS}), and prepared transactions are checked at most every minute
 * (or every warning threshold, if that is shorter).
 */
public final class Housekeeping {
    private static final Logger LOG = LoggerFactory.getLogger(Housekeeping.class);
    static final long TRIM_INTERVAL_MILLIS = 10 * 60_000;
    /**
     * A retention of minutes (a soak, a test) is trimmed every retention, so the commit log holds
     * between one and two retentions of rows; not more often than this, since each trim scans the
     * sink id's rows for the newest of each lineage and subtask.
     */
    static final long MIN_TRIM_INTERVAL_MILLIS = 60_000;

    static final long CHECK_INTERVAL_MILLIS = 60_000;
    /** Rows deleted per statement, each chunk its own short transaction. */
    static final int TRIM_CHUNK = 10_000;
    /** At most this many gids are named in a warning. */
    private static final int NAMED_IN_WARNING = 5;

    private final SinkConfig config;
    private final String commitLog;
    private long nextTrimAtMillis; // 0: at the first commit
    private long nextCheckAtMillis;
    private volatile long oldestPreparedAgeSeconds;

    public Housekeeping(SinkConfig config) {
        this.config = config;
        this.commitLog = new ControlTables(config.controlSchema()).commitLog;
    }

    /** How long after a trim the next is due, for a retention of {@code retentionSeconds}. */
    static long trimIntervalMillis(long retentionSeconds) {
        return Math.max(
                MIN_TRIM_INTERVAL_MILLIS, Math.min(TRIM_INTERVAL_MILLIS, retentionSeconds * 1000));
    }

    /** Trims and checks when due. Leaves the connection in auto-commit; never throws. */
    void afterCommit(Connection connection) {
        long now = System.currentTimeMillis();
        if (now >= nextTrimAtMillis) {
            nextTrimAtMillis = now + trimIntervalMillis(config.commitLogRetentionSeconds());
            try {
                long trimmed = trimCommitLog(connection);
                if (trimmed > 0) {
                    LOG.info(
                            "sink '{}': trimmed {} commit-log rows older than {} s",
                            config.sinkId(),
                            trimmed,
                            config.commitLogRetentionSeconds());
                }
            } catch (SQLException e) {
                LOG.warn(
                        "sink '{}' could not trim the commit log: {}",
                        config.sinkId(),
                        e.getMessage());
            }
        }
        if (now >= nextCheckAtMillis) {
            nextCheckAtMillis = now
                    + Math.min(
                            CHECK_INTERVAL_MILLIS,
                            config.preparedTransactionWarningSeconds() * 1000);
            try {
                checkPreparedTransactions(connection);
            } catch (SQLException e) {
                LOG.warn(
                        "sink '{}' could not check its prepared transactions: {}",
                        config.sinkId(),
                        e.getMessage());
            }
        }
    }

    /**
     * Deletes this sink id's commit-log rows older than the retention, except the newest row of
     * each job lineage and subtask; returns how many were deleted.
     *
     * <p>Why this is safe. The commit log answers three questions, and all concern checkpoints
     * being restored: (1) the committer's "already committed or lost?" for the committables of
     * the restored checkpoint, (2) the writer's refusal to restore a checkpoint older than the
     * newest one committed ({@code PgWriter.refuseOlderCheckpointThanCommitted}: any row of the
     * same lineage with a higher counter), and (3) the writer's refusal of a commit log that
     * went back in time ({@code PgWriter.refuseCommitLogBehindCheckpoint}: the lineage's highest
     * counter). Questions 2 and 3 are answered as long as the newest row of the lineage exists,
     * and it is always kept. Question 1 needs the rows of the restored
     * checkpoint's own transactions; when that checkpoint is the newest one, which is how a job
     * is resumed, those are the newest rows of their subtasks, also kept. What the retention
     * gives up: restoring a checkpoint whose transactions were committed longer ago than the
     * retention and are no longer the newest of their subtask (a committable still retrying in
     * an old checkpoint) fails as "lost" instead of recovering. A checkpoint that old is not
     * expected to be restored; raise the retention if yours may be.
     *
     * <p>Several committer subtasks trim the same sink id; an advisory lock lets one do it.
     */
    public long trimCommitLog(Connection connection) throws SQLException {
        boolean autoCommit = connection.getAutoCommit();
        long deleted = 0;
        try {
            connection.setAutoCommit(false);
            while (true) {
                int chunk;
                try (PreparedStatement lock = connection.prepareStatement(
                        "SELECT pg_try_advisory_xact_lock(hashtext('tpc_commit_log_trim'), "
                                + "hashtext(?))")) {
                    lock.setString(1, config.sinkId());
                    try (ResultSet rs = lock.executeQuery()) {
                        rs.next();
                        if (!rs.getBoolean(1)) {
                            connection.rollback();
                            return deleted; // another committer subtask is trimming
                        }
                    }
                }
                try (PreparedStatement ps = connection.prepareStatement("WITH newest AS ("
                        + "SELECT lineage, subtask, max(counter) AS counter FROM " + commitLog
                        + " WHERE sink_id = ? GROUP BY lineage, subtask) "
                        + "DELETE FROM " + commitLog + " WHERE gid IN (SELECT l.gid FROM "
                        + commitLog + " l WHERE l.sink_id = ? "
                        + "AND l.written_at < now() - make_interval(secs => ?) "
                        + "AND NOT EXISTS (SELECT 1 FROM newest n WHERE n.lineage = l.lineage "
                        + "AND n.subtask = l.subtask AND n.counter = l.counter) LIMIT "
                        + TRIM_CHUNK + ")")) {
                    ps.setString(1, config.sinkId());
                    ps.setString(2, config.sinkId());
                    ps.setDouble(3, config.commitLogRetentionSeconds());
                    chunk = ps.executeUpdate();
                }
                connection.commit();
                deleted += chunk;
                if (chunk < TRIM_CHUNK) {
                    return deleted;
                }
            }
        } catch (SQLException | RuntimeException e) {
            try {
                connection.rollback();
            } catch (SQLException ignored) {
                // the committer replaces a broken connection
            }
            throw e;
        } finally {
            try {
                connection.setAutoCommit(autoCommit);
            } catch (SQLException ignored) {
                // as above
            }
        }
    }

    /**
     * Looks up this sink id's prepared transactions in this database, updates the age behind
     * the gauge {@code tpcOldestPreparedTransactionAgeSeconds}, and logs a warning naming those
     * older than the threshold. Returns the gids older than the threshold.
     *
     * <p>Why: a prepared transaction holds back the xmin horizon of the whole server, so VACUUM
     * can remove no row version that died after it began, in any table of any database, and it
     * keeps its row locks. The sink's own normally live from one checkpoint's pre-commit to its
     * commit, seconds.
     */
    public List<String> checkPreparedTransactions(Connection connection) throws SQLException {
        List<String> old = new ArrayList<>();
        List<String> described = new ArrayList<>();
        long oldest = 0;
        boolean autoCommit = connection.getAutoCommit();
        try (PreparedStatement ps = connection.prepareStatement("SELECT gid, prepared::text, "
                + "floor(extract(epoch FROM clock_timestamp() - prepared))::bigint "
                + "FROM pg_prepared_xacts WHERE database = current_database() "
                + "AND starts_with(gid, ?) ORDER BY prepared")) {
            ps.setString(1, TransactionId.sinkPrefix(config.sinkId()));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    long age = Math.max(0, rs.getLong(3));
                    oldest = Math.max(oldest, age);
                    if (age >= config.preparedTransactionWarningSeconds()) {
                        old.add(rs.getString(1));
                        if (described.size() < NAMED_IN_WARNING) {
                            described.add(rs.getString(1) + " (prepared " + rs.getString(2) + ", "
                                    + age + " s ago)");
                        }
                    }
                }
            }
        } finally {
            if (!autoCommit) {
                connection.rollback();
            }
        }
        oldestPreparedAgeSeconds = oldest;
        if (!old.isEmpty()) {
            LOG.warn(
                    "sink '{}' has {} prepared transaction(s) older than {} s: {}{}. A prepared "
                            + "transaction holds back VACUUM for the whole server (no row version that "
                            + "died after it began can be removed, in any database) and keeps its row "
                            + "locks. The sink's own are committed within a checkpoint or two; older "
                            + "ones are a commit that keeps failing (see the errors above) or left by "
                            + "another job that uses the same sink id. List them with `python -m "
                            + "sinks.admin list --sink-id {}`; once no running job still has to commit "
                            + "them, `python -m sinks.admin abort --sink-id {}` rolls them back.",
                    config.sinkId(),
                    old.size(),
                    config.preparedTransactionWarningSeconds(),
                    String.join(", ", described),
                    old.size() > described.size() ? ", ..." : "",
                    config.sinkId(),
                    config.sinkId());
        }
        return old;
    }

    /** The oldest of this sink id's prepared transactions at the last check, in s (0: none). */
    public long oldestPreparedTransactionAgeSeconds() {
        return oldestPreparedAgeSeconds;
    }
}
