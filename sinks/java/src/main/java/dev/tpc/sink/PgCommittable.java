package dev.tpc.sink;

import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * What waits for a checkpoint to complete. In subtask scope: one pre-committed transaction of one
 * writer subtask ({@link #members} empty). In checkpoint scope: a whole checkpoint, i.e. the
 * staged batches of every writer subtask ({@link #members}), applied by one committer in one
 * transaction; {@link #gid} then names the checkpoint (for logs) and {@link #rowCount} is the sum.
 */
public final class PgCommittable {
    public final String gid;
    public final CommitMode mode;
    public final long rowCount;
    public final long preparedAtMillis;
    /**
     * Checkpoint scope: the subtasks' staged batches this checkpoint applies, in order. A plain
     * list, never changed after construction (generic serializers, e.g. Kryo in Flink's test
     * harnesses, cannot rebuild unmodifiable wrappers).
     */
    public final List<PgCommittable> members;

    public PgCommittable(String gid, CommitMode mode, long rowCount, long preparedAtMillis) {
        this(gid, mode, rowCount, preparedAtMillis, List.of());
    }

    public PgCommittable(
            String gid,
            CommitMode mode,
            long rowCount,
            long preparedAtMillis,
            List<PgCommittable> members) {
        this.gid = gid;
        this.mode = mode;
        this.rowCount = rowCount;
        this.preparedAtMillis = preparedAtMillis;
        this.members = new ArrayList<>(members);
    }

    /** Whether this is a whole checkpoint (checkpoint scope) rather than one subtask's work. */
    public boolean isCheckpoint() {
        return !members.isEmpty();
    }

    /**
     * The committable of a whole checkpoint: the given subtasks' staged batches, ordered by gid
     * (subtask, then counter), so that every delivery applies them in the same order.
     */
    static PgCommittable ofCheckpoint(
            String sinkId, long checkpointId, List<PgCommittable> batches) {
        List<PgCommittable> ordered = new ArrayList<>(batches);
        ordered.sort((a, b) -> {
            TransactionId x = TransactionId.parse(a.gid).orElse(null);
            TransactionId y = TransactionId.parse(b.gid).orElse(null);
            if (x != null && y != null && x.subtask != y.subtask) {
                return Integer.compare(x.subtask, y.subtask);
            }
            if (x != null && y != null && x.counter != y.counter) {
                return Long.compare(x.counter, y.counter);
            }
            return a.gid.compareTo(b.gid);
        });
        long rows = 0;
        long earliest = Long.MAX_VALUE;
        for (PgCommittable batch : ordered) {
            rows += batch.rowCount;
            earliest = Math.min(earliest, batch.preparedAtMillis);
        }
        return new PgCommittable(
                TransactionId.sinkPrefix(sinkId) + "checkpoint-" + checkpointId,
                CommitMode.STAGED,
                rows,
                earliest,
                ordered);
    }

    @Override
    public String toString() {
        return "PgCommittable{" + gid + ", " + mode + ", rows=" + rowCount
                + (members.isEmpty() ? "" : ", members=" + members.size()) + "}";
    }

    /**
     * Versioned so that committables in old checkpoints stay readable. Version 2 appends the
     * members (a count, then each member as version 1 writes a committable).
     */
    public static final class Serializer implements SimpleVersionedSerializer<PgCommittable> {
        @Override
        public int getVersion() {
            return 2;
        }

        @Override
        public byte[] serialize(PgCommittable c) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                writeV1(out, c);
                out.writeInt(c.members.size());
                for (PgCommittable member : c.members) {
                    writeV1(out, member);
                }
            }
            return bytes.toByteArray();
        }

        /** Version 1's bytes, kept for the golden-file test. */
        byte[] serializeV1(PgCommittable c) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                writeV1(out, c);
            }
            return bytes.toByteArray();
        }

        private static void writeV1(DataOutputStream out, PgCommittable c) throws IOException {
            out.writeUTF(c.gid);
            out.writeUTF(c.mode.name());
            out.writeLong(c.rowCount);
            out.writeLong(c.preparedAtMillis);
        }

        private static PgCommittable readV1(DataInputStream in, List<PgCommittable> members)
                throws IOException {
            return new PgCommittable(
                    in.readUTF(),
                    CommitMode.valueOf(in.readUTF()),
                    in.readLong(),
                    in.readLong(),
                    members);
        }

        @Override
        public PgCommittable deserialize(int version, byte[] serialized) throws IOException {
            if (version != 1 && version != 2) {
                throw new IOException("unknown committable version " + version);
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                if (version == 1) {
                    return readV1(in, List.of());
                }
                String gid = in.readUTF();
                CommitMode mode = CommitMode.valueOf(in.readUTF());
                long rows = in.readLong();
                long preparedAt = in.readLong();
                int count = in.readInt();
                if (count < 0) {
                    throw new IOException("corrupt committable: " + count + " members");
                }
                List<PgCommittable> members = new ArrayList<>(count);
                for (int i = 0; i < count; i++) {
                    members.add(readV1(in, List.of()));
                }
                return new PgCommittable(gid, mode, rows, preparedAt, members);
            }
        }
    }
}
