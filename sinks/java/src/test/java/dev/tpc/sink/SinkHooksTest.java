package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tpc.sink.faults.FaultInjection;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.net.URL;
import java.net.URLClassLoader;
import java.util.Map;

/**
 * The production jar's hook points: none without a hooks jar, a clear refusal when fault
 * settings are present without one, the fault injection when its jar (here: the test class
 * path, which holds its META-INF/services entry) is there.
 */
class SinkHooksTest {
    /** Sees no META-INF/services entry at all, as the production jar's class loader. */
    private static final ClassLoader WITHOUT_HOOKS = new URLClassLoader(new URL[0], null);

    private static final ClassLoader WITH_FAULT_JAR = SinkHooksTest.class.getClassLoader();

    @AfterEach
    void clearSettings() {
        System.clearProperty("TPC_SINK_FAULT_DIR");
    }

    @Test
    void noHooksAndNoFaultSettingsLoadNothing() {
        assertNull(SinkHooks.load(WITHOUT_HOOKS, Map.of("PATH", "/bin")));
    }

    @Test
    void faultSettingsWithoutTheFaultJarAreRefusedWithTheFix() {
        SinkConfigurationException refused = assertThrows(
                SinkConfigurationException.class,
                () -> SinkHooks.load(
                        WITHOUT_HOOKS,
                        Map.of("TPC_SINK_FAULT_DIR", "/tmp/f", "TPC_SINK_FAULT_NTH", "3")));
        String message = refused.getMessage();
        assertTrue(message.startsWith("TPC_SINK_FAULT_DIR, TPC_SINK_FAULT_NTH ask for"), message);
        assertTrue(message.contains("var/jars/tpc-fault-injection.jar"), message);
        assertTrue(message.contains("TPC_SINK_HOOK_JARS"), message);
    }

    @Test
    void aFaultSettingAsASystemPropertyIsRefusedToo() {
        System.setProperty("TPC_SINK_FAULT_DIR", "/tmp/f");
        assertThrows(
                SinkConfigurationException.class, () -> SinkHooks.load(WITHOUT_HOOKS, Map.of()));
    }

    @Test
    void theFaultJarArmedGivesTheFaultInjectionAndUnarmedNothing() {
        // The control of the refusal: with the fault jar, fault settings arm the injection.
        assertNull(SinkHooks.load(WITH_FAULT_JAR, Map.of()));
        System.setProperty("TPC_SINK_FAULT_DIR", "/tmp/f");
        SinkHooks hooks = SinkHooks.load(WITH_FAULT_JAR, Map.of());
        assertEquals(FaultInjection.class, hooks.getClass());
        assertTrue(hooks.watches(SinkHooks.Point.PRECOMMIT)); // the default phase
    }
}
