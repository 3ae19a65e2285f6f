"""The plumbing every exactly-once job shares, so that a job's own file is its wiring: its rules,
tables, graph and flags.

    config         JobConfig, the standard flags and their parsing
    environment    the Flink settings and environment a run gets from its config
    line_sources   files and Kafka records as LINE_TYPE rows, replayable and checkpointed
    sinks          a job's tables and its sources' positions through one sink, a transaction a
                   checkpoint
    committed      what a run reports as committed, read from the database
    refusals       a refused start (upgrade, fresh start, input) in words, with what to do
    running        pre-flight checks, the database's start positions, run, watch, stop, exit
    declared       what a job declares for the checks of a run (`JOB`: tables, reference, sink)
    audit          audit and reconcile any declared job (`jobs.audit --job`, `jobs.reconcile`)

The kit knows nothing of any one job (tests/jobs/test_kit.py keeps it so): a job passes in its
operator uids, sink ids, tables and schema.
"""
