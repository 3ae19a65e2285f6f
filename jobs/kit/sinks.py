"""A job's tables through one `TwoPhaseCommitSink` in checkpoint scope: every table and the
sources' positions in one transaction a checkpoint, so that the same command run twice, or a
restart without its checkpoint, applies nothing twice (the positions say what is applied; the
job's statements write each line only if absent).

    sink = tables_sink(config, sink_id, [("moves", MOVE_TYPE, [sql]), ...], batch_rows=5_000)
    attach_tables(sink, {"moves": moves, ...}, lines, start, uid="orders-sink")
"""

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from jobs.kit.config import JobConfig
from sinks.positions import (
    StartPositions,
    position_row_type,
    positions_sql,
    track_positions,
)

__all__ = ["POSITIONS_UID", "attach_tables", "connected_builder", "tables_sink"]

#: The uid of the operator that counts how far each source is applied (keyed state).
POSITIONS_UID = "source-positions"


def connected_builder(config: JobConfig) -> Any:
    """A `TwoPhaseCommitSink` builder for the job's database as `config` says: its URL, user
    and password source (the password itself is read by the sink, never held here), its
    commit-log retention and its policy for rows the database refuses. Every sink of a job
    starts here, so that a new connection setting is added once."""
    from sinks import TwoPhaseCommitSink

    builder = (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(config.db_url)
        .set_user(config.db_user)
        .set_password_source(config.password_env, config.password_file)
        .set_on_row_error(config.on_row_error)
    )
    retention = config.commit_log_retention_hours()
    if retention is not None:
        builder.set_commit_log_retention_hours(retention)
    return builder


def tables_sink(
    config: JobConfig,
    sink_id: str,
    tables: Sequence[tuple[str, Any, Sequence[str]]],
    batch_rows: int,
    mode: str = "staged",
) -> Any:
    """One sink for `tables` ((name, Types.ROW_NAMED, statements), applied in that order) and a
    ``positions`` table (`sinks.positions`), in checkpoint scope, declared idempotent: every
    statement must write a line only if no table holds it yet. `mode`: "staged", or
    "at_least_once" for a control."""
    builder = connected_builder(config)
    for name, row_type, statements in tables:
        builder.add_table(name, row_type, list(statements))
    if mode != "at_least_once":
        # An at-least-once control commits each subtask's batches as they come: checkpoint
        # scope (one transaction a checkpoint) is what it does without.
        builder.set_commit_scope("checkpoint")
    return (
        builder.add_table("positions", position_row_type(), [positions_sql(sink_id)])
        .set_idempotent_statements()
        .set_sink_id(sink_id)
        .set_mode(mode)
        .set_batch_size(config.sink_batch_size or batch_rows)
        .build()
    )


def attach_tables(
    sink: Any,
    streams: Mapping[str, Any],
    lines: Any,
    start: Optional[StartPositions],
    uid: str,
) -> Any:
    """`streams` (one a table of `tables_sink`) and the positions of `lines` (the job's source
    lines, after `sinks.positions.skip_applied`) into `sink`, named and stored under `uid`."""
    positions = track_positions(lines, start).name(POSITIONS_UID).uid(POSITIONS_UID)
    return sink.attach({**streams, "positions": positions}).name(uid).uid(uid)
