package dev.tpc.sink;

import java.util.Locale;

/**
 * What a sink does with a row the database refuses for the row's own sake (a constraint, a value
 * out of range, a string PostgreSQL cannot store: see {@link SqlStates#isRowError}). Errors of
 * the database or the connection are never row errors: they are retried or fail the job.
 */
public enum RowErrorPolicy {
    /**
     * Stop the job, naming the sink, the row's fields and the SQLSTATE, without restarts (the row
     * would be refused again on every attempt). The library default: nothing is skipped unless
     * someone chose so. The error comes before the row's transaction is pre-committed, in both
     * commit modes: a committable that reaches the committer is always committable.
     */
    FAIL,
    /**
     * Isolate the refused row (its batch is retried row by row under savepoints) and record it,
     * with the SQLSTATE and message, in the dead-letter table, inside the same transaction as the
     * rows around it: it is recorded exactly once, and everything else goes through.
     */
    DEAD_LETTER;

    static RowErrorPolicy parse(String text) {
        try {
            return valueOf(text.trim().toUpperCase(Locale.ROOT));
        } catch (RuntimeException e) { // also null
            throw new SinkConfigurationException(
                    "unknown row error policy '" + text + "': use 'fail' or 'dead_letter'");
        }
    }
}
