package dev.tpc.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.core.fs.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;

/**
 * The checked listing's plain cases (its verdicts are {@code InputFileFaultTest}'s): what it
 * lists and leaves out, the splits it makes, ids unique across enumerators, and names shown
 * byte-exact as a shell takes them.
 */
class CheckedFileEnumeratorTest {
    @TempDir
    java.nio.file.Path input;

    private Collection<FileSourceSplit> list(java.nio.file.Path root) throws Exception {
        return new CheckedFileEnumerator().enumerateSplits(new Path[] {new Path(root.toUri())}, 1);
    }

    @Test
    void hiddenEntriesAreLeftOutAtEveryLevelAndSplitsSpanWholeFiles() throws Exception {
        Files.write(input.resolve("a.jsonl"), new byte[] {'x', '\n'});
        Files.write(input.resolve(".a.jsonl"), new byte[] {'h'});
        Files.write(input.resolve("_SUCCESS"), new byte[0]);
        Files.createDirectories(input.resolve("sub/_temporary"));
        Files.write(input.resolve("sub/_temporary/part"), new byte[] {'t'});
        Files.write(input.resolve("sub/b.jsonl"), new byte[] {'1', '2', '3'});
        Files.createDirectories(input.resolve(".hidden-dir"));
        Files.write(input.resolve(".hidden-dir/c.jsonl"), new byte[] {'c'});

        TreeMap<String, Long> lengths = new TreeMap<>();
        for (FileSourceSplit split : list(input)) {
            assertEquals(0, split.hostnames().length, "an ordinary split carries no fault");
            assertEquals(0, split.offset());
            assertEquals(split.length(), split.fileSize());
            lengths.put(
                    input.relativize(java.nio.file.Paths.get(split.path().getPath()))
                            .toString(),
                    split.length());
        }
        TreeMap<String, Long> expected = new TreeMap<>();
        expected.put("a.jsonl", 2L);
        expected.put("sub/b.jsonl", 3L);
        assertEquals(expected, lengths);

        // A hidden root is left out too; a file as the root is listed.
        assertTrue(list(input.resolve(".hidden-dir")).isEmpty());
        assertEquals(1, list(input.resolve("a.jsonl")).size());
        assertTrue(CheckedFileEnumerator.hidden("_x") && CheckedFileEnumerator.hidden(".x"));
        assertFalse(CheckedFileEnumerator.hidden("x_."));
    }

    @Test
    void splitIdsAreUniqueAcrossEnumerators() throws Exception {
        Files.write(input.resolve("a.jsonl"), new byte[] {'x'});
        Files.write(input.resolve("b.jsonl"), new byte[] {'y'});
        Set<String> ids = new HashSet<>();
        List<FileSourceSplit> all = new ArrayList<>();
        CheckedFileEnumerator reused = new CheckedFileEnumerator();
        for (int i = 0; i < 3; i++) {
            all.addAll(reused.enumerateSplits(new Path[] {new Path(input.toUri())}, 1));
            all.addAll(CheckedFileEnumerator.provider()
                    .create()
                    .enumerateSplits(new Path[] {new Path(input.toUri())}, 1));
        }
        for (FileSourceSplit split : all) {
            ids.add(split.splitId());
        }
        assertEquals(12, ids.size());
    }

    @Test
    void namesAreShownByteExactAsAShellTakesThem() {
        assertEquals(
                "$'/in/it\\'s a \\\\ name\\x09.jsonl'",
                CheckedFileEnumerator.shellQuoted(
                        java.nio.file.Paths.get("/in/it's a \\ name\t.jsonl")));
        assertEquals(
                "$'/in/plain.jsonl'",
                CheckedFileEnumerator.shellQuoted(java.nio.file.Paths.get("/in/plain.jsonl")));
    }

    @Test
    void aFifoIsNamedByItsType() throws Exception {
        Process mkfifo = new ProcessBuilder("mkfifo", input.resolve("pipe").toString()).start();
        assertEquals(0, mkfifo.waitFor());
        assertEquals("a FIFO", CheckedFileEnumerator.fileType(input.resolve("pipe")));
        Files.createDirectory(input.resolve("d"));
        assertEquals(
                "file mode "
                        + Integer.toOctalString(
                                (Integer) Files.getAttribute(input.resolve("d"), "unix:mode")),
                CheckedFileEnumerator.fileType(input.resolve("d")));
    }
}
