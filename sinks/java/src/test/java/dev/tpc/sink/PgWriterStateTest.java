package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;

class PgWriterStateTest {
    private final PgWriterState.Serializer serializer = new PgWriterState.Serializer();

    private static void assertSame(PgWriterState expected, PgWriterState actual) {
        assertEquals(expected.sinkId, actual.sinkId);
        assertEquals(expected.subtask, actual.subtask);
        assertEquals(expected.highestCounter, actual.highestCounter);
        assertEquals(expected.lineage, actual.lineage);
        assertEquals(expected.committedCounter, actual.committedCounter);
    }

    @Test
    void roundTrips() throws IOException {
        PgWriterState s =
                new PgWriterState("balances", 7, 123_456_789_012L, "lineage-\u00fc", 123_456L);
        assertSame(s, serializer.deserialize(serializer.getVersion(), serializer.serialize(s)));
    }

    @Test
    void aMissingLineageIsEmpty() throws IOException {
        PgWriterState s = new PgWriterState("ledger", 0, 0, null);
        assertEquals("", s.lineage);
        assertSame(s, serializer.deserialize(serializer.getVersion(), serializer.serialize(s)));
    }

    @Test
    void readsVersion3BytesFromTheGoldenFile() throws IOException {
        PgWriterState written = new PgWriterState("ledger", 2, 41, "3f2a9c0e-lineage", 40);
        byte[] golden = Golden.read("pg-writer-state-v3.bin", serializer.serialize(written));
        assertSame(written, serializer.deserialize(3, golden));
        assertEquals(3, serializer.getVersion(), "a new version needs a new golden file");
        assertArrayEquals(golden, serializer.serialize(written), "version 3's bytes changed");
    }

    /**
     * Writer state in checkpoints written by version 2 must stay readable: it knows no commits,
     * so a restore of it cannot check the commit log against them (0).
     */
    @Test
    void readsVersion2BytesFromTheGoldenFile() throws IOException {
        byte[] golden = Golden.read("pg-writer-state-v2.bin", new byte[0]);
        assertSame(
                new PgWriterState("ledger", 2, 41, "3f2a9c0e-lineage", 0),
                serializer.deserialize(2, golden));
    }

    /** Version 1 (before lineages) had no lineage field; such state restores with none. */
    @Test
    void readsVersion1WithoutALineage() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeUTF("ledger");
            out.writeInt(1);
            out.writeLong(99);
        }
        assertSame(
                new PgWriterState("ledger", 1, 99, ""),
                serializer.deserialize(1, bytes.toByteArray()));
    }

    @Test
    void refusesAnUnknownVersion() {
        IOException e =
                assertThrows(IOException.class, () -> serializer.deserialize(4, new byte[0]));
        assertEquals("unknown writer state version 4", e.getMessage());
    }
}
