package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;

class PgCommittableTest {
    private final PgCommittable.Serializer serializer = new PgCommittable.Serializer();

    private static void assertSame(PgCommittable expected, PgCommittable actual) {
        assertEquals(expected.gid, actual.gid);
        assertEquals(expected.mode, actual.mode);
        assertEquals(expected.rowCount, actual.rowCount);
        assertEquals(expected.preparedAtMillis, actual.preparedAtMillis);
    }

    @Test
    void roundTripsEveryMode() throws IOException {
        for (CommitMode mode : CommitMode.values()) {
            PgCommittable c =
                    new PgCommittable("tpc:ledger:3:42:job.1", mode, 1234, 1_700_000_000_123L);
            assertSame(c, serializer.deserialize(serializer.getVersion(), serializer.serialize(c)));
        }
    }

    @Test
    void roundTripsNonAsciiAndLongValues() throws IOException {
        PgCommittable c = new PgCommittable(
                "tpc:s\u00e9nk:0:" + Long.MAX_VALUE + ":x",
                CommitMode.STAGED,
                Long.MAX_VALUE,
                Long.MIN_VALUE);
        assertSame(c, serializer.deserialize(serializer.getVersion(), serializer.serialize(c)));
    }

    /** Committables in checkpoints written by version 1 must stay readable. */
    @Test
    void readsVersion1BytesFromTheGoldenFile() throws IOException {
        PgCommittable written = new PgCommittable(
                "tpc:ledger:1:17:a1b2c3d4.0", CommitMode.PREPARED, 500, 1_764_000_000_000L);
        byte[] golden = Golden.read("pg-committable-v1.bin", serializer.serialize(written));
        assertSame(written, serializer.deserialize(1, golden));
        assertArrayEquals(golden, serializer.serializeV1(written), "version 1's bytes changed");
    }

    /** Checkpoint scope's committables (version 2: with members) must stay readable. */
    @Test
    void readsVersion2BytesFromTheGoldenFile() throws IOException {
        PgCommittable written = PgCommittable.ofCheckpoint(
                "ledger",
                17,
                List.of(
                        new PgCommittable(
                                "tpc:ledger:1:17:a1b2c3d4.0",
                                CommitMode.STAGED,
                                500,
                                1_764_000_000_000L),
                        new PgCommittable(
                                "tpc:ledger:0:16:a1b2c3d4.0",
                                CommitMode.STAGED,
                                20,
                                1_764_000_000_100L)));
        byte[] golden = Golden.read("pg-committable-v2.bin", serializer.serialize(written));
        PgCommittable read = serializer.deserialize(2, golden);
        assertSame(written, read);
        assertEquals(2, read.members.size());
        for (int i = 0; i < 2; i++) {
            assertSame(written.members.get(i), read.members.get(i));
        }
        assertEquals("tpc:ledger:0:16:a1b2c3d4.0", read.members.get(0).gid, "ordered by subtask");
        assertEquals(520, read.rowCount);
        assertEquals(2, serializer.getVersion(), "a new version needs a new golden file");
        assertArrayEquals(golden, serializer.serialize(written), "version 2's bytes changed");
    }

    @Test
    void aVersion1CommittableIsOneSubtasksTransaction() throws IOException {
        PgCommittable c = new PgCommittable("tpc:ledger:3:42:job.1", CommitMode.STAGED, 1, 2);
        PgCommittable read = serializer.deserialize(1, serializer.serializeV1(c));
        assertEquals(false, read.isCheckpoint());
        assertEquals(List.of(), read.members);
    }

    @Test
    void refusesAnUnknownVersion() {
        IOException e =
                assertThrows(IOException.class, () -> serializer.deserialize(3, new byte[0]));
        assertEquals("unknown committable version 3", e.getMessage());
    }
}
