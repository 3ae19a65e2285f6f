"""Audit and reconcile any declared job (`jobs.kit.declared.DeclaredJob`): what `jobs.audit` and
`jobs.reconcile` run for a job without checks of its own.

The audit recomputes every table from the input with the job's pure reference and compares the
database row by row, each table by its key: its primary key, or, for a table keyed by a serial
id (duplicates, rejects), the line it came from (source, line_number). Each difference is one of

* missing     an expected row the table lacks
* duplicated  the same key in the table again (a row applied twice)
* unexpected  a row whose key the input does not produce
* altered     a row under the right key with other values (named column by column)

and, as for every job: every input line in exactly one of the job's line tables, no prepared
transaction (``tpc:``) or staged batch left, and its sink's source positions at the input's end.

The reconciliation is the cheap summary: lines counted (not parsed) against the rows of the line
tables, the job's invariants (e.g. the stock is the sum of the moves), dangling work, positions.

The diff machinery (`TableDiff`, `compare`) is shared with the payments job's own audit
(`jobs.payments_audit`).
"""

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Callable, Optional

from jobs.kit.declared import DeclaredJob, Invariant
from sinks.control_tables import Pending, dead_letters, pending_work
from sinks.positions import Position, read_positions
from transforms.inputs import input_files
from transforms.lines import read_lines
from transforms.tables import Table

__all__ = [
    "DIFFERENCE_KINDS",
    "JobAudit",
    "JobReconciliation",
    "TableDiff",
    "audit_job",
    "compare",
    "count_lines",
    "reconcile_job",
    "row_key",
]

MISSING, DUPLICATED, UNEXPECTED, ALTERED = "missing", "duplicated", "unexpected", "altered"
DEAD_LETTERED, EXPLAINED = "dead-lettered", "explained"  # accounted for by dead letters
DIFFERENCE_KINDS = (MISSING, DUPLICATED, UNEXPECTED, ALTERED)
_MATCHED = object()


# --------------------------------------------------------------------------- row by row


class Several(list):
    """Values expected under one key more than once (two input files with one base name)."""


def put(table: dict[Any, Any], key, value: tuple) -> None:
    """`value` expected under `key`, once more."""
    if key not in table:
        table[key] = value
    elif isinstance(table[key], Several):
        table[key].append(value)
    else:
        table[key] = Several([table[key], value])


def values(table: dict[Any, Any]) -> Iterator[tuple]:
    for value in table.values():
        yield from (value if isinstance(value, Several) else [value])


@dataclass
class Example:
    key: Any  # a tuple, or a bare value for a table keyed by one column (payments' ledger)
    expected: Optional[tuple] = None
    found: Optional[tuple] = None
    note: str = ""


def format_key(key_fields: tuple[str, ...], key, limit: Optional[int] = None) -> str:
    """`order_id='o-1'`, `source='a.jsonl'  line_number=7`: a key as the report names rows."""
    keys = key if isinstance(key, tuple) else (key,)
    return "  ".join(f"{k}={_short(v, limit)}" for k, v in zip(key_fields, keys))


def _short(value, limit: Optional[int] = 80) -> str:
    """A value's repr, its middle cut out when longer than `limit` (a rejected line may be
    kilobytes)."""
    text = repr(value)
    if limit is None or len(text) <= limit:
        return text
    return f"{text[: limit - 20]}…{text[-15:]} ({len(text):,} chars)"


@dataclass
class TableDiff:
    """One table's comparison: counts per kind of difference, and the first examples of each."""

    name: str
    max_examples: int = 20
    expected: int = 0
    found: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=lambda: defaultdict(list))
    key_fields: tuple[str, ...] = ()
    value_fields: tuple[str, ...] = ()
    #: Values longer than this in the report are cut in the middle (None: shown whole).
    repr_limit: Optional[int] = 80

    def add(self, kind: str, example: Example) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.max_examples:
            self.examples[kind].append(example)

    @property
    def differences(self) -> int:
        return sum(self.counts[kind] for kind in DIFFERENCE_KINDS)

    def status(self) -> str:
        parts = [
            f"{self.counts[kind]:,} {kind}" + (" by dead letters" if kind == EXPLAINED else "")
            for kind in DIFFERENCE_KINDS + (DEAD_LETTERED, EXPLAINED)
            if self.counts[kind]
        ]
        return ", ".join(parts) if parts else "ok"

    def describe(self, example: Example, kind: str) -> str:
        keys = format_key(self.key_fields, example.key)  # whole: it names the row
        names, limit = self.value_fields, self.repr_limit
        if kind in (ALTERED, EXPLAINED) and example.expected and example.found:
            shown_values = "; ".join(
                f"{n}: expected {_short(e, limit)}, found {_short(f, limit)}"
                for n, e, f in zip(names, example.expected, example.found)
                if e != f
            )
        else:
            shown = example.expected if example.found is None else example.found
            shown_values = (
                " ".join(f"{n}={_short(v, limit)}" for n, v in zip(names, shown)) if shown else ""
            )
        return "  ".join(part for part in (keys, shown_values, example.note) if part)

    def render(self, max_diff: Optional[int]) -> list[str]:
        """Its status, then up to `max_diff` examples per kind (nothing when it is ok)."""
        kinds = [k for k in DIFFERENCE_KINDS + (DEAD_LETTERED, EXPLAINED) if self.counts[k]]
        if not kinds:
            return []
        out = ["", f"{self.name}: {self.status()}"]
        for kind in kinds:
            examples = self.examples[kind][:max_diff]
            out += [f"  {kind:<13} {self.describe(example, kind)}" for example in examples]
            if self.counts[kind] > len(examples):
                out.append(f"  ... and {self.counts[kind] - len(examples):,} more {kind}")
        return out


def compare(
    diff: TableDiff,
    expected: dict[Any, Any],
    found: Iterable[tuple[Any, tuple, str]],
    explains: Optional[Callable[[Any, tuple, tuple], bool]] = None,
) -> list[tuple[Any, tuple]]:
    """Match the table's rows (key, value, note) against `expected`, which it consumes (each
    matched value is replaced by a marker: no second copy of the expectation). `explains(key,
    expected, found)` may account for an altered row (and record it). Returns the missing
    (key, expected value) pairs, which dead letters may still account for."""
    diff.expected = sum(len(v) if isinstance(v, Several) else 1 for v in expected.values())
    for key, value, note in found:
        diff.found += 1
        wanted = expected.get(key)
        if wanted is None:
            diff.add(UNEXPECTED, Example(key, found=value, note=note))
        elif isinstance(wanted, Several):
            _match_several(diff, key, wanted, value, note)
        elif wanted is _MATCHED:
            diff.add(DUPLICATED, Example(key, found=value, note=note))
        else:
            if wanted != value and not (explains and explains(key, wanted, value)):
                diff.add(ALTERED, Example(key, wanted, value, note))
            expected[key] = _MATCHED
    missing = []
    for key, wanted in expected.items():
        for value in wanted if isinstance(wanted, Several) else [wanted]:
            if value is not _MATCHED:
                missing.append((key, value))
    return missing


def _match_several(diff, key, wanted: Several, value, note) -> None:
    open_values = [i for i, v in enumerate(wanted) if v is not _MATCHED]
    if not open_values:
        diff.add(DUPLICATED, Example(key, found=value, note=note))
        return
    same = [i for i in open_values if wanted[i] == value]
    index = same[0] if same else open_values[0]
    if not same:
        diff.add(ALTERED, Example(key, wanted[index], value, note))
    wanted[index] = _MATCHED


def age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def check_positions(
    expected: Mapping[str, int], found: Mapping[str, Position]
) -> Optional[tuple[int, int, list[str]]]:
    """Every source of the input at its end in the sink's positions (None: it keeps none):
    (sources expected, sources found, the sources whose position is not the input's end)."""
    if not found:
        return None
    differing = [
        f"{source}: the input ends at {last:,}, the position is "
        + (f"{found[source].last_position:,}" if source in found else "missing")
        for source, last in sorted(expected.items())
        if source not in found or found[source].last_position != last
    ]
    return len(expected), sum(1 for source in expected if source in found), differing


def pending_lines(pending: list[Pending], max_diff: Optional[int]) -> list[str]:
    """The report's paragraph on dangling sink work (nothing when there is none)."""
    if not pending:
        return []
    return [
        "",
        f"dangling sink work: {len(pending)} (a job still running, or one that stopped "
        "between pre-commit and commit: restore it from its checkpoint, or clean up by hand "
        "as sinks/README.md describes)",
    ] + [
        f"  {p.kind:<21} {p.gid}  age {age(p.age)}"
        + (f", {p.rows:,} rows" if p.rows is not None else "")
        for p in pending[:max_diff]
    ]


def sink_work_rows(
    positions: Optional[tuple[int, int, list[str]]], pending: list[Pending]
) -> list[tuple[str, str, str, str]]:
    """The summary's rows on the sink's own state: its source positions (see check_positions;
    None: it keeps none), prepared transactions and staged batches left."""
    rows = []
    if positions is not None:
        expected, found, differing = positions
        status = f"{len(differing):,} not at the input's end" if differing else "ok"
        rows.append(("source positions", f"{expected:,}", f"{found:,}", status))
    kinds = Counter(p.kind for p in pending)
    for label, kind in (
        ("prepared transactions (tpc:)", "prepared transaction"),
        ("staged batches", "staged batch"),
    ):
        rows.append((label, "0", f"{kinds[kind]:,}", "DANGLING" if kinds[kind] else "ok"))
    return rows


def table_lines(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """(what, expected, found, status) rows as aligned columns."""
    rows = [("", "expected", "found", "")] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in rows
    ]


# --------------------------------------------------------------------------- any declared job


def row_key(table: Table) -> tuple[str, ...]:
    """The columns a table's rows are compared by: its primary key; for a table keyed by a
    serial id the database fills (duplicates, rejects), the line it came from."""
    if table.primary_key:
        return table.primary_key
    primary = tuple(c.name for c in table.written if "PRIMARY KEY" in c.constraints)
    if primary:
        return primary
    names = table.field_names
    if "source" in names and "line_number" in names:
        return ("source", "line_number")
    return tuple(names)


def _split(table: Table) -> tuple[list[int], list[int]]:
    """The indexes of the key's and of the other columns among `table.field_names`."""
    names = table.field_names
    key = row_key(table)
    return [names.index(k) for k in key], [i for i, n in enumerate(names) if n not in key]


@dataclass
class Expected:
    lines: int
    files: int
    tables: dict[str, dict[tuple, Any]]
    positions: dict[str, int]  # source -> its last line number: what the positions must say


def expected_rows(job: DeclaredJob, input_dir: str) -> Expected:
    """The job's reference over the files under `input_dir`, in the order the job's file
    source lists them, each line named by the file's absolute path as the job names it."""
    assert job.reference is not None
    paths = input_files(input_dir)
    positions: dict[str, int] = {}
    count = 0

    def lines():
        nonlocal count
        for path in paths:
            for line in read_lines(path, source=os.path.abspath(path)):
                count += 1
                positions[line.source] = line.line_number
                yield line

    produced = job.reference(lines())
    strays = set(produced) - set(job.tables)
    if strays:
        raise ValueError(f"job {job.name!r}: its reference gives rows of unknown tables {strays}")
    tables: dict[str, dict[tuple, Any]] = {}
    for name, table in job.tables.items():
        key, rest = _split(table)
        width = len(table.field_names)
        expected: dict[tuple, Any] = {}
        for row in produced.get(name, ()):
            if len(row) != width:
                raise ValueError(
                    f"job {job.name!r}: its reference's {name} rows have {len(row)} fields, the "
                    f"table writes {width} ({', '.join(table.field_names)})"
                )
            put(expected, tuple(row[i] for i in key), tuple(row[i] for i in rest))
        tables[name] = expected
    return Expected(count, len(paths), tables, positions)


def _found_rows(conn, table: Table, itersize: int = 10_000) -> Iterator[tuple[tuple, tuple, str]]:
    """(key, value, note) per row, read with a server-side cursor (constant memory)."""
    from psycopg import sql

    key, rest = _split(table)
    statement = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.field_names)), sql.Identifier(table.name)
    )
    with conn.cursor(name=f"audit_{table.name}") as cur:
        cur.itersize = itersize
        cur.execute(statement)
        for row in cur:
            row = [bytes(v) if isinstance(v, memoryview) else v for v in row]
            yield tuple(row[i] for i in key), tuple(row[i] for i in rest), ""


@dataclass
class JobAudit:
    job: str
    lines: int
    files: int
    tables: dict[str, TableDiff]
    line_tables: tuple[str, ...]
    pending: list[Pending]
    positions: Optional[tuple[int, int, list[str]]]  # see check_positions; None: none kept
    dead_letters: int = 0  # rows the sink set aside (tpc_dead_letters): they show as missing

    @property
    def accounted(self) -> int:
        return sum(self.tables[name].found for name in self.line_tables)

    @property
    def differences(self) -> int:
        total = sum(t.differences for t in self.tables.values()) + len(self.pending)
        total += len(self.positions[2]) if self.positions else 0
        return total + (self.accounted != self.lines)

    @property
    def clean(self) -> bool:
        return self.differences == 0

    def render(self, max_diff: Optional[int] = None) -> str:
        files = f"{self.files} file" + ("" if self.files == 1 else "s")
        rows = [(f"{self.job}: lines in", f"{self.lines:,}", "", files)]
        rows.append(
            (
                f"  in {', '.join(self.line_tables)}",
                f"{self.lines:,}",
                f"{self.accounted:,}",
                "ok" if self.accounted == self.lines else "NOT ONE EACH",
            )
        )
        for name, diff in self.tables.items():
            rows.append((name, f"{diff.expected:,}", f"{diff.found:,}", diff.status()))
        if self.dead_letters:
            rows.append(("dead letters", "0", f"{self.dead_letters:,}", "see tpc_dead_letters"))
        out = table_lines(rows + sink_work_rows(self.positions, self.pending))
        for diff in self.tables.values():
            out += diff.render(max_diff)
        if self.positions and self.positions[2]:
            out += ["", "source positions not at the input's end (a run would read or skip lines):"]
            out += [f"  {what}" for what in self.positions[2][:max_diff]]
        out += pending_lines(self.pending, max_diff)
        out += ["", "audit: clean" if self.clean else f"audit: {self.differences:,} DIFFERENCES"]
        return "\n".join(out)


def audit_job(
    conn,
    job: DeclaredJob,
    input_dir: str,
    sink_id_prefix: Optional[str] = None,
    control_schema: str = "public",
    max_examples: int = 20,
) -> JobAudit:
    """Compare the job's tables with what its reference makes of the input. Reads the database
    in one repeatable-read snapshot when `conn` is not already inside a transaction."""
    import psycopg

    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"input directory not found: {input_dir}")
    expected = expected_rows(job, input_dir)
    sink_id = job.sink_id(sink_id_prefix)
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if idle:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        diffs = {}
        for name, table in job.tables.items():
            key, rest = _split(table)
            names = table.field_names
            diff = TableDiff(
                name,
                max_examples,
                key_fields=tuple(names[i] for i in key),
                value_fields=tuple(names[i] for i in rest),
            )
            for missing_key, value in compare(
                diff, expected.tables[name], _found_rows(conn, table)
            ):
                diff.add(MISSING, Example(missing_key, expected=value))
            diffs[name] = diff
        pending = pending_work(conn, control_schema)
        positions = check_positions(
            expected.positions, read_positions(conn, sink_id, control_schema)
        )
        letters = dead_letters(conn, control_schema, [sink_id]) or []
    return JobAudit(
        job.name,
        expected.lines,
        expected.files,
        diffs,
        tuple(t.name for t in job.line_tables),
        pending,
        positions,
        len(letters),
    )


# --------------------------------------------------------------------------- the quick summary


def count_lines(input_dir: str) -> int:
    """The lines of the files under `input_dir` (counted, not parsed)."""
    total = 0
    for path in input_files(input_dir):
        with open(path, "rb") as f:
            total += sum(1 for _ in f)
    return total


@dataclass
class JobReconciliation:
    job: str
    lines_read: int
    in_tables: dict[str, int]  # line table -> rows
    dead_letters: int
    # invariant -> (rows compared, the first rows that differ, described)
    invariants: dict[str, tuple[int, list[str]]]
    pending: dict[str, int]
    applied: Optional[int]  # lines the sink's positions say are applied; None: none kept

    @property
    def every_line_accounted(self) -> bool:
        return self.lines_read == sum(self.in_tables.values()) + self.dead_letters

    @property
    def books_balance(self) -> bool:
        return (
            self.every_line_accounted
            and self.applied in (None, self.lines_read)
            and not any(differing for _, differing in self.invariants.values())
            and not any(self.pending.values())
        )

    def report(self) -> str:
        out = [f"{self.job}: lines read  {self.lines_read:>10,}"]
        out += [f"  {name:<20}{rows:>10,}" for name, rows in self.in_tables.items()]
        if self.dead_letters:
            out.append(f"  {'dead letters':<20}{self.dead_letters:>10,}  (see tpc_dead_letters)")
        total = sum(self.in_tables.values()) + self.dead_letters
        out.append(
            f"  {'accounted for':<20}{'yes' if self.every_line_accounted else 'NO':>10}"
            f"  (rows of {', '.join(self.in_tables)} = {total:,})"
        )
        if self.applied is not None:
            mark = "ok" if self.applied == self.lines_read else "DIFFERS"
            out.append(f"  {'applied (positions)':<20}{self.applied:>10,}  {mark}")
        for name, (compared, differing) in self.invariants.items():
            out.append(
                f"{name}: {compared:,} rows, "
                + (f"{len(differing):,} DIFFER" if differing else "ok")
            )
            out += [f"  {what}" for what in differing[:20]]
        if any(self.pending.values()):
            out.append(f"pending sink work: {self.pending}")
        out.append(f"books balance: {'yes' if self.books_balance else 'NO'}")
        return "\n".join(out)


def check_invariant(conn, invariant: Invariant) -> tuple[int, list[str]]:
    """(rows compared, the rows whose two sides differ, described by key)."""
    n = invariant.key_columns

    def side(sql: str) -> dict[tuple, tuple]:
        return {tuple(row[:n]): tuple(map(_plain, row[n:])) for row in conn.execute(sql)}

    left, right = side(invariant.left), side(invariant.right)
    differing = [
        f"{', '.join(map(repr, key))}: {invariant.sides[0]} {_short(left.get(key, 'none'))}, "
        f"{invariant.sides[1]} {_short(right.get(key, 'none'))}"
        for key in sorted(set(left) | set(right), key=repr)
        if left.get(key) != right.get(key)
    ]
    return len(set(left) | set(right)), differing


def _plain(value):
    """A whole Decimal (sum() of a bigint column) as an int, as the other side reads it."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def reconcile_job(
    conn,
    job: DeclaredJob,
    input_dir: str,
    sink_id_prefix: Optional[str] = None,
    control_schema: str = "public",
) -> JobReconciliation:
    from psycopg import sql

    sink_id = job.sink_id(sink_id_prefix)
    in_tables = {
        t.name: int(
            conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t.name))
            ).fetchone()[0]
        )
        for t in job.line_tables
    }
    positions = read_positions(conn, sink_id, control_schema)
    pending = [p.kind for p in pending_work(conn, control_schema)]
    return JobReconciliation(
        job.name,
        count_lines(input_dir),
        in_tables,
        len(dead_letters(conn, control_schema, [sink_id]) or []),
        {invariant.name: check_invariant(conn, invariant) for invariant in job.invariants},
        {
            "prepared": pending.count("prepared transaction"),
            "staged": pending.count("staged batch"),
        },
        sum(p.lines for p in positions.values()) if positions else None,
    )
