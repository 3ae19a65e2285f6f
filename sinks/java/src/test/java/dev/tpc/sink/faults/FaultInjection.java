package dev.tpc.sink.faults;

import dev.tpc.sink.SinkHooks;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The sink's fault injection for failure tests: {@link SinkHooks} in the fault-injection test
 * jar ({@code var/jars/tpc-fault-injection.jar}, built from here by {@code sinks/faults/pom.xml};
 * never in the sink's production jar), found through {@code META-INF/services}. Inert unless
 * {@code TPC_SINK_FAULT_DIR} names a directory (read from a JVM system property of that name
 * first, so a test can arm it in an already running mini cluster, then from the environment).
 *
 * <p>It acts at the N-th non-empty checkpoint of a writer in this JVM ({@code
 * TPC_SINK_FAULT_NTH}, default 3), counted per fault directory and optionally only for one sink
 * ({@code TPC_SINK_FAULT_SINK_ID}), right after the writer has pre-committed that checkpoint's
 * transaction, or, at least once, flushed that checkpoint's rows into the target tables. That
 * checkpoint cannot complete yet, so whatever happens next, the restore replays its rows: an
 * exactly-once sink must discard what it pre-committed, an at-least-once sink provably writes
 * those rows twice. This is what makes an at-least-once control deterministic.
 *
 * <p>{@code TPC_SINK_FAULT_MIN_ROWS} (default 0) lets it act only at a checkpoint of at least that
 * many rows: at the first point from the N-th on that has them. A control that counts what the
 * restore replays needs a replay large enough to show it (a loaded machine's checkpoint can
 * hold two rows).
 *
 * <p>{@code TPC_SINK_FAULT_PHASE} moves that point: {@code precommit} (default, as above),
 * {@code write} (a writer's N-th transaction, once its first batch of rows reached the database
 * and the transaction is still open) or {@code commit} (a committer's N-th commit, just before it
 * runs; its checkpoint has completed).
 *
 * <p>It writes {@code fault-<subtask>} into the directory (the sink id, subtask, transaction id
 * and row count of that checkpoint, one {@code key=value} per line) and then, after {@code
 * TPC_SINK_FAULT_ACTION}:
 * <ul>
 *   <li>{@code pause} (default): blocks, so a test can {@code kill -9} the process while the
 *       checkpoint is pending;</li>
 *   <li>{@code fail}: throws, once per directory, and the job fails over;</li>
 *   <li>{@code hold}: blocks until a file {@code release} appears in the directory (or the task
 *       is cancelled), so a test can act at that point (stop the database) and let it go on;</li>
 *   <li>{@code zombie}: once per directory across JVMs, blocks until {@code release} appears
 *       and ignores interrupts meanwhile, as a writer of a TaskManager the JobManager gave up on
 *       would go on: a test freezes that TaskManager, lets the job fail over, then releases the
 *       writer and checks it cannot pre-commit any more.</li>
 * </ul>
 *
 * <p>The report also names the JVM's process id ({@code pid}), so a test can signal it.
 */
public final class FaultInjection implements SinkHooks {
    /** What {@code META-INF/services} names: the hooks the settings ask for, or none. */
    public static final class Factory implements SinkHooks.Factory {
        @Override
        public SinkHooks create() {
            return fromSettings();
        }
    }

    static final String DIR = "TPC_SINK_FAULT_DIR";
    static final String NTH = "TPC_SINK_FAULT_NTH";
    static final String SINK_ID = "TPC_SINK_FAULT_SINK_ID";
    static final String ACTION = "TPC_SINK_FAULT_ACTION";
    static final String PHASE = "TPC_SINK_FAULT_PHASE";
    static final String MIN_ROWS = "TPC_SINK_FAULT_MIN_ROWS";

    private enum Action {
        PAUSE,
        FAIL,
        HOLD,
        ZOMBIE
    }

    private static final Map<String, AtomicInteger> CHECKPOINTS = new ConcurrentHashMap<>();
    // The fault directories whose fault acted in this JVM: it acts once per directory.
    private static final Set<String> ACTED = ConcurrentHashMap.newKeySet();
    private final Path directory;
    private final int actAt;
    private final long minRows;
    private final String sinkId;
    private final Action action;
    private final Point phase;

    private FaultInjection(
            Path directory, int actAt, long minRows, String sinkId, Action action, Point phase) {
        this.directory = directory;
        this.actAt = actAt;
        this.minRows = minRows;
        this.sinkId = sinkId;
        this.action = action;
        this.phase = phase;
    }

    /** The fault the settings ask for, or null when {@code TPC_SINK_FAULT_DIR} is unset. */
    static FaultInjection fromSettings() {
        String dir = setting(DIR);
        if (dir == null) {
            return null;
        }
        String nth = setting(NTH);
        String action = setting(ACTION);
        String phase = setting(PHASE);
        String minRows = setting(MIN_ROWS);
        Action parsedAction;
        Point parsedPhase;
        try {
            parsedAction = action == null
                    ? Action.PAUSE
                    : Action.valueOf(action.toUpperCase(java.util.Locale.ROOT));
            parsedPhase = phase == null
                    ? Point.PRECOMMIT
                    : Point.valueOf(phase.toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(ACTION + " must be 'pause', 'fail', 'hold' or "
                    + "'zombie' and "
                    + PHASE + " 'write', 'precommit' or 'commit': " + action + ", " + phase);
        }
        return new FaultInjection(
                Paths.get(dir),
                nth == null ? 3 : Integer.parseInt(nth),
                minRows == null ? 0 : Long.parseLong(minRows),
                setting(SINK_ID),
                parsedAction,
                parsedPhase);
    }

    private static String setting(String name) {
        String value = System.getProperty(name);
        if (value == null || value.isEmpty()) {
            value = System.getenv(name);
        }
        return value == null || value.isEmpty() ? null : value;
    }

    @Override
    public boolean watches(Point point) {
        return this.phase == point;
    }

    /**
     * Acts at the first point of the armed phase (for the armed sink) in this JVM that is the
     * N-th or later and has at least the minimum rows.
     */
    @Override
    public void at(Point phase, String sink, int subtask, String gid, long rows)
            throws IOException, InterruptedException {
        if (this.phase != phase
                || (sinkId != null && !sinkId.equals(sink))
                || CHECKPOINTS
                                .computeIfAbsent(directory.toString(), d -> new AtomicInteger())
                                .incrementAndGet()
                        < actAt
                || rows < minRows
                || !ACTED.add(directory.toString())) {
            return;
        }
        String report = "sink_id=" + sink + "\nsubtask=" + subtask + "\ngid="
                + (gid == null ? "" : gid) + "\nrows=" + rows + "\nphase="
                + phase.name().toLowerCase(java.util.Locale.ROOT) + "\npid="
                + ProcessHandle.current().pid() + "\n";
        boolean once = action == Action.FAIL || action == Action.ZOMBIE;
        boolean fail = action == Action.FAIL;
        try {
            Files.createDirectories(directory);
            if (once) {
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
        if (action == Action.ZOMBIE) {
            Path release = directory.resolve("release");
            while (!Files.exists(release)) {
                try {
                    Thread.sleep(50);
                } catch (InterruptedException e) {
                    // a zombie does not notice that its task was cancelled
                }
            }
            return;
        }
        if (action == Action.HOLD) {
            Path release = directory.resolve("release");
            while (!Files.exists(release)) {
                Thread.sleep(50); // an interrupt (task cancelled) ends the hold
            }
            return;
        }
        Thread.sleep(Long.MAX_VALUE); // until the test kills the process
    }
}
