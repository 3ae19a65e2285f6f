package dev.tpc.sink;

import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;

/**
 * One live writer per (sink id, subtask): the writer's session holds a PostgreSQL advisory lock
 * for its whole life, and records who it is in {@code tpc_writer_owners}.
 *
 * <p>A writer that finds the lock taken looks at the holder:
 * <ul>
 *   <li>an earlier attempt of <em>the same job</em> is a zombie (a TaskManager the JobManager
 *       gave up on, still alive): its session is terminated, which rolls back its open
 *       transaction and leaves it no connection to pre-commit with, before this writer's recovery
 *       runs. This is the fence: once recovery has run, a superseded attempt can never
 *       pre-commit;</li>
 *   <li>another job: two running jobs must never share a sink id (each would treat the other's
 *       transactions as its orphans). The writer waits, because a job that just died may hold
 *       the lock until the server notices its connection is gone (TCP keepalive, about a
 *       minute), then refuses to start, without restarts.</li>
 * </ul>
 */
final class WriterFence {
    private static final Logger LOG = LoggerFactory.getLogger(WriterFence.class);
    private static final long POLL_MILLIS = 500;

    private WriterFence() {}

    static void acquire(
            Connection c,
            SinkConfig config,
            ControlTables tables,
            int subtask,
            String jobId,
            int attempt,
            String lineage)
            throws SQLException, InterruptedException {
        boolean autoCommit = c.getAutoCommit();
        c.setAutoCommit(true);
        try {
            long deadline = System.currentTimeMillis() + config.ownerWaitMillis();
            while (!tryLock(c, config, subtask)) {
                Owner owner = owner(c, tables, config, subtask);
                if (owner != null && owner.jobId.equals(jobId)) {
                    terminate(c, config, subtask, owner, attempt);
                } else if (System.currentTimeMillis() >= deadline) {
                    throw new SuppressRestartsException(
                            new SinkConfigurationException(
                                    "sink '" + config.sinkId() + "' subtask " + subtask
                                            + " is in use by "
                                            + (owner == null
                                                    ? "another session"
                                                    : "job " + owner.jobId
                                                            + " (attempt " + owner.attempt
                                                            + ", since " + owner.since
                                                            + ", server process " + owner.pid + ")")
                                            + ", and still was after "
                                            + config.ownerWaitMillis() / 1000
                                            + " s. Two running jobs must never share a sink id: each would take "
                                            + "the other's pending transactions for its own orphans. Stop the "
                                            + "other job, or give this one another sink id. (A job that died "
                                            + "holds it until the server notices its connection is gone.)"));
                }
                Thread.sleep(POLL_MILLIS);
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + tables.writerOwners
                    + " (sink_id, subtask, job_id, attempt, pid, since, lineage) VALUES "
                    + "(?, ?, ?, ?, pg_backend_pid(), now(), ?) ON CONFLICT (sink_id, subtask) DO "
                    + "UPDATE SET job_id = EXCLUDED.job_id, attempt = EXCLUDED.attempt, "
                    + "pid = EXCLUDED.pid, since = EXCLUDED.since, lineage = EXCLUDED.lineage")) {
                ps.setString(1, config.sinkId());
                ps.setInt(2, subtask);
                ps.setString(3, jobId);
                ps.setInt(4, attempt);
                ps.setString(5, lineage);
                ps.executeUpdate();
            }
        } finally {
            c.setAutoCommit(autoCommit);
        }
    }

    /**
     * The lineage of this job's other writers of the sink, for a subtask that a scale-up added
     * (restored, but without state of its own), so that it too refuses a stale restore. Its
     * siblings register as they start, at the same time: waits up to {@code waitMillis}.
     * Returns "" if none registers a lineage.
     */
    static String siblingLineage(
            Connection c,
            SinkConfig config,
            ControlTables tables,
            int subtask,
            String jobId,
            long waitMillis)
            throws SQLException, InterruptedException {
        boolean autoCommit = c.getAutoCommit();
        c.setAutoCommit(true);
        try (PreparedStatement find = c.prepareStatement("SELECT lineage FROM "
                        + tables.writerOwners
                        + " WHERE sink_id = ? AND job_id = ? AND lineage <> '' "
                        + "LIMIT 1");
                PreparedStatement record = c.prepareStatement("UPDATE " + tables.writerOwners
                        + " SET lineage = ? WHERE sink_id = ? AND subtask = ?")) {
            find.setString(1, config.sinkId());
            find.setString(2, jobId);
            long deadline = System.currentTimeMillis() + waitMillis;
            do {
                try (ResultSet rs = find.executeQuery()) {
                    if (rs.next()) {
                        String lineage = rs.getString(1);
                        record.setString(1, lineage);
                        record.setString(2, config.sinkId());
                        record.setInt(3, subtask);
                        record.executeUpdate();
                        return lineage;
                    }
                }
                Thread.sleep(200);
            } while (System.currentTimeMillis() < deadline);
            return "";
        } finally {
            c.setAutoCommit(autoCommit);
        }
    }

    private static boolean tryLock(Connection c, SinkConfig config, int subtask)
            throws SQLException {
        try (PreparedStatement ps =
                c.prepareStatement("SELECT pg_try_advisory_lock(hashtext(?), ?)")) {
            ps.setString(1, "tpc:" + config.sinkId());
            ps.setInt(2, subtask);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        }
    }

    private static final class Owner {
        final String jobId;
        final int attempt;
        final int pid;
        final String since;

        Owner(String jobId, int attempt, int pid, String since) {
            this.jobId = jobId;
            this.attempt = attempt;
            this.pid = pid;
            this.since = since;
        }
    }

    /** The recorded owner, if its server process still runs (else the record is stale). */
    private static Owner owner(Connection c, ControlTables tables, SinkConfig config, int subtask)
            throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT o.job_id, o.attempt, o.pid, "
                + "o.since::text FROM " + tables.writerOwners + " o JOIN pg_stat_activity a "
                + "ON a.pid = o.pid WHERE o.sink_id = ? AND o.subtask = ?")) {
            ps.setString(1, config.sinkId());
            ps.setInt(2, subtask);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next()
                        ? new Owner(rs.getString(1), rs.getInt(2), rs.getInt(3), rs.getString(4))
                        : null;
            }
        }
    }

    private static void terminate(
            Connection c, SinkConfig config, int subtask, Owner zombie, int attempt)
            throws SQLException {
        LOG.warn(
                "sink '{}' subtask {} (attempt {}): an earlier attempt ({}) of this job still "
                        + "holds the subtask's session (server process {}); terminating it, so that it "
                        + "can never pre-commit",
                config.sinkId(),
                subtask,
                attempt,
                zombie.attempt,
                zombie.pid);
        try (PreparedStatement ps = c.prepareStatement("SELECT pg_terminate_backend(?)")) {
            ps.setInt(1, zombie.pid);
            ps.executeQuery().close();
        }
    }
}
