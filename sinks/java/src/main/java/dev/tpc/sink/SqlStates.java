package dev.tpc.sink;

import java.sql.SQLException;
import java.util.Map;

/**
 * Which PostgreSQL errors are worth retrying, in one place. A transient error is one that a
 * later attempt of the very same idempotent work can get past without anyone acting: the server
 * is restarting or unreachable, the session was killed, a wait ran out, a resource was
 * exhausted for a while. Everything else (a constraint violation, a missing table, a failed
 * login, a dropped database) fails the same way every time, so retrying it only delays the
 * failure.
 *
 * <p>The committer retries transient errors with back-off (see {@link PgCommitter}); writers
 * fail their task on any error and the job's restart strategy retries them.
 */
public final class SqlStates {
    private SqlStates() {}

    /** Transient SQLSTATEs (or classes, two characters) and why, as shown in logs. */
    private static final Map<String, String> TRANSIENT = Map.ofEntries(
            // Class 08: the connection failed or could not be made (server down, restarting,
            // unreachable; 08006 also when a socket timeout cuts a hung connection).
            Map.entry("08", "connection exception"),
            // Class 53: out of connections, memory, disk or prepared-transaction slots, for now.
            Map.entry("53", "insufficient resources"),
            Map.entry("57P01", "server shut down or session terminated (admin_shutdown)"),
            Map.entry("57P02", "server crashed (crash_shutdown)"),
            Map.entry("57P03", "server starting up or in recovery (cannot_connect_now)"),
            Map.entry("57P05", "session idle too long (idle_session_timeout)"),
            Map.entry("57014", "statement cancelled (statement_timeout or pg_cancel_backend)"),
            Map.entry("55P03", "lock not available (lock_timeout)"),
            // The only 55000 a commit meets: another session (often the previous, broken
            // connection's backend, still finishing) holds the prepared transaction.
            Map.entry("55000", "prepared transaction is busy (object_not_in_prerequisite_state)"),
            Map.entry("25P03", "transaction idle too long (idle_in_transaction_session_timeout)"),
            Map.entry("40001", "serialization failure"),
            Map.entry("40P01", "deadlock detected"),
            // The commit's outcome is unknown; commits are idempotent (the commit log tells).
            Map.entry("40003", "statement completion unknown"));

    /** Never transient although their class looks so: the database is gone. */
    private static final Map<String, String> PERMANENT = Map.of("57P04", "database dropped");

    /**
     * Whether retrying the same work may succeed. An exception without a SQLSTATE (nor one in
     * its chain) comes from the driver failing to get an answer at all: transient.
     */
    public static boolean isTransient(SQLException e) {
        return isTransientState(stateOf(e));
    }

    public static boolean isTransientState(String state) {
        if (state == null) {
            return true;
        }
        if (PERMANENT.containsKey(state)) {
            return false;
        }
        return TRANSIENT.containsKey(state)
                || (state.length() >= 2 && TRANSIENT.containsKey(state.substring(0, 2)));
    }

    /**
     * Whether the database refused a row for the row's own sake, so that the same statement may
     * well take the other rows of its batch: class 22 (data exception: a value out of range, a
     * string PostgreSQL cannot store such as one with NUL), 23 (integrity constraint: CHECK,
     * NOT NULL, UNIQUE, FOREIGN KEY), 44 (WITH CHECK OPTION), 54000 (a value too large for an
     * index row) and P0001 (an exception raised by the user's own trigger). An error of the
     * statement (42: syntax, unknown column), the connection or the server is not: dead-lettering
     * every row of a misconfigured sink would hide the misconfiguration.
     */
    public static boolean isRowError(SQLException e) {
        return isRowErrorState(stateOf(e));
    }

    public static boolean isRowErrorState(String state) {
        return state != null
                && (state.startsWith("22")
                        || state.startsWith("23")
                        || state.startsWith("44")
                        || state.equals("54000")
                        || state.equals("P0001"));
    }

    /** A short description of the error's class, for log lines. */
    public static String describe(String state) {
        if (state == null) {
            return "no SQLSTATE (no answer from the server): transient";
        }
        String reason = PERMANENT.get(state);
        if (reason != null) {
            return state + " " + reason + ": permanent";
        }
        reason = TRANSIENT.getOrDefault(
                state, state.length() >= 2 ? TRANSIENT.get(state.substring(0, 2)) : null);
        return reason == null ? state + ": permanent" : state + " " + reason + ": transient";
    }

    /** The first SQLSTATE in the exception, its next exceptions (batches) and causes. */
    public static String stateOf(Throwable e) {
        for (int depth = 0; e != null && depth < 10; depth++) {
            if (e instanceof SQLException) {
                SQLException sql = (SQLException) e;
                if (sql.getSQLState() != null) {
                    return sql.getSQLState();
                }
                if (sql.getNextException() != null
                        && sql.getNextException() != sql
                        && sql.getNextException().getSQLState() != null) {
                    return sql.getNextException().getSQLState();
                }
            }
            e = e.getCause() == e ? null : e.getCause();
        }
        return null;
    }
}
