"""Exactly-once PostgreSQL sink for PyFlink (see sinks/README.md).

Import `sinks.two_phase_commit` names from here; importing this package does not start a JVM.
"""
from sinks.build import driver_jar, sink_jar

__all__ = ["TwoPhaseCommitSink", "TwoPhaseCommitSinkBuilder", "CommitMode",
           "SinkConfigurationError", "add_sink_jars", "sink_jar", "driver_jar"]


def __getattr__(name):
    # pyflink is imported lazily so that `python -m sinks.build` works before a JVM is needed.
    if name in __all__:
        from sinks import two_phase_commit
        return getattr(two_phase_commit, name)
    raise AttributeError(name)
