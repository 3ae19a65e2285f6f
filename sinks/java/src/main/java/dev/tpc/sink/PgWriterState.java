package dev.tpc.sink;

import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;

/**
 * What a writer subtask remembers across restores: which sink it was, the highest transaction
 * counter it used (so counters never go backwards), and the job lineage: an id drawn when the
 * job first started without a checkpoint and carried through every restore since, so that the
 * sink can tell its own earlier commits from those of unrelated runs; and the newest transaction
 * of that lineage the commit log held when the state was taken, so that a restore can tell a
 * database that went back in time (a failover to an asynchronous standby that had not received
 * those commits, a restore from a backup) from one that kept everything.
 */
public final class PgWriterState {
    public final String sinkId;
    public final int subtask;
    public final long highestCounter;
    public final String lineage; // "" when unknown (state written before lineages existed)
    /** The commit log's highest counter of the lineage at the snapshot; 0: none or unknown. */
    public final long committedCounter;

    public PgWriterState(String sinkId, int subtask, long highestCounter, String lineage) {
        this(sinkId, subtask, highestCounter, lineage, 0);
    }

    public PgWriterState(
            String sinkId,
            int subtask,
            long highestCounter,
            String lineage,
            long committedCounter) {
        this.sinkId = sinkId;
        this.subtask = subtask;
        this.highestCounter = highestCounter;
        this.lineage = lineage == null ? "" : lineage;
        this.committedCounter = committedCounter;
    }

    public static final class Serializer implements SimpleVersionedSerializer<PgWriterState> {
        @Override
        public int getVersion() {
            return 3;
        }

        @Override
        public byte[] serialize(PgWriterState s) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeUTF(s.sinkId);
                out.writeInt(s.subtask);
                out.writeLong(s.highestCounter);
                out.writeUTF(s.lineage);
                out.writeLong(s.committedCounter);
            }
            return bytes.toByteArray();
        }

        @Override
        public PgWriterState deserialize(int version, byte[] serialized) throws IOException {
            if (version < 1 || version > 3) {
                throw new IOException("unknown writer state version " + version);
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                return new PgWriterState(
                        in.readUTF(),
                        in.readInt(),
                        in.readLong(),
                        version >= 2 ? in.readUTF() : "",
                        version >= 3 ? in.readLong() : 0);
            }
        }
    }
}
