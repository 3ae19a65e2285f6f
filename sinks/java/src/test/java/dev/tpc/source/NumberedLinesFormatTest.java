package dev.tpc.source;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.reader.BulkFormat;
import org.apache.flink.connector.file.src.util.CheckpointedPosition;
import org.apache.flink.connector.file.src.util.RecordAndPosition;
import org.apache.flink.core.fs.Path;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPOutputStream;

/**
 * Lines of a file as the Python parser must see them: byte-exact, split at {@code \n} only,
 * numbered from 1, numbers surviving a restore, a too-long line cut; and the split-level
 * verdicts the format raises.
 */
class NumberedLinesFormatTest {
    @TempDir
    java.nio.file.Path input;

    private FileSourceSplit split(String name, byte[] content) throws IOException {
        java.nio.file.Path file = input.resolve(name);
        Files.write(file, content);
        return new FileSourceSplit(
                "0", new Path(file.toUri()), 0, content.length, 0, content.length);
    }

    private static List<RecordAndPosition<Row>> read(BulkFormat.Reader<Row> reader, int limit)
            throws IOException {
        List<RecordAndPosition<Row>> out = new ArrayList<>();
        try (reader) {
            BulkFormat.RecordIterator<Row> batch;
            while (out.size() < limit && (batch = reader.readBatch()) != null) {
                RecordAndPosition<Row> next;
                while (out.size() < limit && (next = batch.next()) != null) {
                    // The iterator may reuse its holder: keep copies.
                    out.add(new RecordAndPosition<>(
                            next.getRecord(), next.getOffset(), next.getRecordSkipCount()));
                }
                batch.releaseBatch();
            }
        }
        return out;
    }

    private static List<String> lines(List<RecordAndPosition<Row>> records) {
        List<String> lines = new ArrayList<>();
        for (RecordAndPosition<Row> record : records) {
            lines.add(record.getRecord().getField(1) + ":"
                    + new String(
                            (byte[]) record.getRecord().getField(2), StandardCharsets.ISO_8859_1));
        }
        return lines;
    }

    private static byte[] bytes(String latin1) {
        return latin1.getBytes(StandardCharsets.ISO_8859_1);
    }

    @Test
    void linesAreByteExactSplitAtNewlinesOnlyAndNumberedFromOne() throws Exception {
        FileSourceSplit split = split("a.jsonl", bytes("{\"a\": 1}\r\n\n\u00ff\u00fe\rlone\nlast"));
        List<RecordAndPosition<Row>> records =
                read(new NumberedLinesFormat().createReader(new Configuration(), split), 100);
        assertEquals(
                List.of("1:{\"a\": 1}\r\n", "2:\n", "3:\u00ff\u00fe\rlone\n", "4:last"),
                lines(records));
        assertEquals(split.path().getPath(), records.get(0).getRecord().getField(0));
        assertEquals(
                List.of(),
                lines(read(
                        new NumberedLinesFormat()
                                .createReader(
                                        new Configuration(), split("empty.jsonl", new byte[0])),
                        100)));
    }

    @Test
    void aRestoredReaderGoesOnWithTheNextLineNumber() throws Exception {
        FileSourceSplit split = split("b.jsonl", bytes("one\ntwo\nthree\nfour\n"));
        List<RecordAndPosition<Row>> firstTwo =
                read(new NumberedLinesFormat().createReader(new Configuration(), split), 2);
        RecordAndPosition<Row> last = firstTwo.get(1);
        FileSourceSplit restored = split.updateWithCheckpointedPosition(
                new CheckpointedPosition(last.getOffset(), last.getRecordSkipCount()));
        assertEquals(
                List.of("3:three\n", "4:four\n"),
                lines(read(
                        new NumberedLinesFormat().restoreReader(new Configuration(), restored),
                        100)));
    }

    @Test
    void compressedFilesAreReadByTheirExtension() throws Exception {
        ByteArrayOutputStream zipped = new ByteArrayOutputStream();
        try (GZIPOutputStream out = new GZIPOutputStream(zipped)) {
            out.write(bytes("x\ny\n"));
        }
        FileSourceSplit split = split("c.jsonl.gz", zipped.toByteArray());
        assertEquals(
                List.of("1:x\n", "2:y\n"),
                lines(read(
                        new NumberedLinesFormat().createReader(new Configuration(), split), 100)));
    }

    @Test
    void aLineLongerThanTheLimitIsCutWithoutItsNewline() throws Exception {
        int max = NumberedLinesFormat.MAX_LINE_BYTES;
        byte[] content = new byte[max + 10 + 1 + 2];
        Arrays.fill(content, 0, max + 10, (byte) 'a');
        content[max + 10] = '\n';
        content[max + 11] = 'b';
        content[max + 12] = '\n';
        List<RecordAndPosition<Row>> records = read(
                new NumberedLinesFormat().createReader(new Configuration(), split("long", content)),
                100);
        assertEquals(2, records.size());
        byte[] cut = (byte[]) records.get(0).getRecord().getField(2);
        assertEquals(max, cut.length);
        assertFalse(cut[max - 1] == '\n');
        assertArrayEquals(bytes("b\n"), (byte[]) records.get(1).getRecord().getField(2));
        assertEquals(2L, records.get(1).getRecord().getField(1));
    }

    @Test
    void aSplitMarkedByTheListingRaisesItsFault() throws Exception {
        FileSourceSplit marked = new FileSourceSplit(
                "1",
                new Path("file:/in/pipe.jsonl"),
                0,
                0,
                0,
                0,
                InputFileFault.mark(InputFileFault.Kind.NOT_REGULAR_FILE, "a FIFO: with a colon"));
        InputFileFault fault = assertThrows(
                InputFileFault.class,
                () -> new NumberedLinesFormat().createReader(new Configuration(), marked));
        assertEquals(InputFileFault.Kind.NOT_REGULAR_FILE, fault.kind());
        assertEquals("/in/pipe.jsonl", fault.path());
        assertEquals(
                "input file /in/pipe.jsonl: not a regular file: reading it would block or never"
                        + " end (a FIFO: with a colon). Move it out of the input."
                        + " [not_regular_file]",
                fault.getMessage());
        assertThrows(
                InputFileFault.class,
                () -> new NumberedLinesFormat().restoreReader(new Configuration(), marked));
    }

    @Test
    void theRowsAreNamedAndTheFileIsNotSplit() {
        NumberedLinesFormat format = new NumberedLinesFormat();
        assertFalse(format.isSplittable());
        RowTypeInfo type = (RowTypeInfo) format.getProducedType();
        assertArrayEquals(new String[] {"source", "line_number", "line"}, type.getFieldNames());
        assertTrue(FileFaults.compressed(new Path("/in/A.JSONL.GZ")));
        assertTrue(FileFaults.compressed(new Path("/in/a.deflate")));
        assertFalse(FileFaults.compressed(new Path("/in/a.jsonl")));
        assertFalse(FileFaults.compressed(new Path("/in/gz")));
    }
}
