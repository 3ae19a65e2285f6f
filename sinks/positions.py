"""Source positions: how far a job's sink ids have applied each of its sources, committed in the
same transaction as the rows read from them, so that a run that restores no checkpoint goes on
where the database says the earlier runs stopped, and reads nothing twice.

    lines = env.from_source(...)                    # rows of (source, line_number, line)
    start = start_positions(conn, "payments-books", input_files(dir))   # None: nothing yet
    lines = skip_applied(lines, start)              # drop what the database holds
    positions = track_positions(lines, start)       # rows for the table below, per checkpoint
    sink_builder.add_table("positions", POSITION_ROW_TYPE, [positions_sql("payments-books")])

The table `tpc_source_positions` holds per sink id and source (a file's path, or
``kafka:<topic>:<partition>``) the last position read (a line number, an offset), how many
lines and bytes, and a digest of the lines that tells a rewritten file from one that only grew
(`dev.tpc.stream.SourcePositions` computes it on the JVM, `file_position` here the same).
Positions only move forward: the upsert keeps the larger.

A file applied up to line N that no longer has the same first N lines is refused
(`InputChanged`), with its name and what changed; one that grew is read from line N + 1.
"""

import bz2
import gzip
import lzma
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from sinks.control_tables import existing_table, per_sink_id

__all__ = [
    "POSITIONS_TABLE",
    "InputChanged",
    "Position",
    "SourcesApplied",
    "StartPositions",
    "ensure_positions_table",
    "file_position",
    "positions_sql",
    "read_positions",
    "skip_applied",
    "sources_applied",
    "start_positions",
    "track_positions",
]

POSITIONS_TABLE = "tpc_source_positions"
MIX = 0x9E3779B97F4A7C15  # as SourcePositions.MIX
MASK = (1 << 64) - 1
MAX_LINE_BYTES = 8 * 1024 * 1024  # as NumberedLinesFormat.MAX_LINE_BYTES: longer lines are cut


class InputChanged(RuntimeError):
    """A file changed after the job applied part of it; nothing was read or written."""


@dataclass(frozen=True)
class Position:
    source: str
    last_position: int
    lines: int
    bytes: int
    digest: int
    updated_at: Optional[datetime] = None


def _signed(value: int) -> int:
    value &= MASK
    return value - (1 << 64) if value >= 1 << 63 else value


def line_digest(line_number: int, line: bytes) -> int:
    """One line's share of a digest (unsigned), as `SourcePositions.digest`: splitmix64 of the
    line's CRC-32 and number."""
    z = (((zlib.crc32(line) << 32) | (line_number & 0xFFFFFFFF)) + MIX) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _open(path: str) -> Any:
    """The file as the job's file source reads it: decompressed by its extension."""
    lower = path.lower()
    if lower.endswith((".gz", ".gzip")):
        return gzip.open(path, "rb")
    if lower.endswith(".bz2"):
        return bz2.open(path, "rb")
    if lower.endswith(".xz"):
        return lzma.open(path, "rb")
    if lower.endswith(".deflate"):
        return _Inflated(path)
    return open(path, "rb")


class _Inflated:
    """A zlib-wrapped (.deflate) file, read whole (Flink's InflaterInputStream format)."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self._lines = zlib.decompress(f.read()).splitlines(keepends=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._lines)


def file_position(path: str, lines: Optional[int] = None) -> tuple[Position, bool]:
    """The position of `path` after its first `lines` lines (all of them if None), and whether
    the file holds more lines than that."""
    digest = count = size = 0
    more = False
    with _open(path) as f:
        for line in f:
            if lines is not None and count == lines:
                more = True
                break
            line = line[:MAX_LINE_BYTES]
            count += 1
            size += len(line)
            digest += line_digest(count, line)
    return Position(path, count, count, size, _signed(digest)), more


def positions_sql(sink_id: str, control_schema: str = "public") -> str:
    """The sink's statement for a position row: the larger position wins."""
    table = f"{control_schema}.{POSITIONS_TABLE}"
    quoted = sink_id.replace("'", "''")
    return (
        f"INSERT INTO {table} (sink_id, source, last_position, lines, bytes, digest) "
        f"VALUES ('{quoted}', :source, :last_position, :lines, :bytes, :digest) "
        "ON CONFLICT (sink_id, source) DO UPDATE SET last_position = EXCLUDED.last_position, "
        "lines = EXCLUDED.lines, bytes = EXCLUDED.bytes, digest = EXCLUDED.digest, "
        f"updated_at = now() WHERE {POSITIONS_TABLE}.last_position < EXCLUDED.last_position"
    )


def ensure_positions_table(conn, control_schema: str = "public") -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {control_schema}.{POSITIONS_TABLE} ("
        "sink_id text NOT NULL, source text NOT NULL, last_position bigint NOT NULL, "
        "lines bigint NOT NULL, bytes bigint NOT NULL, digest bigint NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sink_id, source))"
    )


def read_positions(conn, sink_id: str, control_schema: str = "public") -> dict[str, Position]:
    """The positions of `sink_id`, by source ({} when the table does not exist yet)."""
    from psycopg import sql

    table = existing_table(conn, control_schema, POSITIONS_TABLE)
    if table is None:
        return {}
    return {
        row[0]: Position(*row)
        for row in conn.execute(
            sql.SQL(
                "SELECT source, last_position, lines, bytes, digest, updated_at FROM {} "
                "WHERE sink_id = %s"
            ).format(table),
            (sink_id,),
        )
    }


@dataclass(frozen=True)
class SourcesApplied:
    """How many sources a sink id holds a position of, and their lines applied."""

    sink_id: str
    sources: int
    lines: int


def sources_applied(
    conn, control_schema: str = "public", sink_id: Optional[str] = None
) -> dict[str, SourcesApplied]:
    """Per sink id (one, or all): its sources with a position and their lines applied."""
    only = None if sink_id is None else [sink_id]
    return {
        sid: SourcesApplied(sid, count, int(lines))
        for sid, count, lines in per_sink_id(
            conn, control_schema, POSITIONS_TABLE, "count(*), coalesce(sum(lines), 0)", only
        )
    }


@dataclass(frozen=True)
class StartPositions:
    """Where a run starts: the positions the database holds for its sink id, checked against
    the files they name. `applied` is what to skip per source; `complete_files` the files read
    to their end (by lines), `lines_applied` their lines."""

    positions: Mapping[str, Position]
    files: int
    complete_files: int
    lines_applied: int

    @property
    def applied(self) -> dict[str, int]:
        return {source: p.last_position for source, p in self.positions.items()}

    def next_offsets(self, topic: str) -> dict[int, int]:
        """Kafka: partition -> the offset after the last one applied, for `topic`."""
        prefix = f"kafka:{topic}:"
        return {
            int(source[len(prefix) :]): position.last_position + 1
            for source, position in self.positions.items()
            if source.startswith(prefix) and source[len(prefix) :].isdigit()
        }

    @property
    def nothing_new(self) -> bool:
        return self.files > 0 and self.complete_files == self.files

    def newest(self) -> Optional[datetime]:
        times = [p.updated_at for p in self.positions.values() if p.updated_at is not None]
        return max(times) if times else None

    def describe(self) -> str:
        newest = self.newest()
        when = (
            f" (last commit {newest.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"
            if newest
            else ""
        )
        return (
            f"nothing new: {self.lines_applied:,} lines of {self.files:,} "
            f"file{'' if self.files == 1 else 's'} already applied{when}"
        )


def start_positions(
    conn, sink_id: str, files: Iterable[str] = (), control_schema: str = "public"
) -> StartPositions:
    """The positions of `sink_id`, each of `files` (absolute paths, as the job reads them)
    checked against its own: the first lines it applied must be the same."""
    positions = read_positions(conn, sink_id, control_schema)
    files = list(files)
    complete = lines = 0
    changed = []
    for path in files:
        held = positions.get(path)
        now, more = file_position(path, held.lines if held else 0)
        if held is None:
            complete += not more  # an empty file is read to its end
            continue
        if (now.lines, now.bytes, now.digest) != (held.lines, held.bytes, held.digest):
            changed.append(_what_changed(path, held, now))
            continue
        complete += not more
        lines += held.lines
    if changed:
        raise InputChanged(
            "input changed after it was applied: "
            + "; ".join(changed)
            + ". The job reads a file once, from its first line to its end, and a file that "
            "grew from its last line on; it never applies a line twice, so it cannot apply "
            "a changed one. Restore the file as it was, and put new or corrected payments in "
            "a new file. Nothing was read or written."
        )
    return StartPositions(positions, len(files), complete, lines)


def _what_changed(path: str, held: Position, now: Position) -> str:
    if now.lines < held.lines:
        return (
            f"{path} had {held.lines:,} lines applied ({held.bytes:,} bytes) and now has "
            f"only {now.lines:,}"
        )
    return (
        f"{path}: its first {held.lines:,} lines were applied ({held.bytes:,} bytes), and "
        f"they are not the same now ({now.bytes:,} bytes, another digest)"
    )


def _seed(start: Optional[StartPositions]) -> tuple[list[str], list[int]]:
    if start is None:
        return [], []
    sources = list(start.positions)
    totals = [
        value
        for source in sources
        for value in (
            start.positions[source].last_position,
            start.positions[source].lines,
            start.positions[source].bytes,
            start.positions[source].digest,
        )
    ]
    return sources, totals


def _positions_class() -> Any:
    from pyflink.java_gateway import get_gateway

    return get_gateway().jvm.dev.tpc.stream.SourcePositions


def skip_applied(lines, start: Optional[StartPositions]):
    """`lines` without those the database holds (per source, up to its last position). The
    filter is there even when it has nothing to skip: a checkpoint taken by a run that skipped
    nothing must restore into the graph of one that does (Flink refuses a restored chain with
    an operator it has never seen next to finished ones)."""
    from pyflink.datastream import DataStream

    applied = start.applied if start is not None else {}
    sources = list(applied)
    return DataStream(
        _positions_class().skipApplied(
            lines._j_data_stream, sources, [applied[source] for source in sources]
        )
    ).uid("skip-applied-lines")


def track_positions(lines, start: Optional[StartPositions] = None):
    """Rows of `POSITION_ROW_TYPE`: each source's new totals, once per checkpoint it advanced
    in, before its barrier (keyed state: give the result a uid). `start` seeds the totals of
    the sources the database holds."""
    from pyflink.datastream import DataStream

    sources, totals = _seed(start)
    return DataStream(_positions_class().track(lines._j_data_stream, sources, totals))


def position_row_type():
    from pyflink.common import Types

    return Types.ROW_NAMED(
        ["source", "last_position", "lines", "bytes", "digest"],
        [Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG()],
    )
