package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TransactionIdTest {
    @Test
    void createdIdsParseBack() {
        TransactionId id = TransactionId.create("ledger-2_b", 3, 42, "0123abcd.2");
        assertEquals("tpc:ledger-2_b:3:42:0123abcd.2", id.gid);
        TransactionId parsed = TransactionId.parse(id.gid).orElseThrow();
        assertEquals(id.gid, parsed.gid);
        assertEquals("ledger-2_b", parsed.sinkId);
        assertEquals(3, parsed.subtask);
        assertEquals(42, parsed.counter);
    }

    @Test
    void largeCountersParse() {
        TransactionId parsed =
                TransactionId.parse("tpc:s:0:" + Long.MAX_VALUE + ":e").orElseThrow();
        assertEquals(Long.MAX_VALUE, parsed.counter);
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "",
                "xa:s:0:1:e",
                "TPC:s:0:1:e",
                "tpc:s:0:1",
                "tpc:s:0:1:e:extra",
                "tpc:s:x:1:e",
                "tpc:s:0:y:e",
                "tpc:s:0:99999999999999999999:e",
                "tpc:s::1:e"
            })
    void foreignOrMalformedIdsAreNotOurs(String gid) {
        assertTrue(TransactionId.parse(gid).isEmpty(), gid);
    }

    @Test
    void nullIsNotOurs() {
        assertTrue(TransactionId.parse(null).isEmpty());
    }

    @Test
    void theSinkPrefixDoesNotMatchALongerSinkId() {
        String gid = TransactionId.create("ledger2", 0, 1, "e").gid;
        assertFalse(gid.startsWith(TransactionId.sinkPrefix("ledger")));
        assertTrue(gid.startsWith(TransactionId.sinkPrefix("ledger2")));
    }

    @Test
    void orphansAreThoseAfterTheRestoredCheckpoint() {
        TransactionId at5 = TransactionId.create("s", 1, 5, "e");
        assertFalse(at5.isOrphanFor(1, 2, 5L), "may still be committed by a restored committable");
        assertTrue(at5.isOrphanFor(1, 2, 4L), "pre-committed for a checkpoint never completed");
        assertTrue(at5.isOrphanFor(1, 2, null), "a fresh start discards everything of its own");
        assertFalse(at5.isOrphanFor(0, 2, null), "another subtask's");
    }

    @Test
    void afterAScaleDownTheSubtaskModuloTheParallelismTakesOver() {
        TransactionId ofSubtask3 = TransactionId.create("s", 3, 9, "e");
        assertTrue(ofSubtask3.isOrphanFor(1, 2, 8L));
        assertFalse(ofSubtask3.isOrphanFor(0, 2, 8L));
        assertTrue(ofSubtask3.isOrphanFor(0, 1, 8L));
        assertTrue(ofSubtask3.isOrphanFor(3, 4, 8L));
    }

    @Test
    void quotingAcceptsOnlyTheIdCharset() {
        assertEquals("'tpc:a-b_c:0:1:job.0'", TransactionId.quoted("tpc:a-b_c:0:1:job.0"));
        for (String unsafe :
                new String[] {"tpc:a'b:0:1:e", "tpc:a b:0:1:e", "", "tpc:\u00e9:0:1:e"}) {
            assertThrows(
                    IllegalArgumentException.class, () -> TransactionId.quoted(unsafe), unsafe);
        }
    }
}
