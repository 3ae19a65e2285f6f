package dev.tpc.sink;

import org.apache.flink.api.connector.sink2.CommittingSinkWriter;
import org.apache.flink.api.connector.sink2.StatefulSinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.apache.flink.types.Row;
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
import java.util.Collections;
import java.util.List;

/**
 * One subtask's writer: what every commit mode shares. It connects, fences off earlier attempts
 * of its subtask, refuses a stale restore or a fresh start over committed input, discards what
 * restored checkpoints do not hold, takes rows (plain, or envelopes of named tables), keeps the
 * transaction counter in the writer state, and explains failures. {@link #create} picks the
 * mode's subclass, which decides where a row goes and what pre-commit does:
 *
 * <ul>
 *   <li>{@link PgPreparedWriter}: rows run through the statements in a transaction per
 *       checkpoint interval, PREPAREd at pre-commit;
 *   <li>{@link PgStagedWriter}: rows go to the staging table in a transaction per checkpoint
 *       interval, committed at pre-commit (the committer applies them);
 *   <li>{@link PgAtLeastOnceWriter}: rows run through the statements in autocommitted batches,
 *       flushed at each checkpoint.
 * </ul>
 *
 * <p>A transaction of the two exactly-once modes is opened by the checkpoint interval's first
 * row ({@link #transaction()}), so an empty checkpoint opens none.
 */
abstract class PgWriter
        implements CommittingSinkWriter<Row, PgCommittable>,
                StatefulSinkWriter<Row, PgWriterState> {
    private static final Logger LOG = LoggerFactory.getLogger(PgWriter.class);
    /** How long a subtask added by a scale-up waits for its siblings to register a lineage. */
    private static final long SIBLING_LINEAGE_WAIT_MILLIS = 30_000;

    final SinkConfig config;
    final ControlTables tables;
    final int subtask;
    private final int parallelism;
    private final String jobId;
    private final int attempt;
    private final String execution;
    private final Long restoredCheckpointId;
    private String lineage;
    /** A test's hooks (fault injection), null in production: see {@link SinkHooks}. */
    private final SinkHooks hooks;

    Connection connection;
    final RefusedRows refusedRows;

    private TransactionId current;
    private long rowsInTransaction;
    private long highestCounter;
    private long lastSnapshotCheckpoint;
    /**
     * The commit log's highest counter of this lineage as last seen (restored: as the restored
     * checkpoint saw it). It never goes down: a database whose commit log is below it has lost
     * commits ({@link #refuseCommitLogBehindCheckpoint}).
     */
    private long committedCounter;

    private final Counter preCommitted;
    private final Counter abortedOnRecovery;
    private final Counter rowsWritten;
    private final Counter[] rowsWrittenPerTable; // by table number, labelled table=<name>
    private final Counter recordsSend;

    /** The writer of {@code config}'s commit mode, connected and recovered. */
    static PgWriter create(
            SinkConfig config, WriterInitContext context, Collection<PgWriterState> restored)
            throws IOException {
        PgWriter writer;
        switch (config.mode()) {
            case PREPARED:
                writer = new PgPreparedWriter(config, context, restored);
                break;
            case STAGED:
                writer = new PgStagedWriter(config, context, restored);
                break;
            case AT_LEAST_ONCE:
                writer = new PgAtLeastOnceWriter(config, context, restored);
                break;
            default:
                throw new IllegalArgumentException("no writer for commit mode " + config.mode());
        }
        writer.start();
        return writer;
    }

    /** Settings, restored state and metrics only: {@link #start()} connects. */
    PgWriter(SinkConfig config, WriterInitContext context, Collection<PgWriterState> restored) {
        this.config = config;
        this.tables = new ControlTables(config.controlSchema());
        this.subtask = context.getTaskInfo().getIndexOfThisSubtask();
        this.parallelism = context.getTaskInfo().getNumberOfParallelSubtasks();
        this.jobId = context.getJobInfo().getJobId().toHexString();
        this.attempt = context.getTaskInfo().getAttemptNumber();
        this.execution = jobId + "." + attempt;
        this.restoredCheckpointId = context.getRestoredCheckpointId().isPresent()
                ? context.getRestoredCheckpointId().getAsLong()
                : null;
        this.hooks = SinkHooks.load();
        long restoredCounter = 0;
        String restoredLineage = "";
        for (PgWriterState state : restored) {
            if (!state.sinkId.equals(config.sinkId())) {
                // Not transient either: fail the job at once instead of restarting it.
                throw new SuppressRestartsException(new SinkConfigurationException(
                        "restored state belongs to sink id '" + state.sinkId
                                + "' but this sink is '" + config.sinkId()
                                + "': keep the sink id (and "
                                + "the operator uid) stable across restores"));
            }
            restoredCounter = Math.max(restoredCounter, state.highestCounter);
            this.committedCounter = Math.max(this.committedCounter, state.committedCounter);
            if (restoredLineage.isEmpty()) {
                restoredLineage = state.lineage;
            }
        }
        // A fresh start begins a lineage; a restore continues the restored one. (A subtask added
        // by scaling up gets no state: it takes its siblings' lineage once connected, open().)
        this.lineage = restoredCheckpointId == null
                ? java.util.UUID.randomUUID().toString()
                : restoredLineage;
        this.lastSnapshotCheckpoint = restoredCheckpointId == null ? 0 : restoredCheckpointId;
        this.highestCounter = Math.max(restoredCounter, lastSnapshotCheckpoint);

        this.preCommitted = context.metricGroup().counter("tpcTransactionsPreCommitted");
        this.abortedOnRecovery = context.metricGroup().counter("tpcTransactionsAbortedOnRecovery");
        this.rowsWritten = context.metricGroup().counter("tpcRowsWritten");
        List<TableSpec> specs = config.tables();
        this.rowsWrittenPerTable = new Counter[specs.size()];
        for (int i = 0; i < specs.size(); i++) {
            rowsWrittenPerTable[i] = context.metricGroup()
                    .addGroup("table", specs.get(i).name())
                    .counter("tpcRowsWritten");
        }
        // Flink's standard sink metric (numRecordsSend): dashboards and Flink's connector test
        // suite read it; Flink does not count it for a sink by itself.
        this.recordsSend = context.metricGroup().getNumRecordsSendCounter();
        this.refusedRows = new RefusedRows(
                config,
                tables,
                subtask,
                "writer",
                context.metricGroup().counter("tpcRowsDeadLettered"));
    }

    /**
     * Connects, checks the restore or fresh start against the commit log, and discards what
     * earlier attempts pre-committed for checkpoints that are not being restored.
     */
    private void start() throws IOException {
        try {
            open();
            refuseOlderCheckpointThanCommitted();
            refuseCommitLogBehindCheckpoint();
            refuseFreshStartAfterCommits();
            recover();
        } catch (SQLException e) {
            closeQuietly();
            throw new IOException(
                    "sink '" + config.sinkId() + "' subtask " + subtask + " could not start: "
                            + e.getMessage(),
                    e);
        } catch (RuntimeException e) {
            closeQuietly();
            throw e;
        }
    }

    private void open() throws SQLException {
        connection =
                Connections.open(config, "tpc-sink-" + config.sinkId() + "-" + subtask + "-writer");
        requireServerSupport();
        tables.ensure(connection);
        if (!atLeastOnce()) {
            // Before recovery: from here on no earlier attempt of this subtask can pre-commit.
            try {
                WriterFence.acquire(connection, config, tables, subtask, jobId, attempt, lineage);
                if (restoredCheckpointId != null && lineage.isEmpty()) {
                    lineage = WriterFence.siblingLineage(
                            connection,
                            config,
                            tables,
                            subtask,
                            jobId,
                            SIBLING_LINEAGE_WAIT_MILLIS);
                    if (lineage.isEmpty()) {
                        LOG.warn(
                                "sink '{}' subtask {}: restored without state and no other "
                                        + "writer of this job registered a lineage; this subtask cannot "
                                        + "check for a stale restore (the others do)",
                                config.sinkId(),
                                subtask);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new SQLException("interrupted while waiting for the sink's writer lock", e);
            }
        }
        // lock_timeout, statement_timeout and the socket timeout come with the connection
        // (SinkConfig.jdbcProperties).
        connection.setAutoCommit(atLeastOnce());
        openStatements(config.tables());
    }

    /** What the mode needs of the server beyond the sink's tables, checked when it connects. */
    void requireServerSupport() throws SQLException {}

    /**
     * Whether this is the at-least-once writer: autocommitted, without a fence (several may
     * run), never refusing a fresh start.
     */
    boolean atLeastOnce() {
        return false;
    }

    /** Prepares the mode's statements on the new connection, one set per table, in order. */
    abstract void openStatements(List<TableSpec> targets) throws SQLException;

    /**
     * A start that restores no checkpoint reads its input from the beginning. If this sink id
     * already committed transactions, that input (or part of it) was applied by an earlier run,
     * and would be applied again: the same command run twice, a job restarted after its
     * checkpoints were lost. The commit log remembers every run (its trim keeps each lineage's
     * newest row): refuse, before recovery touches anything. At-least-once sinks keep no such
     * promise, and idempotent statements make a replay harmless: neither is refused.
     */
    private void refuseFreshStartAfterCommits() throws SQLException {
        if (restoredCheckpointId != null || atLeastOnce() || config.idempotentStatements()) {
            return;
        }
        try (PreparedStatement ps = connection.prepareStatement("SELECT count(*), "
                + "to_char(max(written_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM "
                + tables.commitLog + " WHERE sink_id = ?")) {
            ps.setString(1, config.sinkId());
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                long commits = rs.getLong(1);
                if (commits > 0) {
                    throw new SuppressRestartsException(new SinkConfigurationException(
                            freshStartRefusal(config.sinkId(), commits, rs.getString(2))));
                }
            }
        } finally {
            if (!connection.getAutoCommit()) {
                connection.commit();
            }
        }
    }

    static String freshStartRefusal(String sinkId, long commits, String newestUtc) {
        return "sink '" + sinkId + "' refuses a fresh start: it already committed input of an "
                + "earlier run (" + commits + " transaction" + (commits == 1 ? "" : "s")
                + " in its commit log, the newest at " + newestUtc + " UTC). A start that "
                + "restores no checkpoint reads its input from the beginning and would apply "
                + "what was applied then a second time. Resume the job from its newest retained "
                + "checkpoint or from a savepoint; to apply the input again on purpose, use a "
                + "new sink id.";
    }

    /**
     * Restoring a checkpoint older than the newest one whose transactions were committed would
     * replay, and so apply twice, everything committed since. The commit log knows: refuse.
     */
    private void refuseOlderCheckpointThanCommitted() throws SQLException {
        if (restoredCheckpointId == null || lineage.isEmpty()) {
            return;
        }
        try (PreparedStatement ps = connection.prepareStatement("SELECT max(counter), "
                + "max(written_at)::text FROM " + tables.commitLog
                + " WHERE sink_id = ? AND lineage = ? AND counter > ?")) {
            ps.setString(1, config.sinkId());
            ps.setString(2, lineage);
            ps.setLong(3, restoredCheckpointId);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                long newest = rs.getLong(1);
                if (!rs.wasNull()) {
                    // Retrying cannot help (the commit log will not change): fail the job
                    // now, before any row moves, instead of restarting it over and over.
                    throw new SuppressRestartsException(
                            new SinkConfigurationException("sink '" + config.sinkId()
                                    + "' refuses to restore checkpoint " + restoredCheckpointId
                                    + ": this job already committed transactions of later checkpoints "
                                    + "(up to checkpoint " + newest + ", last at " + rs.getString(2)
                                    + "). Restoring an older checkpoint or savepoint would apply those "
                                    + "rows twice. Restore the savepoint the job was last stopped with, "
                                    + "or its newest retained checkpoint, instead."));
                }
            }
        } finally {
            if (!connection.getAutoCommit()) {
                connection.commit();
            }
        }
    }

    /**
     * The restored checkpoint saw this lineage's transactions committed up to {@link
     * #committedCounter}. A commit log below that has lost commits: the database went back in
     * time (a failover to an asynchronous standby that had not received them, a restore from a
     * backup, rows removed by hand), and so did the tables those transactions wrote. The
     * restored checkpoint will not replay them (its input positions are past them), and the
     * committer cannot see them (they were committed, not pending): going on would leave their
     * rows missing without a word. Stop instead, without restarts (none can bring them back).
     *
     * <p>Commits of the restored checkpoint itself, and of any checkpoint still pending in it,
     * are the committer's to check ({@link PgCommitter}: "is lost").
     */
    private void refuseCommitLogBehindCheckpoint() throws SQLException {
        if (restoredCheckpointId == null || lineage.isEmpty() || committedCounter <= 0) {
            return;
        }
        long committed = newestCommitted();
        if (committed < committedCounter) {
            throw new SuppressRestartsException(
                    new SinkConfigurationException(commitLogBehindRefusal(
                            config.sinkId(), restoredCheckpointId, committedCounter, committed)));
        }
    }

    static String commitLogBehindRefusal(String sinkId, long restored, long seen, long committed) {
        return "sink '" + sinkId + "' refuses to restore checkpoint " + restored + ": when it "
                + "was taken, the commit log held this job's transactions up to checkpoint "
                + seen + ", but the database now holds them only "
                + (committed <= 0 ? "not at all" : "up to checkpoint " + committed)
                + ". The database went back in time (a failover to an asynchronous standby "
                + "that had not received them, a restore from a backup, or rows removed by "
                + "hand), and the rows of those transactions went with it. This checkpoint's "
                + "input positions are past them, so going on would leave them missing for "
                + "good. Stopping rather than skipping data; restarting cannot bring them back. "
                + "See README.md, \"Failover to a standby\", for how to apply them again.";
    }

    /** The commit log's highest counter of this sink id and lineage; 0 if it holds none. */
    private long newestCommitted() throws SQLException {
        try (PreparedStatement ps = connection.prepareStatement("SELECT coalesce(max(counter), "
                + "0) FROM " + tables.commitLog + " WHERE sink_id = ? AND lineage = ?")) {
            ps.setString(1, config.sinkId());
            ps.setString(2, lineage);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        } finally {
            // No rows of this checkpoint interval are open here (start, or after pre-commit):
            // end the read's implicit transaction instead of leaving it idle.
            if (current == null && !connection.getAutoCommit()) {
                connection.commit();
            }
        }
    }

    /**
     * Discards what this subtask pre-committed for checkpoints that are not being restored, so
     * their locks and staged rows do not linger. Never touches other sink ids, other subtasks'
     * transactions, or anything the restored checkpoint may still commit.
     */
    private void recover() throws SQLException {
        String prefix = TransactionId.sinkPrefix(config.sinkId());
        List<TransactionId> orphans = new ArrayList<>();
        boolean autoCommit = connection.getAutoCommit();
        connection.setAutoCommit(true);
        try {
            try (PreparedStatement ps = connection.prepareStatement("SELECT gid FROM "
                    + "pg_prepared_xacts WHERE database = current_database() AND "
                    + "starts_with(gid, ?)")) {
                ps.setString(1, prefix);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        TransactionId.parse(rs.getString(1))
                                .filter(id ->
                                        id.isOrphanFor(subtask, parallelism, restoredCheckpointId))
                                .ifPresent(orphans::add);
                    }
                }
            }
            for (TransactionId orphan : orphans) {
                try (Statement st = connection.createStatement()) {
                    st.execute("ROLLBACK PREPARED " + TransactionId.quoted(orphan.gid));
                    abortedOnRecovery.inc();
                    LOG.info(
                            "sink '{}' subtask {}: rolled back prepared transaction {} (not part "
                                    + "of restored checkpoint {})",
                            config.sinkId(),
                            subtask,
                            orphan.gid,
                            restoredCheckpointId);
                } catch (SQLException e) {
                    if (!"42704".equals(e.getSQLState())) { // already gone: fine
                        throw e;
                    }
                }
            }
        } finally {
            connection.setAutoCommit(autoCommit);
        }
        discardOrphanedStagedBatches();
    }

    private void discardOrphanedStagedBatches() throws SQLException {
        List<String> orphans = new ArrayList<>();
        try (PreparedStatement ps = connection.prepareStatement(
                "SELECT gid FROM " + tables.stagedBatches + " WHERE sink_id = ?")) {
            ps.setString(1, config.sinkId());
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    TransactionId.parse(rs.getString(1))
                            .filter(id ->
                                    id.isOrphanFor(subtask, parallelism, restoredCheckpointId))
                            .ifPresent(id -> orphans.add(id.gid));
                }
            }
        }
        if (!connection.getAutoCommit()) {
            connection.commit();
        }
        for (String gid : orphans) {
            boolean autoCommit = connection.getAutoCommit();
            connection.setAutoCommit(false);
            try (PreparedStatement rows = connection.prepareStatement(
                            "DELETE FROM " + tables.stagedRows + " WHERE gid = ?");
                    PreparedStatement batch = connection.prepareStatement(
                            "DELETE FROM " + tables.stagedBatches + " WHERE gid = ?")) {
                rows.setString(1, gid);
                rows.executeUpdate();
                batch.setString(1, gid);
                batch.executeUpdate();
                connection.commit();
                abortedOnRecovery.inc();
                LOG.info(
                        "sink '{}' subtask {}: discarded staged batch {} (not part of restored "
                                + "checkpoint {})",
                        config.sinkId(),
                        subtask,
                        gid,
                        restoredCheckpointId);
            } finally {
                connection.setAutoCommit(autoCommit);
            }
        }
    }

    @Override
    public void write(Row row, Context context) throws IOException {
        int table = 0;
        Object[] values = null;
        byte[] payload = null; // a table's row as the envelope carries it (RowCodec)
        if (config.isMultiTable()) {
            if (row.getArity() != 2
                    || !(row.getField(0) instanceof Integer)
                    || !(row.getField(1) instanceof byte[])) {
                throw new IOException("sink '" + config.sinkId() + "' has several tables and "
                        + "takes envelopes (attach its inputs with TableEnvelope / "
                        + "TwoPhaseCommitSink.attach), but got " + row);
            }
            table = (Integer) row.getField(0);
            payload = (byte[]) row.getField(1);
            if (table < 0 || table >= config.tables().size()) {
                throw new IOException(
                        "sink '" + config.sinkId() + "' has no table number " + table);
            }
        } else {
            if (row.getArity() != config.fieldNames().size()) {
                throw new IOException("sink '" + config.sinkId() + "' expects rows with fields "
                        + config.fieldNames() + " but got a row of arity " + row.getArity());
            }
            values = new Object[row.getArity()];
            for (int i = 0; i < values.length; i++) {
                values[i] = row.getField(i);
            }
        }
        try {
            if (values == null && needsValues()) {
                values = RowCodec.decode(payload); // the statements need the values
            }
            writeRow(table, values, payload);
            rowsWritten.inc();
            rowsWrittenPerTable[table].inc();
            recordsSend.inc();
        } catch (SQLException e) {
            throw failure("write", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    /** Whether {@link #writeRow} needs a named table's row decoded, or takes its bytes. */
    boolean needsValues() {
        return true;
    }

    /**
     * Writes one row of table {@code table}: its {@code values}, decoded if {@link
     * #needsValues()}, and for a named table the {@code payload} it came in ({@link RowCodec}).
     */
    abstract void writeRow(int table, Object[] values, byte[] payload)
            throws SQLException, IOException, InterruptedException;

    /** The transaction of this checkpoint interval, opened by its first row. */
    final TransactionId transaction() {
        if (current == null) {
            current = TransactionId.create(config.sinkId(), subtask, nextCounter(), execution);
            rowsInTransaction = 0;
            refusedRows.setTransaction(current.gid);
        }
        return current;
    }

    /** Rows written in the open transaction so far. */
    final long rowsInTransaction() {
        return rowsInTransaction;
    }

    /** Counts a row written in the open transaction; a test's WRITE hook acts here. */
    final void countRowInTransaction() throws IOException, InterruptedException {
        rowsInTransaction++;
        if (hooks != null
                && rowsInTransaction == config.batchSize() // the first batch reached the database
                && hooks.watches(SinkHooks.Point.WRITE)) {
            hooks.at(
                    SinkHooks.Point.WRITE,
                    config.sinkId(),
                    subtask,
                    current.gid,
                    rowsInTransaction);
        }
    }

    /**
     * Called once a non-empty checkpoint's rows are durable (pre-committed, or flushed by an
     * at-least-once writer), before the checkpoint can complete: a test's PRECOMMIT hook acts.
     */
    final void afterCheckpointFlushed(String gid, long rows)
            throws IOException, InterruptedException {
        if (hooks != null) {
            hooks.at(SinkHooks.Point.PRECOMMIT, config.sinkId(), subtask, gid, rows);
        }
    }

    /** What a mode does to pre-commit a transaction, inside it. */
    interface PreCommit {
        void run(TransactionId id) throws SQLException;
    }

    /**
     * Pre-commits the open transaction with {@code preCommit}, if a row opened one: its
     * committable, or none for an empty checkpoint.
     */
    final Collection<PgCommittable> preCommitTransaction(PreCommit preCommit)
            throws IOException, InterruptedException {
        if (current == null) {
            return Collections.emptyList(); // nothing written: no transaction was opened
        }
        TransactionId id = current;
        try {
            preCommit.run(id);
        } catch (SQLException e) {
            throw failure("pre-commit of " + id.gid, e);
        }
        current = null;
        preCommitted.inc();
        PgCommittable committable = new PgCommittable(
                id.gid, config.mode(), rowsInTransaction, System.currentTimeMillis());
        afterCheckpointFlushed(id.gid, rowsInTransaction);
        return Collections.singletonList(committable);
    }

    private long nextCounter() {
        highestCounter = Math.max(highestCounter, lastSnapshotCheckpoint) + 1;
        return highestCounter;
    }

    /** One batch of the user's statements per table, in table order. */
    final StatementBatch[] statementBatches(List<TableSpec> targets, boolean trial)
            throws SQLException {
        StatementBatch[] batches = new StatementBatch[targets.size()];
        for (int t = 0; t < batches.length; t++) {
            batches[t] = new StatementBatch(connection, config, targets.get(t), refusedRows, trial);
        }
        return batches;
    }

    /**
     * Runs a row through its table's statements (prepared and at-least-once modes). Before a
     * table's batch is applied, the earlier tables' pending rows are, so that a batch may refer
     * to rows of earlier tables received before it (foreign keys). Staged mode applies whole
     * checkpoints table by table at commit, which also covers rows received later.
     */
    final void addInTableOrder(StatementBatch[] direct, int table, Object[] values)
            throws SQLException {
        if (table > 0 && direct[table].pending() + 1 >= config.batchSize()) {
            for (int t = 0; t < table; t++) {
                direct[t].execute();
            }
        }
        direct[table].add(values);
    }

    static void executeAll(StatementBatch[] batches) throws SQLException {
        for (StatementBatch batch : batches) {
            batch.execute();
        }
    }

    /** Binds a staged-batch or commit-log row of {@code id}: gid, sink id, subtask, counter, rows, lineage. */
    final void bindLog(PreparedStatement ps, TransactionId id) throws SQLException {
        ps.setString(1, id.gid);
        ps.setString(2, config.sinkId());
        ps.setInt(3, subtask);
        ps.setLong(4, id.counter);
        ps.setLong(5, rowsInTransaction);
        ps.setString(6, lineage);
    }

    /** Nothing to flush: the exactly-once modes write at every row and at pre-commit. */
    @Override
    public void flush(boolean endOfInput) throws IOException {}

    /**
     * Besides the counter and the lineage, the state keeps the commit log's newest counter of
     * the lineage, read now: one index lookup per checkpoint and subtask, so that a restore can
     * tell commits the database lost. (At-least-once writers keep no commit log.)
     */
    @Override
    public List<PgWriterState> snapshotState(long checkpointId) throws IOException {
        lastSnapshotCheckpoint = Math.max(lastSnapshotCheckpoint, checkpointId);
        if (!atLeastOnce() && !lineage.isEmpty()) {
            try {
                committedCounter = Math.max(committedCounter, newestCommitted());
            } catch (SQLException e) {
                throw failure("snapshot of checkpoint " + checkpointId, e);
            }
        }
        return Collections.singletonList(new PgWriterState(
                config.sinkId(), subtask, highestCounter, lineage, committedCounter));
    }

    final IOException failure(String what, SQLException e) {
        String message = "sink '" + config.sinkId() + "' subtask " + subtask + " failed in " + what
                + ": " + e.getMessage() + explanation(e);
        return new IOException(message, e);
    }

    /** What the mode knows about a failure's cause, appended to its message; "" if nothing. */
    String explanation(SQLException e) {
        return "";
    }

    @Override
    public void close() {
        closeQuietly();
    }

    private void closeQuietly() {
        if (connection == null) {
            return;
        }
        try {
            if (!connection.isClosed() && !connection.getAutoCommit()) {
                connection.rollback(); // an open, not pre-committed transaction is abandoned
            }
        } catch (SQLException e) {
            LOG.debug("rollback on close failed", e);
        }
        try {
            connection.close();
        } catch (SQLException e) {
            LOG.debug("close failed", e);
        }
        connection = null;
    }
}
