package dev.tpc.sink;

import java.util.Optional;

/**
 * Global transaction ids: {@code tpc:<sinkId>:<subtask>:<counter>:<execution>}.
 *
 * <p>{@code counter} is derived from checkpoint ids: a transaction opened after the writer
 * snapshotted checkpoint {@code k} gets a counter above {@code k}, and a transaction pre-committed
 * in checkpoint {@code c} has a counter of at most {@code c}. So after restoring checkpoint
 * {@code N}, every id with a counter above {@code N} belongs to a checkpoint that is not being
 * restored, and every id at or below {@code N} may still be awaited by a restored committable.
 * {@code execution} (job id and attempt) keeps ids unique across runs and restarts, so the commit
 * log never confuses a new transaction with an old one.
 */
public final class TransactionId {
    public static final String PREFIX = "tpc:";

    public final String gid;
    public final String sinkId;
    public final int subtask;
    public final long counter;

    private TransactionId(String gid, String sinkId, int subtask, long counter) {
        this.gid = gid;
        this.sinkId = sinkId;
        this.subtask = subtask;
        this.counter = counter;
    }

    public static TransactionId create(String sinkId, int subtask, long counter, String execution) {
        String gid = sinkPrefix(sinkId) + subtask + ":" + counter + ":" + execution;
        return new TransactionId(gid, sinkId, subtask, counter);
    }

    /** Everything this sink id owns starts with this; safe for {@code starts_with()}. */
    public static String sinkPrefix(String sinkId) {
        return PREFIX + sinkId + ":";
    }

    public static Optional<TransactionId> parse(String gid) {
        if (gid == null || !gid.startsWith(PREFIX)) {
            return Optional.empty();
        }
        String[] parts = gid.split(":", -1);
        if (parts.length != 5) {
            return Optional.empty();
        }
        try {
            return Optional.of(new TransactionId(
                    gid, parts[1], Integer.parseInt(parts[2]), Long.parseLong(parts[3])));
        } catch (NumberFormatException e) {
            return Optional.empty();
        }
    }

    /**
     * Whether a restarting writer subtask must discard this transaction: it belongs to the
     * subtask (taking over ids of subtasks that no longer exist after a rescale) and was not
     * part of the restored checkpoint.
     */
    public boolean isOrphanFor(int subtaskIndex, int parallelism, Long restoredCheckpointId) {
        boolean owned = subtask % parallelism == subtaskIndex;
        boolean afterRestorePoint = restoredCheckpointId == null || counter > restoredCheckpointId;
        return owned && afterRestorePoint;
    }

    /** Literal for PREPARE/COMMIT/ROLLBACK PREPARED, which take no bind parameters. */
    public static String quoted(String gid) {
        if (!gid.matches("[A-Za-z0-9_:.\\-]+")) {
            throw new IllegalArgumentException("unsafe transaction id " + gid);
        }
        return "'" + gid + "'";
    }
}
