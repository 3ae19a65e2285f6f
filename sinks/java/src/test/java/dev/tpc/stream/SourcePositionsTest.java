package dev.tpc.stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tpc.source.NumberedLinesFormat;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.reader.BulkFormat;
import org.apache.flink.connector.file.src.util.RecordAndPosition;
import org.apache.flink.core.fs.Path;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.HashMap;
import java.util.List;

/**
 * The digest of a source's lines is the one {@code sinks/positions.py} computes from the file
 * (the values below are Python's), additive over parts, and order-sensitive; lines up to the
 * applied position are skipped. The two operators that track positions, driven by Flink's
 * operator test harnesses: each subtask's sums leave before every barrier and at end of input,
 * and the keyed tracker adds them to the seed or to its restored totals.
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

    private static Row line(String source, long number, String text) {
        return Row.of(source, number, bytes(text));
    }

    private static OneInputStreamOperatorTestHarness<Row, Row> perSubtask() throws Exception {
        OneInputStreamOperatorTestHarness<Row, Row> harness =
                new OneInputStreamOperatorTestHarness<>(new SourcePositions.PerSubtask());
        harness.setup(SourcePositions.TYPE.createSerializer(new SerializerConfigImpl()));
        harness.open();
        return harness;
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, Row, Row> tracker(
            HashMap<String, long[]> seed, OperatorSubtaskState restored) throws Exception {
        KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                new KeyedOneInputStreamOperatorTestHarness<>(
                        new KeyedProcessOperator<>(new SourcePositions.Tracker(seed)),
                        new RowOperators.StringFieldKey(0),
                        Types.STRING);
        harness.setup(SourcePositions.TYPE.createSerializer(new SerializerConfigImpl()));
        if (restored != null) {
            harness.initializeState(restored);
        }
        harness.open();
        return harness;
    }

    @Test
    void eachSubtaskSumsPerSourceUntilTheBarrierAndHoldsNothingAcrossIt() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> harness = perSubtask()) {
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 1, "{\"a\": 1}\n")));
            harness.processElement(new StreamRecord<>(line("kafka:t:0", 41, "k")));
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 2, "x\r\n")));
            assertTrue(harness.extractOutputValues().isEmpty(), "nothing before the barrier");

            harness.prepareSnapshotPreBarrier(1);
            long aDigest = SourcePositions.digest(1, bytes("{\"a\": 1}\n"))
                    + SourcePositions.digest(2, bytes("x\r\n"));
            assertEquals(
                    List.of(
                            Row.of("/in/a.jsonl", 2L, 2L, 12L, aDigest),
                            Row.of(
                                    "kafka:t:0",
                                    41L,
                                    1L,
                                    1L,
                                    SourcePositions.digest(41, bytes("k")))),
                    harness.extractOutputValues());
            harness.getOutput().clear();

            harness.prepareSnapshotPreBarrier(2); // nothing read since: nothing emitted
            assertTrue(harness.extractOutputValues().isEmpty());

            // Out of order within a part (two splits of one source): the highest position.
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 3, "last")));
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 1, "")));
            harness.endInput();
            assertEquals(
                    List.of(Row.of(
                            "/in/a.jsonl",
                            3L,
                            2L,
                            4L,
                            SourcePositions.digest(3, bytes("last"))
                                    + SourcePositions.digest(1, new byte[0]))),
                    harness.extractOutputValues());
        }
    }

    @Test
    void theTrackerAddsPartsToTheSeedThenToItsRestoredTotals() throws Exception {
        HashMap<String, long[]> seed = new HashMap<>();
        seed.put("/in/a.jsonl", new long[] {10, 10, 100, 7});
        OperatorSubtaskState snapshot;
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                tracker(seed, null)) {
            harness.processElement(new StreamRecord<>(Row.of("/in/a.jsonl", 12L, 2L, 20L, 5L)));
            harness.processElement(new StreamRecord<>(Row.of("/in/b.jsonl", 3L, 3L, 30L, -1L)));
            assertEquals(
                    List.of(
                            Row.of("/in/a.jsonl", 12L, 12L, 120L, 12L),
                            Row.of("/in/b.jsonl", 3L, 3L, 30L, -1L)),
                    harness.extractOutputValues());
            snapshot = harness.snapshot(1, 1);
            // A part whose highest position is below the total's (lines of another split)
            // keeps the total's position; the digest wraps modulo 2^64.
            harness.processElement(
                    new StreamRecord<>(Row.of("/in/b.jsonl", 2L, 1L, 1L, Long.MAX_VALUE)));
            assertEquals(
                    Row.of("/in/b.jsonl", 3L, 4L, 31L, Long.MAX_VALUE - 1),
                    harness.extractOutputValues().get(2));
        }
        assertEquals(10L, seed.get("/in/a.jsonl")[0], "the seed itself is never changed");

        // Restored: the totals of the checkpoint, not the seed (a restore seeds nothing).
        HashMap<String, long[]> otherSeed = new HashMap<>();
        otherSeed.put("/in/a.jsonl", new long[] {1000, 1000, 1000, 1000});
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                tracker(otherSeed, snapshot)) {
            harness.processElement(new StreamRecord<>(Row.of("/in/a.jsonl", 13L, 1L, 1L, 1L)));
            harness.processElement(new StreamRecord<>(Row.of("/in/b.jsonl", 4L, 1L, 1L, 1L)));
            assertEquals(
                    List.of(
                            Row.of("/in/a.jsonl", 13L, 13L, 121L, 13L),
                            Row.of("/in/b.jsonl", 4L, 4L, 31L, 0L)),
                    harness.extractOutputValues());
        }
    }

    @Test
    void checkpointedPartsAddUpToPythonsPositionOfTheWholeFile() throws Exception {
        // sinks/positions.py file_position() of these bytes: (3, 3, 16, -7493167678486230130)
        // for the whole file, (2, 2, 12, -3964494842131459415) for its first two lines.
        String[] lines = {"{\"a\": 1}\n", "x\r\n", "last"};
        List<Row> parts;
        try (OneInputStreamOperatorTestHarness<Row, Row> harness = perSubtask()) {
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 1, lines[0])));
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 2, lines[1])));
            harness.prepareSnapshotPreBarrier(1);
            harness.processElement(new StreamRecord<>(line("/in/a.jsonl", 3, lines[2])));
            harness.endInput();
            parts = harness.extractOutputValues();
        }
        assertEquals(2, parts.size());
        try (KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness =
                tracker(new HashMap<>(), null)) {
            for (Row part : parts) {
                harness.processElement(new StreamRecord<>(part));
            }
            assertEquals(
                    List.of(
                            Row.of("/in/a.jsonl", 2L, 2L, 12L, -3964494842131459415L),
                            Row.of("/in/a.jsonl", 3L, 3L, 16L, -7493167678486230130L)),
                    harness.extractOutputValues());
        }
    }

    @TempDir
    java.nio.file.Path input;

    @Test
    void aFileReadByTheFormatHasPythonsPositionAlsoWithALineCutAtTheLimit() throws Exception {
        // sinks/positions.py file_position() of this file: (4, 4, 8388618, -3500702136938953632).
        java.io.ByteArrayOutputStream content = new java.io.ByteArrayOutputStream();
        byte[] longLine =
                new byte[8 * 1024 * 1024 + 10]; // 10 bytes over the limit (MAX_LINE_BYTES)
        java.util.Arrays.fill(longLine, (byte) 'a');
        content.write(longLine);
        content.write(new byte[] {'\n', 'b', '\n', (byte) 0xff, (byte) 0xfe, '\r', '\n'});
        content.write(bytes("tail"));
        java.nio.file.Path file = input.resolve("long.jsonl");
        Files.write(file, content.toByteArray());
        FileSourceSplit split = new FileSourceSplit(
                "0", new Path(file.toUri()), 0, content.size(), 0, content.size());
        try (OneInputStreamOperatorTestHarness<Row, Row> harness = perSubtask();
                BulkFormat.Reader<Row> reader =
                        new NumberedLinesFormat().createReader(new Configuration(), split)) {
            BulkFormat.RecordIterator<Row> batch;
            while ((batch = reader.readBatch()) != null) {
                RecordAndPosition<Row> next;
                while ((next = batch.next()) != null) {
                    harness.processElement(new StreamRecord<>(next.getRecord()));
                }
                batch.releaseBatch();
            }
            harness.endInput();
            assertEquals(
                    List.of(Row.of(file.toString(), 4L, 4L, 8388618L, -3500702136938953632L)),
                    harness.extractOutputValues());
        }
    }
}
