"""The connectors package (see sinks/README.md): the exactly-once PostgreSQL sink for PyFlink,
the source formats its jar carries (`sinks.sources`) and the database connection flags
(`sinks.database`).

Names are resolved lazily: importing this package starts no JVM and imports no pyflink, so
`python -m sinks.build` works on its own.
"""

_EXPORTS = {
    "TwoPhaseCommitSink": "sinks.two_phase_commit",
    "TwoPhaseCommitSinkBuilder": "sinks.two_phase_commit",
    "CommitMode": "sinks.two_phase_commit",
    "CommitScope": "sinks.two_phase_commit",
    "SinkConfigurationError": "sinks.two_phase_commit",
    "add_sink_jars": "sinks.two_phase_commit",
    "add_kafka_jars": "sinks.two_phase_commit",
    "NumberedLinesFormat": "sinks.sources",
    "set_kafka_line_records": "sinks.sources",
    "kafka_starting_offsets": "sinks.sources",
    "kafka_connector_jars": "localenv.jars",
    "sink_jar": "localenv.jars",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sinks' has no attribute {name!r}")
