package dev.tpc.sink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A test seam for crash tests, inert unless {@code TPC_SINK_PAUSE_AFTER_PRECOMMIT} names a
 * directory. Then, after the N-th non-empty pre-commit in this JVM ({@code
 * TPC_SINK_PAUSE_AFTER_PRECOMMIT_NTH}, default 3), the writer writes {@code paused-<subtask>}
 * there (holding the transaction id) and blocks, so the checkpoint cannot complete while a test
 * kills the process with {@code kill -9}.
 */
final class FaultInjection {
    private static final AtomicInteger PRE_COMMITS = new AtomicInteger();
    private static final FaultInjection NONE = new FaultInjection(null, 0);

    private final Path pauseDirectory;
    private final int pauseAt;

    private FaultInjection(Path pauseDirectory, int pauseAt) {
        this.pauseDirectory = pauseDirectory;
        this.pauseAt = pauseAt;
    }

    static FaultInjection fromEnvironment() {
        String dir = System.getenv("TPC_SINK_PAUSE_AFTER_PRECOMMIT");
        if (dir == null || dir.isEmpty()) {
            return NONE;
        }
        String nth = System.getenv("TPC_SINK_PAUSE_AFTER_PRECOMMIT_NTH");
        return new FaultInjection(Paths.get(dir), nth == null ? 3 : Integer.parseInt(nth));
    }

    void afterPreCommit(int subtask, String gid) throws InterruptedException {
        if (pauseDirectory == null || PRE_COMMITS.incrementAndGet() != pauseAt) {
            return;
        }
        try {
            Files.createDirectories(pauseDirectory);
            Path tmp = pauseDirectory.resolve(".paused-" + subtask);
            Files.write(tmp, gid.getBytes(StandardCharsets.UTF_8));
            Files.move(tmp, pauseDirectory.resolve("paused-" + subtask));
        } catch (IOException e) {
            throw new IllegalStateException("fault injection could not write its marker", e);
        }
        Thread.sleep(Long.MAX_VALUE); // until the test kills the process
    }
}
