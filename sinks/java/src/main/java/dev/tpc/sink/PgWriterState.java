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
 * sink can tell its own earlier commits from those of unrelated runs.
 */
public final class PgWriterState {
    public final String sinkId;
    public final int subtask;
    public final long highestCounter;
    public final String lineage; // "" when unknown (state written before lineages existed)

    public PgWriterState(String sinkId, int subtask, long highestCounter, String lineage) {
        this.sinkId = sinkId;
        this.subtask = subtask;
        this.highestCounter = highestCounter;
        this.lineage = lineage == null ? "" : lineage;
    }

    public static final class Serializer implements SimpleVersionedSerializer<PgWriterState> {
        @Override
        public int getVersion() {
            return 2;
        }

        @Override
        public byte[] serialize(PgWriterState s) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeUTF(s.sinkId);
                out.writeInt(s.subtask);
                out.writeLong(s.highestCounter);
                out.writeUTF(s.lineage);
            }
            return bytes.toByteArray();
        }

        @Override
        public PgWriterState deserialize(int version, byte[] serialized) throws IOException {
            if (version != 1 && version != 2) {
                throw new IOException("unknown writer state version " + version);
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                return new PgWriterState(
                        in.readUTF(),
                        in.readInt(),
                        in.readLong(),
                        version >= 2 ? in.readUTF() : "");
            }
        }
    }
}
