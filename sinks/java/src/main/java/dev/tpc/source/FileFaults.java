package dev.tpc.source;

import org.apache.flink.core.fs.Path;

import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Paths;
import java.util.Locale;
import java.util.zip.ZipException;

/**
 * Tells a read error that no retry can fix (the file is gone, unreadable, or not the compressed
 * data its name says) from one that a retry may fix (a file system briefly unavailable), which
 * keeps going to the restart strategy unchanged.
 */
final class FileFaults {
    private FileFaults() {}

    /** The extensions Flink's file source decompresses by (StandardDeCompression). */
    private static final String[] COMPRESSED = {".gz", ".gzip", ".bz2", ".xz", ".deflate"};

    static boolean compressed(Path path) {
        String name = path.getName().toLowerCase(Locale.ROOT);
        for (String extension : COMPRESSED) {
            if (name.endsWith(extension)) {
                return true;
            }
        }
        return false;
    }

    /** The fault `error` at opening `path` means, or `error` itself if a retry may pass. */
    static IOException atOpen(Path path, IOException error) {
        return explain(path, error, -1);
    }

    /** The fault `error` after `linesRead` lines of `path` means, or `error` itself. */
    static IOException whileReading(Path path, IOException error, long linesRead) {
        return explain(path, error, linesRead);
    }

    private static IOException explain(Path path, IOException error, long linesRead) {
        if (error instanceof InputFileFault) {
            return error;
        }
        String file = path.getPath();
        boolean local = "file".equals(path.toUri().getScheme()) || path.toUri().getScheme() == null;
        if (local) {
            java.nio.file.Path nio = Paths.get(file);
            if (!Files.exists(nio, LinkOption.NOFOLLOW_LINKS)) {
                return new InputFileFault(InputFileFault.Kind.VANISHED, file, null, error);
            }
            if (!Files.exists(nio)) {
                return new InputFileFault(
                        InputFileFault.Kind.DANGLING_SYMLINK,
                        file,
                        "its target was removed",
                        error);
            }
            if (!Files.isReadable(nio)) {
                return new InputFileFault(InputFileFault.Kind.UNREADABLE_FILE, file, null, error);
            }
        }
        if (compressed(path) && decompressionError(error)) {
            String detail = error.getClass().getSimpleName() + ": " + error.getMessage();
            if (linesRead < 0) { // the header: read when the stream is opened
                return new InputFileFault(InputFileFault.Kind.NOT_COMPRESSED, file, detail, error);
            }
            return new InputFileFault(
                    InputFileFault.Kind.CORRUPT_COMPRESSED,
                    file,
                    detail + ", after line " + linesRead,
                    error);
        }
        return error;
    }

    /** Errors of the decompressing stream, not of the file under it. */
    private static boolean decompressionError(IOException error) {
        if (error instanceof EOFException || error instanceof ZipException) {
            return true;
        }
        String type = error.getClass().getName();
        // commons-compress (bz2, xz): its format exceptions, and plain IOExceptions that say so.
        return type.contains("compress")
                || type.contains("tukaani")
                || String.valueOf(error.getMessage()).toLowerCase(Locale.ROOT).contains("format");
    }
}
