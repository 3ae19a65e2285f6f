package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

import java.io.IOException;

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
        assertEquals(1, serializer.getVersion(), "a new version needs a new golden file");
        assertArrayEquals(golden, serializer.serialize(written), "version 1's bytes changed");
    }

    @Test
    void refusesAnUnknownVersion() {
        IOException e =
                assertThrows(IOException.class, () -> serializer.deserialize(2, new byte[0]));
        assertEquals("unknown committable version 2", e.getMessage());
    }
}
