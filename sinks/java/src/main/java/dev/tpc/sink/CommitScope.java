package dev.tpc.sink;

/**
 * What one committing database transaction covers. See sinks/README.md ("Commit scope") for which
 * scope suits which workload.
 */
public enum CommitScope {
    /** Each writer subtask's checkpoint is committed in a transaction of its own (the default). */
    SUBTASK,
    /**
     * Everything every subtask wrote for a checkpoint becomes visible in one transaction: the
     * writers stage in parallel, one committer applies the whole checkpoint (staged mode only).
     */
    CHECKPOINT;

    public static CommitScope parse(String name) {
        try {
            return CommitScope.valueOf(name.trim().toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException | NullPointerException e) {
            throw new SinkConfigurationException(
                    "unknown commit scope '" + name + "': use subtask or checkpoint");
        }
    }
}
