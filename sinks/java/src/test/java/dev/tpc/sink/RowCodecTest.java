package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.util.TimeZone;

class RowCodecTest {
    private final TimeZone defaultZone = TimeZone.getDefault();

    @AfterEach
    void restoreTheDefaultZone() {
        TimeZone.setDefault(defaultZone);
    }

    /** One value of every type the codec stores, edge values where a type has them. */
    private static Object[] everyType() {
        return new Object[] {
            null,
            "",
            "NUL \u0000, astral \ud83d\udcb8, noncharacter \uffff, \u00ff",
            Long.MIN_VALUE,
            Integer.MAX_VALUE,
            (short) -1,
            (byte) 0x7f,
            -0.0,
            Double.NaN,
            Float.MIN_VALUE,
            true,
            false,
            new BigDecimal("-12345678901234567890.000100"),
            new BigDecimal("1E+3"),
            new BigInteger("-123456789012345678901234567890"),
            java.sql.Timestamp.valueOf("2026-11-27 23:59:59.123456789"),
            java.sql.Date.valueOf("1999-12-31"),
            java.sql.Time.valueOf("00:00:01"),
            LocalDateTime.of(2026, 3, 29, 2, 30, 0, 1),
            Instant.parse("1969-12-31T23:59:59.999999999Z"),
            OffsetDateTime.parse("2026-11-27T10:15:30.5+05:30"),
            LocalDate.of(-44, 3, 15),
            LocalTime.of(23, 59, 59, 999_999_999),
            new byte[] {0, -1, 42}
        };
    }

    private static void assertValuesEqual(Object[] expected, Object[] actual) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] instanceof byte[]) {
                assertArrayEquals((byte[]) expected[i], (byte[]) actual[i], "field " + i);
            } else {
                assertEquals(expected[i], actual[i], "field " + i);
                if (expected[i] != null) {
                    assertEquals(expected[i].getClass(), actual[i].getClass(), "field " + i);
                }
            }
        }
    }

    @Test
    void everyTypeRoundTrips() throws IOException {
        Object[] row = everyType();
        assertValuesEqual(row, RowCodec.decode(RowCodec.encode(row)));
    }

    /**
     * Strings are stored as UTF-8, which has no lone surrogates: each becomes '?', just as when
     * the driver sends the string to PostgreSQL directly (which could not store it either), so
     * staged and prepared mode write the same.
     */
    @Test
    void loneSurrogatesBecomeWhatTheDriverWouldSend() throws IOException {
        String lone = "a\ud800b\udc00";
        Object[] decoded = RowCodec.decode(RowCodec.encode(new Object[] {lone}));
        assertEquals("a?b?", decoded[0]);
        assertEquals(
                new String(
                        lone.getBytes(java.nio.charset.StandardCharsets.UTF_8),
                        java.nio.charset.StandardCharsets.UTF_8),
                decoded[0]);
    }

    @Test
    void decimalsKeepTheirScale() throws IOException {
        Object[] decoded = RowCodec.decode(RowCodec.encode(new Object[] {new BigDecimal("1.10")}));
        assertEquals(2, ((BigDecimal) decoded[0]).scale());
    }

    @Test
    void anEmptyRowRoundTrips() throws IOException {
        assertEquals(0, RowCodec.decode(RowCodec.encode(new Object[0])).length);
    }

    /**
     * Staged rows are written by a writer and read by a committer that may run in another JVM
     * with another default time zone (a restore on another TaskManager). Zone-free values keep
     * their wall-clock reading; instants and offsets keep what they are.
     */
    @Test
    void valuesSurviveADefaultTimeZoneChange() throws IOException {
        TimeZone.setDefault(TimeZone.getTimeZone("Asia/Kathmandu"));
        java.sql.Timestamp timestamp = java.sql.Timestamp.valueOf("2026-11-27 08:00:00.5");
        java.sql.Date date = java.sql.Date.valueOf("2026-11-27");
        java.sql.Time time = java.sql.Time.valueOf("08:00:00");
        Instant instant = Instant.parse("2026-11-27T02:15:00Z");
        OffsetDateTime offset = OffsetDateTime.parse("2026-11-27T08:00:00+05:45");
        byte[] payload = RowCodec.encode(new Object[] {timestamp, date, time, instant, offset});
        LocalDateTime wallClock = timestamp.toLocalDateTime();
        LocalDate day = date.toLocalDate();
        LocalTime timeOfDay = time.toLocalTime();

        TimeZone.setDefault(TimeZone.getTimeZone("America/St_Johns"));
        Object[] decoded = RowCodec.decode(payload);
        assertEquals(wallClock, ((java.sql.Timestamp) decoded[0]).toLocalDateTime());
        assertEquals(day, ((java.sql.Date) decoded[1]).toLocalDate());
        assertEquals(timeOfDay, ((java.sql.Time) decoded[2]).toLocalTime());
        assertEquals(instant, decoded[3]);
        assertEquals(offset, decoded[4]);
        assertEquals(offset.getOffset(), ((OffsetDateTime) decoded[4]).getOffset());
    }

    /** The encoding holds no zone: the same row gives the same bytes in any default zone. */
    @Test
    void theBytesDoNotDependOnTheDefaultTimeZone() throws IOException {
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        Object[] row = {
            LocalDateTime.of(2026, 11, 27, 8, 0),
            Instant.EPOCH,
            OffsetDateTime.parse("2026-11-27T08:00:00-03:30")
        };
        byte[] utc = RowCodec.encode(row);
        TimeZone.setDefault(TimeZone.getTimeZone("Pacific/Chatham"));
        assertArrayEquals(utc, RowCodec.encode(row));
    }

    /** Rows staged by this version must stay readable by later versions of the sink. */
    @Test
    void readsRowsFromTheGoldenFile() throws IOException {
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        Object[] row = everyType();
        byte[] golden = Golden.read("row-codec-every-type.bin", RowCodec.encode(row));
        assertValuesEqual(row, RowCodec.decode(golden));
        assertArrayEquals(golden, RowCodec.encode(row), "the staged-row encoding changed");
    }

    @Test
    void anUnsupportedTypeSaysWhichOnesAre() {
        IOException e = assertThrows(
                IOException.class, () -> RowCodec.encode(new Object[] {new StringBuilder("x")}));
        assertTrue(
                e.getMessage().contains("java.lang.StringBuilder")
                        && e.getMessage().contains("date/time or bytes"),
                e.getMessage());
    }

    @Test
    void anUnknownTagIsCorruption() {
        IOException e =
                assertThrows(IOException.class, () -> RowCodec.decode(new byte[] {0, 1, 99}));
        assertTrue(e.getMessage().contains("unknown value tag 99"), e.getMessage());
    }
}
