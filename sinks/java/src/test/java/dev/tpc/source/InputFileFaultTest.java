package dev.tpc.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.enumerate.NonSplittingRecursiveEnumerator;
import org.apache.flink.connector.file.src.reader.BulkFormat;
import org.apache.flink.connector.file.src.util.RecordAndPosition;
import org.apache.flink.core.fs.Path;
import org.apache.flink.runtime.throwable.ThrowableClassifier;
import org.apache.flink.runtime.throwable.ThrowableType;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.TreeMap;
import java.util.zip.GZIPOutputStream;

/**
 * Every input entry no retry can read gets a verdict from the listing or the reader: an {@link
 * InputFileFault} that Flink's restart strategy does not retry. The controls: readable files
 * next to them are read whole, an ordinary read error stays retryable, and Flink's own listing
 * fails the whole directory on the same entries (what the checked listing replaces).
 */
class InputFileFaultTest {
    @TempDir
    java.nio.file.Path input;

    private static final byte[] LINES = "{\"a\": 1}\n{\"a\": 2}\n".getBytes(StandardCharsets.UTF_8);

    private Collection<FileSourceSplit> list() throws IOException {
        return new CheckedFileEnumerator().enumerateSplits(new Path[] {new Path(input.toUri())}, 1);
    }

    /** Each split's outcome by its file name: its line count, or its fault's kind. */
    private TreeMap<String, String> outcomes() throws IOException {
        TreeMap<String, String> outcomes = new TreeMap<>();
        for (FileSourceSplit split : list()) {
            String name = input.relativize(java.nio.file.Paths.get(split.path().getPath()))
                    .toString();
            try {
                outcomes.put(name, read(split).size() + " lines");
            } catch (InputFileFault fault) {
                outcomes.put(name, fault.kind().name());
            }
        }
        return outcomes;
    }

    private static List<Row> read(FileSourceSplit split) throws IOException {
        List<Row> rows = new ArrayList<>();
        try (BulkFormat.Reader<Row> reader =
                new NumberedLinesFormat().createReader(new Configuration(), split)) {
            BulkFormat.RecordIterator<Row> batch;
            while ((batch = reader.readBatch()) != null) {
                RecordAndPosition<Row> next;
                while ((next = batch.next()) != null) {
                    rows.add(next.getRecord());
                }
                batch.releaseBatch();
            }
        }
        return rows;
    }

    private static void shell(String script, java.nio.file.Path directory) throws Exception {
        Process process = new ProcessBuilder("sh", "-c", script)
                .directory(directory.toFile())
                .inheritIO()
                .start();
        assertEquals(0, process.waitFor(), script);
    }

    private static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream zipped = new GZIPOutputStream(out)) {
            zipped.write(data);
        }
        return out.toByteArray();
    }

    @Test
    void everyEntryGetsAVerdictAndReadableFilesAreReadWhole() throws Exception {
        Files.write(input.resolve("good.jsonl"), LINES);
        Files.write(input.resolve("good.jsonl.gz"), gzip(LINES));
        Files.createDirectory(input.resolve("sub"));
        Files.write(input.resolve("sub").resolve("nested.jsonl"), LINES);
        Files.write(input.resolve(".hidden-fifo-is-never-looked-at"), LINES);
        shell("mkfifo pipe.jsonl && mkfifo .hidden.jsonl", input);
        shell("printf x > \"$(printf 'bad-\\377-name.jsonl')\"", input);
        Files.write(input.resolve("back\\slash.jsonl"), LINES);
        Files.createSymbolicLink(input.resolve("loop-a.jsonl"), input.resolve("loop-b.jsonl"));
        Files.createSymbolicLink(input.resolve("loop-b.jsonl"), input.resolve("loop-a.jsonl"));
        Files.createSymbolicLink(input.resolve("dangling.jsonl"), input.resolve("missing"));
        Files.createSymbolicLink(input.resolve("sub").resolve("up"), input);
        Files.write(input.resolve("plain.jsonl.gz"), LINES);
        Files.write(input.resolve("empty.jsonl.gz"), new byte[0]);
        byte[] big = new byte[400_000];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i % 100 == 99 ? '\n' : 'a' + (i * 7919) % 26);
        }
        byte[] whole = gzip(big);
        Files.write(
                input.resolve("truncated.jsonl.gz"),
                java.util.Arrays.copyOf(whole, whole.length / 2));

        TreeMap<String, String> expected = new TreeMap<>();
        expected.put("good.jsonl", "2 lines");
        expected.put("good.jsonl.gz", "2 lines");
        expected.put("sub/nested.jsonl", "2 lines");
        expected.put("pipe.jsonl", "NOT_REGULAR_FILE");
        expected.put("bad-\uFFFD-name.jsonl", "NAME_NOT_UTF8");
        expected.put("back/slash.jsonl", "NAME_UNSUPPORTED"); // as Flink's Path shows it
        expected.put("loop-a.jsonl", "SYMLINK_LOOP");
        expected.put("loop-b.jsonl", "SYMLINK_LOOP");
        expected.put("dangling.jsonl", "DANGLING_SYMLINK");
        expected.put("sub/up", "SYMLINK_LOOP");
        expected.put("plain.jsonl.gz", "NOT_COMPRESSED");
        expected.put("empty.jsonl.gz", "NOT_COMPRESSED");
        expected.put("truncated.jsonl.gz", "CORRUPT_COMPRESSED");
        assertEquals(expected, outcomes());
        InputFileFault badName = assertThrows(
                InputFileFault.class,
                () -> read(list().stream()
                        .filter(split -> split.path().getName().startsWith("bad-"))
                        .findFirst()
                        .get()));
        // The bytes of the name, as a shell gives them back (tests/transforms checks $'...').
        assertTrue(
                badName.getMessage().contains("byte-exact: $'" + input + "/bad-\\xff-name.jsonl'"),
                badName.getMessage());
    }

    @Test
    void flinksOwnListingFailsTheWholeDirectoryOnTheSameEntries() throws Exception {
        Files.write(input.resolve("good.jsonl"), LINES);
        Files.createSymbolicLink(input.resolve("dangling.jsonl"), input.resolve("missing"));
        assertThrows(
                java.io.FileNotFoundException.class,
                () -> new NonSplittingRecursiveEnumerator()
                        .enumerateSplits(new Path[] {new Path(input.toUri())}, 1));
        assertEquals("DANGLING_SYMLINK", outcomes().get("dangling.jsonl"));
    }

    @Test
    void aFileRemovedAfterListingIsAVerdictOnOpening() throws Exception {
        Files.write(input.resolve("going.jsonl"), LINES);
        FileSourceSplit split = list().iterator().next();
        Files.delete(input.resolve("going.jsonl"));
        InputFileFault fault = assertThrows(InputFileFault.class, () -> read(split));
        assertEquals(InputFileFault.Kind.VANISHED, fault.kind());
        assertTrue(fault.getMessage().startsWith("input file " + input.resolve("going.jsonl")));
        assertTrue(fault.getMessage().endsWith("[vanished]"), fault.getMessage());
    }

    @Test
    void aFaultStopsTheRestartsAndAnOrdinaryErrorDoesNot() throws IOException {
        RuntimeException wrapped = new RuntimeException(
                "One or more fetchers have encountered exception",
                new InputFileFault(InputFileFault.Kind.VANISHED, "/in/x.jsonl", null));
        assertTrue(ThrowableClassifier.findThrowableOfThrowableType(
                        wrapped, ThrowableType.NonRecoverableError)
                .isPresent());
        Files.write(input.resolve("x.jsonl"), LINES);
        IOException ordinary = FileFaults.whileReading(
                new Path(input.resolve("x.jsonl").toUri()),
                new IOException("Input/output error"),
                3);
        assertFalse(ordinary instanceof InputFileFault);
        assertFalse(ThrowableClassifier.findThrowableOfThrowableType(
                        new RuntimeException(ordinary), ThrowableType.NonRecoverableError)
                .isPresent());
    }

    @Test
    void aDirectoryItMayNotListIsAVerdictWhenNotRoot() throws Exception {
        // Root reads everything; tests/transforms/test_input_faults.py drops that privilege.
        org.junit.jupiter.api.Assumptions.assumeFalse(
                "root".equals(System.getProperty("user.name")));
        java.nio.file.Path closed = Files.createDirectory(input.resolve("closed"));
        Files.write(closed.resolve("x.jsonl"), LINES);
        Files.write(input.resolve("secret.jsonl"), LINES);
        shell("chmod 000 closed secret.jsonl", input);
        try {
            TreeMap<String, String> outcomes = outcomes();
            assertEquals("UNREADABLE_DIRECTORY", outcomes.get("closed"));
            assertEquals("UNREADABLE_FILE", outcomes.get("secret.jsonl"));
        } finally {
            shell("chmod 700 closed secret.jsonl", input);
        }
        assertNotNull(closed);
    }
}
