package dev.tpc.source;

import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.enumerate.FileEnumerator;
import org.apache.flink.connector.file.src.enumerate.NonSplittingRecursiveEnumerator;
import org.apache.flink.core.fs.Path;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Paths;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Flink's recursive, non-splitting file listing (hidden names, those starting with '.' or '_',
 * left out at every level), which gives every local entry it cannot read a verdict instead of
 * failing the whole listing: such an entry becomes a split marked with its {@link
 * InputFileFault}, which its reader raises, failing the job at once with the file's name.
 *
 * <p>Flink's own enumerator meets a name that is not valid UTF-8, a dangling or looping link
 * with "File ... does not exist" for the whole directory, fails listing a directory it may not
 * read with a NullPointerException, and hands a FIFO to a reader that blocks forever. In the
 * bounded source that failure goes to the restart strategy (minutes of retries that cannot
 * help); the continuous source logs it and lists again, forever, reading nothing new.
 *
 * <p>Other file systems (S3, HDFS) are listed by Flink's enumerator, unchanged.
 */
public final class CheckedFileEnumerator implements FileEnumerator {

    /** A serializable factory for {@code FileSource.Builder#setFileEnumerator}. */
    public static FileEnumerator.Provider provider() {
        return CheckedFileEnumerator::new;
    }

    // Unique across enumerator instances: a restored enumerator must not reuse the ids of
    // splits that are still pending in its restored state.
    private final long idPrefix = ThreadLocalRandom.current().nextLong() >>> 1;
    private long nextId;

    @Override
    public Collection<FileSourceSplit> enumerateSplits(Path[] paths, int minDesiredSplits)
            throws IOException {
        List<FileSourceSplit> splits = new ArrayList<>();
        for (Path path : paths) {
            if (!"file".equals(path.getFileSystem().getUri().getScheme())) {
                splits.addAll(new NonSplittingRecursiveEnumerator()
                        .enumerateSplits(new Path[] {path}, minDesiredSplits));
                continue;
            }
            java.nio.file.Path root = Paths.get(path.toUri().getPath()).toAbsolutePath();
            if (root.getFileName() != null && hidden(root.getFileName().toString())) {
                continue;
            }
            addEntry(root, new HashSet<>(), splits);
        }
        return splits;
    }

    static boolean hidden(String name) {
        return name.startsWith(".") || name.startsWith("_");
    }

    private void addEntry(
            java.nio.file.Path entry, Set<Object> ancestors, List<FileSourceSplit> out)
            throws IOException {
        String text = entry.toString();
        if (!Files.exists(Paths.get(text), LinkOption.NOFOLLOW_LINKS)) {
            if (Files.exists(entry, LinkOption.NOFOLLOW_LINKS)) {
                out.add(fault(
                        text,
                        InputFileFault.Kind.NAME_NOT_UTF8,
                        "byte-exact: " + shellQuoted(entry)));
            } // else: removed while listing, as if never listed
            return;
        }
        if (!new Path("file:" + text).getPath().equals(text)) {
            out.add(fault(
                    text,
                    InputFileFault.Kind.NAME_UNSUPPORTED,
                    "its name is " + entry.getFileName()));
            return;
        }
        BasicFileAttributes attributes;
        try {
            attributes = Files.readAttributes(entry, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            if (Files.isSymbolicLink(entry)) {
                out.add(fault(
                        text,
                        InputFileFault.Kind.DANGLING_SYMLINK,
                        "to " + Files.readSymbolicLink(entry)));
            }
            return;
        } catch (AccessDeniedException e) {
            out.add(fault(parentOf(entry), InputFileFault.Kind.UNREADABLE_DIRECTORY, null));
            return;
        } catch (FileSystemException e) {
            if (String.valueOf(e.getReason()).contains("symbolic link")) {
                out.add(fault(text, InputFileFault.Kind.SYMLINK_LOOP, null));
                return;
            }
            throw e;
        }
        if (attributes.isDirectory()) {
            Object key = attributes.fileKey() != null ? attributes.fileKey() : entry.toRealPath();
            if (!ancestors.add(key)) {
                out.add(fault(text, InputFileFault.Kind.SYMLINK_LOOP, null));
                return;
            }
            try {
                addDirectory(entry, ancestors, out);
            } finally {
                ancestors.remove(key);
            }
        } else if (attributes.isRegularFile()) {
            long size = attributes.size();
            out.add(new FileSourceSplit(
                    nextId(),
                    new Path("file:" + text),
                    0,
                    size,
                    attributes.lastModifiedTime().toMillis(),
                    size));
        } else {
            out.add(fault(text, InputFileFault.Kind.NOT_REGULAR_FILE, fileType(entry)));
        }
    }

    private void addDirectory(
            java.nio.file.Path directory, Set<Object> ancestors, List<FileSourceSplit> out)
            throws IOException {
        List<java.nio.file.Path> entries = new ArrayList<>();
        try (DirectoryStream<java.nio.file.Path> listing = Files.newDirectoryStream(directory)) {
            for (java.nio.file.Path entry : listing) {
                entries.add(entry);
            }
        } catch (AccessDeniedException e) {
            out.add(fault(directory.toString(), InputFileFault.Kind.UNREADABLE_DIRECTORY, null));
            return;
        }
        for (java.nio.file.Path entry : entries) {
            if (!hidden(entry.getFileName().toString())) {
                addEntry(entry, ancestors, out);
            }
        }
    }

    /**
     * The entry's path as bash's $'...' quoting, byte-exact: a name that is not UTF-8 has no
     * String, but its URI keeps the bytes (percent-encoded), and a user can paste this into
     * {@code mv}. Bytes outside printable ASCII are {@code \xNN}.
     */
    static String shellQuoted(java.nio.file.Path entry) {
        String raw = entry.toUri().getRawPath();
        StringBuilder quoted = new StringBuilder("$'");
        for (int i = 0; i < raw.length(); i++) {
            int b = raw.charAt(i);
            if (b == '%' && i + 2 < raw.length()) {
                b = Integer.parseInt(raw.substring(i + 1, i + 3), 16);
                i += 2;
            }
            if (b == '\\' || b == '\'') {
                quoted.append('\\').append((char) b);
            } else if (b >= 0x20 && b < 0x7f) {
                quoted.append((char) b);
            } else {
                quoted.append(String.format("\\x%02x", b));
            }
        }
        return quoted.append('\'').toString();
    }

    private static String parentOf(java.nio.file.Path entry) {
        java.nio.file.Path parent = entry.getParent();
        return parent == null ? entry.toString() : parent.toString();
    }

    /** FIFO, socket, character or block device, from the entry's st_mode. */
    static String fileType(java.nio.file.Path entry) {
        try {
            int mode = (Integer) Files.getAttribute(entry, "unix:mode");
            switch (mode & 0170000) {
                case 0010000:
                    return "a FIFO";
                case 0140000:
                    return "a socket";
                case 0020000:
                    return "a character device";
                case 0060000:
                    return "a block device";
                default:
                    return "file mode " + Integer.toOctalString(mode);
            }
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return null;
        }
    }

    private FileSourceSplit fault(String path, InputFileFault.Kind kind, String detail) {
        // The path as Flink can carry it; for a name that is not UTF-8 that is the name with
        // U+FFFD in place of the bytes, which is no file: it is only ever shown.
        return new FileSourceSplit(
                nextId(), new Path("file:" + path), 0, 0, 0, 0, InputFileFault.mark(kind, detail));
    }

    private String nextId() {
        return Long.toHexString(idPrefix) + "-" + nextId++;
    }
}
