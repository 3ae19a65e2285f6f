package dev.tpc.sink;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The sink's own bookkeeping tables, kept apart from the user's tables.
 *
 * <ul>
 *   <li>{@code tpc_commit_log}: one row per committed transaction, written inside that same
 *       transaction, so "committed" and "lost" can be told apart after a restore, and a restore
 *       of a checkpoint older than what was already committed can be refused.</li>
 *   <li>{@code tpc_staged_batches}/{@code tpc_staged_rows}: staged mode's pre-committed rows.</li>
 *   <li>{@code tpc_writer_owners}: which job's session holds each (sink id, subtask), see
 *       {@link WriterFence}.</li>
 *   <li>{@code tpc_dead_letters}: rows the database refused, under the dead-letter policy, each
 *       written in the transaction of the rows around it ({@link RefusedRows}).</li>
 * </ul>
 */
final class ControlTables {
    final String commitLog;
    final String stagedBatches;
    final String stagedRows;
    final String deadLetters;
    final String writerOwners;
    private final String schema;

    ControlTables(String schema) {
        this.schema = schema;
        this.commitLog = schema + ".tpc_commit_log";
        this.stagedBatches = schema + ".tpc_staged_batches";
        this.stagedRows = schema + ".tpc_staged_rows";
        this.deadLetters = schema + ".tpc_dead_letters";
        this.writerOwners = schema + ".tpc_writer_owners";
    }

    /**
     * Creates the tables if missing; serialized so that parallel subtasks do not race. Looks
     * before it leaps: even {@code IF NOT EXISTS} DDL takes table locks, and an orphaned prepared
     * transaction holding a lock on the commit log would block a restarting writer forever.
     */
    void ensure(Connection connection) throws SQLException {
        if (allExist(connection)) {
            return;
        }
        boolean autoCommit = connection.getAutoCommit();
        connection.setAutoCommit(false);
        try (Statement st = connection.createStatement()) {
            st.execute("SELECT pg_advisory_xact_lock(hashtext('tpc_sink_control_tables'))");
            st.execute("CREATE SCHEMA IF NOT EXISTS " + schema);
            st.execute("CREATE TABLE IF NOT EXISTS " + commitLog + " ("
                    + "gid text PRIMARY KEY, sink_id text NOT NULL, subtask int NOT NULL, "
                    + "counter bigint NOT NULL, row_count bigint NOT NULL, mode text NOT NULL, "
                    + "lineage text NOT NULL DEFAULT '', "
                    + "written_at timestamptz NOT NULL DEFAULT now())");
            st.execute("CREATE INDEX IF NOT EXISTS tpc_commit_log_sink_time ON " + commitLog
                    + " (sink_id, written_at)");
            // A lineage's newest commit: read by every writer at every checkpoint (PgWriter).
            st.execute("CREATE INDEX IF NOT EXISTS tpc_commit_log_lineage ON " + commitLog
                    + " (sink_id, lineage, counter)");
            st.execute("CREATE TABLE IF NOT EXISTS " + stagedBatches + " ("
                    + "gid text PRIMARY KEY, sink_id text NOT NULL, subtask int NOT NULL, "
                    + "counter bigint NOT NULL, row_count bigint NOT NULL, "
                    + "lineage text NOT NULL DEFAULT '', "
                    + "staged_at timestamptz NOT NULL DEFAULT now())");
            st.execute("CREATE TABLE IF NOT EXISTS " + stagedRows + " ("
                    + "gid text NOT NULL, seq bigint NOT NULL, payload bytea NOT NULL, "
                    + "PRIMARY KEY (gid, seq))");
            // fields: the row as a JSON object of texts, for people; payload: the row exactly
            // (RowCodec), for tools that replay it.
            st.execute("CREATE TABLE IF NOT EXISTS " + deadLetters + " ("
                    + "id bigserial PRIMARY KEY, sink_id text NOT NULL, subtask int NOT NULL, "
                    + "gid text, statement int NOT NULL, sqlstate text, message text NOT NULL, "
                    + "fields jsonb NOT NULL, payload bytea NOT NULL, "
                    + "written_at timestamptz NOT NULL DEFAULT now())");
            st.execute("CREATE INDEX IF NOT EXISTS tpc_dead_letters_sink_time ON " + deadLetters
                    + " (sink_id, written_at)");
            st.execute("CREATE TABLE IF NOT EXISTS " + writerOwners + " ("
                    + "sink_id text NOT NULL, subtask int NOT NULL, job_id text NOT NULL, "
                    + "attempt int NOT NULL, pid int NOT NULL, since timestamptz NOT NULL, "
                    + "lineage text NOT NULL DEFAULT '', "
                    + "PRIMARY KEY (sink_id, subtask))");
            connection.commit();
        } catch (SQLException e) {
            connection.rollback();
            throw e;
        } finally {
            connection.setAutoCommit(autoCommit);
        }
    }

    private boolean allExist(Connection connection) throws SQLException {
        try (Statement st = connection.createStatement();
                java.sql.ResultSet rs = st.executeQuery("SELECT to_regclass('" + commitLog
                        + "') IS NOT NULL AND to_regclass('" + schema
                        + ".tpc_commit_log_sink_time') IS NOT NULL AND to_regclass('" + schema
                        + ".tpc_commit_log_lineage') IS NOT NULL AND to_regclass('"
                        + stagedBatches + "') IS NOT NULL AND to_regclass('" + stagedRows
                        + "') IS NOT NULL AND to_regclass('" + schema
                        + ".tpc_dead_letters_sink_time') IS NOT NULL AND to_regclass('"
                        + writerOwners + "') IS NOT NULL")) {
            rs.next();
            boolean exist = rs.getBoolean(1);
            if (!connection.getAutoCommit()) {
                connection.commit();
            }
            return exist;
        }
    }
}
