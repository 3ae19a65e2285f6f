package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class HousekeepingTest {
    @Test
    void aShortRetentionIsTrimmedEveryRetentionNotEveryTenMinutes() {
        // A commit log kept for 2 minutes then holds 2 to 4 minutes of rows, not up to 12.
        assertEquals(120_000, Housekeeping.trimIntervalMillis(120));
    }

    @Test
    void trimsAreAtLeastAMinuteApartAndAtMostTenMinutes() {
        assertEquals(60_000, Housekeeping.trimIntervalMillis(1));
        assertEquals(10 * 60_000, Housekeeping.trimIntervalMillis(7 * 24 * 3600));
    }
}
