package dev.tpc.sink;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.TreeSet;

/**
 * Points in a writer's and a committer's life where a test can act (inject a fault); production
 * jobs have no hooks, and this jar holds no implementation.
 *
 * <p>An implementation lives in a jar of its own that registers a {@link Factory} with {@link
 * ServiceLoader}: the fault-injection test jar ({@code var/jars/tpc-fault-injection.jar}, built
 * by {@code python -m sinks.build --faults} from {@code sinks/java/src/test/java/dev/tpc/sink/faults};
 * see sinks/README.md), which fault tests ship beside the sink's jar. Writers and committers
 * {@link #load()} once, when they are created; with no hooks they keep a null and pay one null
 * check at each point.
 *
 * <p>Fault settings ({@code TPC_SINK_FAULT_*}, JVM system properties or environment) without
 * an implementation on the class path are refused: a fault test that injects nothing would
 * pass without proving anything.
 */
public interface SinkHooks {
    /** The prefix of the settings that ask for injected faults. */
    String FAULT_SETTINGS = "TPC_SINK_FAULT_";

    /** Where a hook is called. */
    enum Point {
        /** A writer's transaction, once its first batch of rows reached the database. */
        WRITE,
        /** A writer's checkpoint, once its rows are durable and before it can complete. */
        PRECOMMIT,
        /** A committer's commit, just before it runs (its checkpoint has completed). */
        COMMIT
    }

    /** What {@link ServiceLoader} finds in a hooks jar. */
    interface Factory {
        /** The hooks this JVM's settings ask for, or null when they ask for none. */
        SinkHooks create();
    }

    /** Whether {@link #at} can act at {@code point} (lets a caller skip the work of a call). */
    boolean watches(Point point);

    /**
     * Called at {@code point} of sink {@code sinkId}'s {@code subtask}, for transaction {@code
     * gid} (null for an at-least-once writer) holding {@code rows} rows.
     */
    void at(Point point, String sinkId, int subtask, String gid, long rows)
            throws IOException, InterruptedException;

    /** The hooks found by the class loader of this interface, or null for none. */
    static SinkHooks load() {
        return load(SinkHooks.class.getClassLoader(), System.getenv());
    }

    /**
     * The hooks the first {@link Factory} found by {@code loader} creates, or null. Throws a
     * {@link SinkConfigurationException} when fault settings are present in the system
     * properties or {@code environment} but no factory is.
     */
    static SinkHooks load(ClassLoader loader, Map<String, String> environment) {
        List<Factory> factories = new ArrayList<>();
        try {
            ServiceLoader.load(Factory.class, loader).forEach(factories::add);
        } catch (ServiceConfigurationError e) {
            throw new SinkConfigurationException(
                    "the sink's hooks jar is not usable here: " + e.getMessage()
                            + " (ship it with the job, beside the sink's jar, so one class loader"
                            + " loads both)");
        }
        for (Factory factory : factories) {
            SinkHooks hooks = factory.create();
            if (hooks != null) {
                return hooks;
            }
        }
        if (factories.isEmpty()) {
            TreeSet<String> asked = new TreeSet<>();
            for (String name : System.getProperties().stringPropertyNames()) {
                if (name.startsWith(FAULT_SETTINGS)) {
                    asked.add(name);
                }
            }
            for (String name : environment.keySet()) {
                if (name.startsWith(FAULT_SETTINGS)) {
                    asked.add(name);
                }
            }
            if (!asked.isEmpty()) {
                throw new SinkConfigurationException(String.join(", ", asked)
                        + " ask for injected sink faults, but the job's class path has no fault"
                        + " injection: the sink's jar holds none. Ship the fault-injection test"
                        + " jar (var/jars/tpc-fault-injection.jar, `python -m sinks.build"
                        + " --faults`) with the job: name it in TPC_SINK_HOOK_JARS, which"
                        + " sinks.add_sink_jars reads (tests.sinks.support.sink_fault does), or"
                        + " unset those settings.");
            }
        }
        return null;
    }
}
