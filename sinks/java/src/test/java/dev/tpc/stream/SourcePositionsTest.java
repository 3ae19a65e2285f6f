package dev.tpc.stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;

/**
 * The digest of a source's lines is the one {@code sinks/positions.py} computes from the file
 * (the values below are Python's), additive over parts, and order-sensitive; lines up to the
 * applied position are skipped.
 */
class SourcePositionsTest {
    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void theDigestIsPythons() {
        long digest = SourcePositions.digest(1, bytes("{\"a\": 1}\n"))
                + SourcePositions.digest(2, bytes("x\r\n"))
                + SourcePositions.digest(3, bytes("last"));
        assertEquals(-7493167678486230130L, digest);
        byte[] every = new byte[256];
        for (int i = 0; i < every.length; i++) {
            every[i] = (byte) i;
        }
        assertEquals(-6160759710179791902L, SourcePositions.digest(7, every));
        java.util.zip.CRC32 reused = new java.util.zip.CRC32();
        SourcePositions.digest(reused, 1, bytes("{\"a\": 1}\n"));
        assertEquals(-6160759710179791902L, SourcePositions.digest(reused, 7, every));
    }

    @Test
    void theDigestTellsTheOrderOfLines() {
        long inOrder =
                SourcePositions.digest(1, bytes("a\n")) + SourcePositions.digest(2, bytes("b\n"));
        long swapped =
                SourcePositions.digest(1, bytes("b\n")) + SourcePositions.digest(2, bytes("a\n"));
        assertTrue(inOrder != swapped);
    }

    @Test
    void linesUpToTheAppliedPositionAreSkipped() {
        HashMap<String, Long> applied = new HashMap<>();
        applied.put("/in/a.jsonl", 10L);
        SourcePositions.SkipApplied skip = new SourcePositions.SkipApplied(applied);
        assertFalse(skip.filter(Row.of("/in/a.jsonl", 10L, new byte[0])));
        assertTrue(skip.filter(Row.of("/in/a.jsonl", 11L, new byte[0])));
        assertTrue(skip.filter(Row.of("/in/b.jsonl", 1L, new byte[0])));
    }
}
