package dev.tpc.sink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A test seam for failure tests, inert unless {@code TPC_SINK_FAULT_DIR} names a directory (read
 * from a JVM system property of that name first, so a test can arm it in an already running
 * mini cluster, then from the environment).
 *
 * <p>It acts at the N-th non-empty checkpoint of a writer in this JVM ({@code
 * TPC_SINK_FAULT_NTH}, default 3), counted per fault directory and optionally only for one sink
 * ({@code TPC_SINK_FAULT_SINK_ID}), right after the writer has pre-committed that checkpoint's
 * transaction, or, at least once, flushed that checkpoint's rows into the target tables. That
 * checkpoint cannot complete yet, so whatever happens next, the restore replays its rows: an
 * exactly-once sink must discard what it pre-committed, an at-least-once sink provably writes
 * those rows twice. This is what makes an at-least-once control deterministic.
 *
 * <p>It writes {@code fault-<subtask>} into the directory (the sink id, subtask, transaction id
 * and row count of that checkpoint, one {@code key=value} per line) and then, after {@code
 * TPC_SINK_FAULT_ACTION}:
 * <ul>
 *   <li>{@code pause} (default): blocks, so a test can {@code kill -9} the process while the
 *       checkpoint is pending;</li>
 *   <li>{@code fail}: throws, once per directory, and the job fails over.</li>
 * </ul>
 */
final class FaultInjection {
    static final String DIR = "TPC_SINK_FAULT_DIR";
    static final String NTH = "TPC_SINK_FAULT_NTH";
    static final String SINK_ID = "TPC_SINK_FAULT_SINK_ID";
    static final String ACTION = "TPC_SINK_FAULT_ACTION";

    private static final Map<String, AtomicInteger> CHECKPOINTS = new ConcurrentHashMap<>();
    private static final FaultInjection NONE = new FaultInjection(null, 0, null, false);

    private final Path directory;
    private final int actAt;
    private final String sinkId;
    private final boolean fail;

    private FaultInjection(Path directory, int actAt, String sinkId, boolean fail) {
        this.directory = directory;
        this.actAt = actAt;
        this.sinkId = sinkId;
        this.fail = fail;
    }

    static FaultInjection fromSettings() {
        String dir = setting(DIR);
        if (dir == null) {
            return NONE;
        }
        String nth = setting(NTH);
        String action = setting(ACTION);
        if (action != null && !action.equals("pause") && !action.equals("fail")) {
            throw new IllegalArgumentException(ACTION + " must be 'pause' or 'fail': " + action);
        }
        return new FaultInjection(Paths.get(dir), nth == null ? 3 : Integer.parseInt(nth),
                setting(SINK_ID), "fail".equals(action));
    }

    private static String setting(String name) {
        String value = System.getProperty(name);
        if (value == null || value.isEmpty()) {
            value = System.getenv(name);
        }
        return value == null || value.isEmpty() ? null : value;
    }

    /**
     * Called once a writer has made a non-empty checkpoint's rows durable (pre-committed, or
     * flushed by an at-least-once writer), before the checkpoint can complete.
     */
    void afterCheckpointFlushed(String sink, int subtask, String gid, long rows)
            throws IOException, InterruptedException {
        if (directory == null || (sinkId != null && !sinkId.equals(sink))
                || CHECKPOINTS.computeIfAbsent(directory.toString(), d -> new AtomicInteger())
                        .incrementAndGet() != actAt) {
            return;
        }
        String report = "sink_id=" + sink + "\nsubtask=" + subtask + "\ngid="
                + (gid == null ? "" : gid) + "\nrows=" + rows + "\n";
        try {
            Files.createDirectories(directory);
            if (fail) {
                // Once per directory, even across JVMs (a standalone cluster's TaskManagers).
                Files.createFile(directory.resolve("fired"));
            }
            Path tmp = directory.resolve(".fault-" + subtask);
            Files.write(tmp, report.getBytes(StandardCharsets.UTF_8));
            Files.move(tmp, directory.resolve("fault-" + subtask));
        } catch (FileAlreadyExistsException e) {
            return;
        } catch (IOException e) {
            throw new IllegalStateException("fault injection could not write its marker", e);
        }
        if (fail) {
            throw new IOException("injected sink failure: sink '" + sink + "' subtask " + subtask
                    + " after making " + rows + " rows of a checkpoint durable ("
                    + (gid == null ? "at least once" : gid) + "), before it completed");
        }
        Thread.sleep(Long.MAX_VALUE); // until the test kills the process
    }
}
