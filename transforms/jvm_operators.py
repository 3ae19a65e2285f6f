"""Generic operators over named rows that run on the JVM, for PyFlink jobs.

A Python function pays for every record it touches (serialization across the Python boundary)
and for every state access (a synchronous round trip to the JVM). These operators keep keyed
state, sums and projections on the JVM, so that a job's Python code is one stateless step. They
know nothing of payments: the business rules compute the fields (a fingerprint, an amount), and
these only compare, add and move them.

* `deduplicate(rows, key_field, fingerprint_field, ttl_ms)` -> `Deduplicated`: per key the
  first row passes; later rows with the same fingerprint are duplicates, others conflicts.
* `sum_per_checkpoint(rows, group_fields, sum_field, sum_as, count_as)`: one row per group and
  checkpoint, with the exact sum (a decimal) and the count.
* `project(rows, {target: source})`: select, reorder and rename fields.
* `batch(rows, max_rows)` / `unbatch(batches, field)`: many rows in one columnar record (an
  array per field), and back, so that a Python function crosses the boundary once per batch
  instead of once per row, and decodes a few arrays instead of an object per row.

Input streams must carry named rows (``output_type=Types.ROW_NAMED(...)``). The Java side is
`dev.tpc.stream.RowOperators`, built into the sink's jar (add it with `sinks.add_sink_jars`).
"""

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional

from pyflink.common import Types
from pyflink.datastream import DataStream
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import to_jarray

__all__ = [
    "Deduplicated",
    "deduplicate",
    "sum_per_checkpoint",
    "project",
    "batch",
    "unbatch",
    "count_by",
    "columns_type",
]


class Deduplicated(NamedTuple):
    first_seen: DataStream  # the keyed operator itself: give it a uid
    duplicates: DataStream
    conflicts: DataStream


def _row_operators() -> Any:
    return get_gateway().jvm.dev.tpc.stream.RowOperators


def _strings(values: Sequence[Optional[str]]) -> Any:
    gateway = get_gateway()
    return to_jarray(gateway.jvm.String, list(values))


def deduplicate(
    rows: DataStream, key_field: str, fingerprint_field: str, ttl_ms: Optional[int] = None
) -> Deduplicated:
    """Keyed by ``key_field``: the first row per key goes to ``first_seen``; a later row with
    the same ``fingerprint_field`` to ``duplicates``, with another to ``conflicts``. Only the
    first fingerprint is kept (keyed state).

    With ``ttl_ms`` (> 0) that state has a time to live (Flink's state TTL, in processing time:
    the TaskManager's clock, which runs on while the job is stopped): it is written only when
    a key is first seen, so the time counts from that row, and duplicates or conflicts do not
    extend it. Once it has passed, the key reads as never seen: its next row is a first row
    again (and starts a new time to live). None or 0: kept for ever."""
    result = _row_operators().deduplicate(
        rows._j_data_stream, key_field, fingerprint_field, ttl_ms or 0
    )
    return Deduplicated(
        DataStream(result.firstSeen()),
        DataStream(result.duplicates()),
        DataStream(result.conflicts()),
    )


def sum_per_checkpoint(
    rows: DataStream, group_fields: Sequence[str], sum_field: str, sum_as: str, count_as: str
) -> DataStream:
    """Rows of (``group_fields``..., ``sum_as``, ``count_as``): per group, the exact sum of
    ``sum_field`` (a decimal, never overflowing) and the number of rows since the last
    checkpoint, emitted just before each checkpoint barrier and at end of input. One subtask
    owns each group. Nothing is held across checkpoints, so nothing is lost or doubled by a
    restore: the source replays exactly what was summed since."""
    return DataStream(
        _row_operators().sumPerCheckpoint(
            rows._j_data_stream, _strings(group_fields), sum_field, sum_as, count_as
        )
    )


def project(
    rows: DataStream, fields: Mapping[str, Optional[str]], target_type: Any = None
) -> DataStream:
    """Named rows with ``target`` = the input's ``source`` field, for each item of ``fields``
    (in order). A ``None`` source makes the target NULL, typed as its field in ``target_type``
    (a ``Types.ROW_NAMED``)."""
    j_target_type = None if target_type is None else target_type.get_java_type_info()
    return DataStream(
        _row_operators().project(
            rows._j_data_stream,
            _strings(list(fields)),
            _strings(list(fields.values())),
            j_target_type,
        )
    )


def _basic_array_types() -> list[Any]:
    # The element types of Flink's BasicArrayTypeInfo (String[], Long[], ...); a column of any
    # other type is an object array, as RowOperators.columnType decides on the Java side.
    return [
        Types.STRING(),
        Types.BOOLEAN(),
        Types.BYTE(),
        Types.SHORT(),
        Types.INT(),
        Types.LONG(),
        Types.FLOAT(),
        Types.DOUBLE(),
        Types.CHAR(),
    ]


def columns_type(row_type: Any) -> Any:
    """The type of a columnar batch of ``row_type`` rows (see `batch`): the same field names,
    each an array, ``Types.BASIC_ARRAY`` for strings and boxed numbers, else
    ``Types.OBJECT_ARRAY`` (e.g. of bytes)."""
    basic = _basic_array_types()
    return Types.ROW_NAMED(
        row_type.get_field_names(),
        [
            Types.BASIC_ARRAY(t) if t in basic else Types.OBJECT_ARRAY(t)
            for t in row_type.get_field_types()
        ],
    )


def batch(rows: DataStream, max_rows: int) -> DataStream:
    """Columnar batches (see `columns_type`) of up to ``max_rows`` consecutive input rows, in
    order. Partial batches go out before every checkpoint barrier and at end of input, so
    nothing is held across a checkpoint (no state, no added commit latency)."""
    return DataStream(_row_operators().batch(rows._j_data_stream, max_rows))


def count_by(rows: DataStream, metric: str, field: str) -> DataStream:
    """The rows unchanged, counted in the Flink metric ``metric`` per value of their field
    ``field`` (a label of that name in Prometheus; 64 values at most, later ones as "other")."""
    return DataStream(_row_operators().countBy(rows._j_data_stream, metric, field))


def unbatch(batches: DataStream, field: Optional[str] = None) -> DataStream:
    """The named rows of columnar batches, one by one: each record (or its field ``field``) is
    a row of equally long arrays, one per field of the rows (see `columns_type`)."""
    return DataStream(_row_operators().unbatch(batches._j_data_stream, field))
