"""The control's sink for any job built from the kit: its line tables written by plain
INSERTs, at least once, with no source positions. A kit job's own sink stays idempotent even
in at-least-once mode (its statements write a line only if no table holds it yet), so its
controls replace the sink with this one to show the replays the kit absorbs. Used by the fault
drills (`tests.jobs.drills`) and by the fault campaign's controls (`tests.harness.campaign_job
--at-least-once`), which runs it in a cluster's Python workers: a harness module."""

from collections.abc import Sequence

from jobs.kit.config import JobConfig
from jobs.kit.sinks import connected_builder
from transforms.tables import Table

__all__ = ["NaiveTables"]


class NaiveTables:
    """The control's sink: each of `tables` (the job's line tables, named as its streams are)
    written by a plain INSERT, at least once, with no positions: what a job without the kit's
    statements does. A replayed line is written again, or, where a key refuses it, recorded as
    a dead letter."""

    def __init__(self, config: JobConfig, tables: Sequence[Table], sink_id: str):
        from transforms.flink_adapters import row_type

        builder = connected_builder(config)  # the job's policy: dead letters by default
        for table in tables:
            columns = table.field_names
            builder.add_table(
                table.name,
                row_type(table),
                [
                    f"INSERT INTO {table.name} ({', '.join(columns)}) "
                    f"VALUES ({', '.join(':' + c for c in columns)})"
                ],
            )
        self.tables = [table.name for table in tables]
        self.sink = builder.set_sink_id(sink_id).set_mode("at_least_once").build()

    def attach(self, streams):
        return self.sink.attach({name: streams[name] for name in self.tables})
