package dev.tpc.sink;

/** How rows reach their target tables. See sinks/README.md for which mode suits which workload. */
public enum CommitMode {
    /** Writer transaction is PREPAREd at pre-commit and COMMIT PREPARED by the committer. */
    PREPARED,
    /** Pre-commit stages rows in a table; the committer applies and deletes them in one transaction. */
    STAGED,
    /** Autocommitted batches flushed at each checkpoint: duplicates after a failure. A control/baseline. */
    AT_LEAST_ONCE;

    public static CommitMode parse(String name) {
        try {
            return CommitMode.valueOf(name.trim().toUpperCase(java.util.Locale.ROOT));
        } catch (RuntimeException e) { // also null
            throw new SinkConfigurationException("unknown commit mode '" + name
                    + "': use 'prepared', 'staged' or 'at_least_once'");
        }
    }
}
