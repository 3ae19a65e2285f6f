package dev.tpc.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.sql.BatchUpdateException;
import java.sql.SQLException;

class SqlStatesTest {
    @ParameterizedTest
    @ValueSource(
            strings = {
                "08000", "08001", "08006", "53000", "53100", "53200", "53300", "57P01", "57P02",
                "57P03", "57P05", "57014", "55P03", "55000", "25P03", "40001", "40P01", "40003"
            })
    void transient_(String state) {
        assertTrue(SqlStates.isTransientState(state), state);
        assertTrue(SqlStates.describe(state).endsWith(": transient"), SqlStates.describe(state));
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "57P04", "23505", "42P01", "42601", "28P01", "3D000", "22001", "57000", "25001",
                "40002", "P0001", "0"
            })
    void permanent(String state) {
        assertFalse(SqlStates.isTransientState(state), state);
        assertTrue(SqlStates.describe(state).endsWith(": permanent"), SqlStates.describe(state));
    }

    @Test
    void noStateMeansNoAnswerFromTheServer() {
        assertTrue(SqlStates.isTransientState(null));
        assertTrue(SqlStates.isTransient(new SQLException("connection reset")));
        assertTrue(SqlStates.describe(null).contains("transient"));
    }

    @Test
    void theDroppedDatabaseIsPermanentAlthoughItsClassIsNot() {
        assertEquals("57P04 database dropped: permanent", SqlStates.describe("57P04"));
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "22001", "22P02", "22021", "23502", "23503", "23505", "23514", "44000", "54000",
                "P0001"
            })
    void rowErrors(String state) {
        assertTrue(SqlStates.isRowErrorState(state), state);
    }

    @ParameterizedTest
    @ValueSource(strings = {"42P01", "42703", "08006", "57P01", "54001", "P0002", "40001"})
    void notRowErrors(String state) {
        assertFalse(SqlStates.isRowErrorState(state), state);
    }

    @Test
    void aMissingStateIsNoRowError() {
        assertFalse(SqlStates.isRowErrorState(null));
    }

    @Test
    void theStateIsFoundInNextExceptionsAndCauses() {
        BatchUpdateException batch =
                new BatchUpdateException("batch failed", null, 0, new int[0], null);
        batch.setNextException(new SQLException("duplicate key", "23505"));
        assertEquals("23505", SqlStates.stateOf(batch));
        assertTrue(SqlStates.isRowError(batch));

        IOException wrapped = new IOException(new RuntimeException(new SQLException("x", "57P01")));
        assertEquals("57P01", SqlStates.stateOf(wrapped));

        assertNull(SqlStates.stateOf(new IOException("no SQL here")));
    }

    @Test
    void aCauseCycleEnds() {
        SQLException a = new SQLException("a");
        SQLException b = new SQLException("b");
        a.initCause(b);
        b.initCause(a);
        assertNull(SqlStates.stateOf(a));
    }
}
