package dev.tpc.source;

import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.runtime.throwable.ThrowableAnnotation;
import org.apache.flink.runtime.throwable.ThrowableType;

import java.io.IOException;

/**
 * An input file that no retry can read: the job fails at once with this message instead of
 * restarting (Flink's restart strategy skips errors annotated as non-recoverable).
 *
 * <p>A fault found while listing the input travels in the file's split (see {@link #mark}) and
 * is raised by the reader that is given it, so the job fails in both the bounded and the
 * watching (continuous) file source: the continuous source only logs a failed listing and
 * tries again, forever. The job's command checks the input the same way before it starts
 * ({@code transforms/inputs.py input_faults}), where it can print names byte-exact; these
 * catch what appears or changes after that.
 */
@ThrowableAnnotation(ThrowableType.NonRecoverableError)
public final class InputFileFault extends IOException {
    private static final long serialVersionUID = 1L;

    /** What is wrong with the file, each with what the user can do about it. */
    public enum Kind {
        NAME_NOT_UTF8(
                "its name is not valid UTF-8 (shown with U+FFFD in its place), and Flink opens"
                        + " files by name as text",
                "rename it to a UTF-8 name"),
        NAME_UNSUPPORTED(
                "its name holds a character Flink's paths cannot carry (a backslash is read as"
                        + " a directory separator)",
                "rename it"),
        UNREADABLE_FILE(
                "the user running Flink may not read it",
                "grant read permission (chmod a+r) or move it out of the input"),
        UNREADABLE_DIRECTORY(
                "a directory the user running Flink may not list (it needs read and execute"
                        + " permission)",
                "grant them (chmod a+rx) or move it out of the input"),
        NOT_REGULAR_FILE(
                "not a regular file: reading it would block or never end",
                "move it out of the input"),
        SYMLINK_LOOP(
                "a symbolic link that loops (or a link back to a directory above it)",
                "remove the link"),
        DANGLING_SYMLINK(
                "a symbolic link to a file that does not exist",
                "restore its target or remove the link"),
        VANISHED(
                "it was listed, then removed or renamed before it was read",
                "restore it, or start the job again: it resumes from what the database"
                        + " applied"),
        NOT_COMPRESSED(
                "its name says compressed, but its content is not in that format",
                "rename it without the extension if it is plain text, or replace it"),
        CORRUPT_COMPRESSED(
                "its compressed data is truncated or corrupt (a file still being written looks"
                        + " like this: write it under a name starting with '.' or '_' and"
                        + " rename it when complete)",
                "replace it with the complete file and start the job again: it resumes from"
                        + " what the database applied");

        final String problem;
        final String remedy;

        Kind(String problem, String remedy) {
            this.problem = problem;
            this.remedy = remedy;
        }
    }

    /** Marks a split as a fault found at listing time: the one host name, never a real host. */
    private static final String MARK = "tpc-input-fault:";

    private final Kind kind;
    private final String path;

    public InputFileFault(Kind kind, String path, String detail) {
        super(message(kind, path, detail));
        this.kind = kind;
        this.path = path;
    }

    public InputFileFault(Kind kind, String path, String detail, Throwable cause) {
        this(kind, path, detail);
        initCause(cause);
    }

    public Kind kind() {
        return kind;
    }

    public String path() {
        return path;
    }

    private static String message(Kind kind, String path, String detail) {
        return "input file "
                + path
                + ": "
                + kind.problem
                + (detail == null || detail.isEmpty() ? "" : " (" + detail + ")")
                + ". "
                + Character.toUpperCase(kind.remedy.charAt(0))
                + kind.remedy.substring(1)
                + ". [" + kind.name().toLowerCase(java.util.Locale.ROOT) + "]";
    }

    /** The host names of a split that carries `kind` to its reader. */
    static String[] mark(Kind kind, String detail) {
        return new String[] {MARK + kind.name() + ":" + (detail == null ? "" : detail)};
    }

    /** Throws the fault a split carries, if it carries one. */
    static void raiseIfMarked(FileSourceSplit split) throws InputFileFault {
        for (String host : split.hostnames()) {
            if (host.startsWith(MARK)) {
                String rest = host.substring(MARK.length());
                int colon = rest.indexOf(':');
                throw new InputFileFault(
                        Kind.valueOf(rest.substring(0, colon)),
                        split.path().getPath(),
                        rest.substring(colon + 1));
            }
        }
    }
}
