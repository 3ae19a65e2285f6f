package dev.tpc.sink;

import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;

/** One pre-committed transaction of one writer subtask, waiting for its checkpoint. */
public final class PgCommittable {
    public final String gid;
    public final CommitMode mode;
    public final long rowCount;
    public final long preparedAtMillis;

    public PgCommittable(String gid, CommitMode mode, long rowCount, long preparedAtMillis) {
        this.gid = gid;
        this.mode = mode;
        this.rowCount = rowCount;
        this.preparedAtMillis = preparedAtMillis;
    }

    @Override
    public String toString() {
        return "PgCommittable{" + gid + ", " + mode + ", rows=" + rowCount + "}";
    }

    /** Versioned so that committables in old checkpoints stay readable. */
    public static final class Serializer implements SimpleVersionedSerializer<PgCommittable> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(PgCommittable c) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeUTF(c.gid);
                out.writeUTF(c.mode.name());
                out.writeLong(c.rowCount);
                out.writeLong(c.preparedAtMillis);
            }
            return bytes.toByteArray();
        }

        @Override
        public PgCommittable deserialize(int version, byte[] serialized) throws IOException {
            if (version != 1) {
                throw new IOException("unknown committable version " + version);
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                return new PgCommittable(
                        in.readUTF(),
                        CommitMode.valueOf(in.readUTF()),
                        in.readLong(),
                        in.readLong());
            }
        }
    }
}
