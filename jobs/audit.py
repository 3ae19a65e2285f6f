"""Audit: recompute what the payments tables must hold from the input, and diff the database.

    python -m jobs.audit --input DIR --db-url URL --db-user USER [--sink-id-prefix payments]
        [--control-schema public] [--max-diff 20] [--fail-on-dead-letters]

The expectation comes from the pure transforms (`transforms.reference.iter_outcomes`), fed the
files the job reads (`transforms.inputs.input_files`) in the order it reads them. It is compared
row by row with `ledger` (by event_id), `balances` (by account and currency), `rejected` and
`duplicates` (by file and line number). Each difference is one of:

* missing     an expected row the table lacks
* duplicated  the same key in the table again (a row applied twice)
* unexpected  a row whose key the input does not produce
* altered     a row under the right key with other values (named field by field)

plus dangling sink work: prepared transactions (`tpc:` gids) and staged batches not yet
applied. Rows the sink dead-lettered (`tpc_dead_letters`, when the table exists) are accounted
for in a category of their own: a dead-lettered ledger, rejected or duplicate row stands for
the missing row with its key, a dead-lettered balance delta for a balance short by exactly its
amount. They are reported, not counted as differences (unless --fail-on-dead-letters).

The job keeps each file's (partition's) order but reads them side by side, so for an event id
found in several of them any one file's first copy may be the one applied: the audit accepts
the outcome of any such order (`resolve_contested`), and reports everything else.

Exit status: 0 clean, 1 any difference, 2 usage or connection error. The input is streamed:
memory is what the reference itself needs (the expected rows; no input line is kept).
`jobs.reconcile` is the cheap summary (counts and sums, no parsing); this is the full check,
and the fault campaign's oracle (`audit(conn, input_dir).clean`).
"""

import argparse
import hashlib
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Optional, cast

from jobs.payments_dead_letters import (
    DeadLetter,
    add_sink_arguments,
    books_sink_id,
    load_dead_letters,
    route_payment_letters,
)
from sinks.control_tables import Pending, pending_work
from sinks.positions import Position, read_positions
from transforms.currencies import DEFAULT_CURRENCIES
from transforms.inputs import input_files
from transforms.lines import SourceLine
from transforms.payments import (
    LedgerRow,
    Payment,
    Reason,
    RejectedRow,
    conflict_rejection,
    fingerprint,
    format_minor_units,
    ledger_row,
    parse_line,
    rejected_row,
)
from transforms.reference import iter_outcomes, read_lines

__all__ = [
    "audit",
    "expect",
    "AuditReport",
    "TableDiff",
    "main",
]

TABLES = ("ledger", "balances", "rejected", "duplicates")
# The fields each table is compared on, after its key.
KEY_FIELDS = {
    "ledger": ("event_id",),
    "balances": ("account_id", "currency"),
    "rejected": ("source", "line_number"),
    "duplicates": ("source", "line_number"),
}
VALUE_FIELDS = {
    "ledger": ("account_id", "type", "amount_minor", "currency", "occurred_at"),
    "balances": ("balance_minor", "event_count"),
    "rejected": ("reason", "line"),
    "duplicates": ("event_id",),
}

# occurred_at as the transforms write it (LedgerRow): UTC, 6 fractional digits.
OCCURRED_AT_UTC = (
    "to_char(occurred_at AT TIME ZONE 'UTC', "
    """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
)
FOUND_ROWS = {
    "ledger": "SELECT event_id, account_id, type, amount_minor, currency, "
    f"{OCCURRED_AT_UTC} FROM ledger",
    "balances": "SELECT account_id, currency, balance_minor, event_count FROM balances",
    # the line is coalesce(raw_bytes, raw in UTF-8); `detail` is a hint, never compared
    "rejected": "SELECT source, line_number, reason, raw, raw_bytes, id FROM rejected",
    "duplicates": "SELECT source, line_number, event_id, id FROM duplicates",
}


class Line:
    """A line compared by its exact bytes (a digest), shown by its length and a preview of its
    text (head and tail, so that most edits show)."""

    __slots__ = ("digest", "size", "preview")
    HEAD, TAIL = 40, 20

    def __init__(self, raw: str, raw_bytes: Optional[bytes]):
        data = bytes(raw_bytes) if raw_bytes is not None else raw.encode("utf-8")
        self.digest = hashlib.blake2b(data, digest_size=16).digest()
        self.size = len(data)
        self.preview = (
            raw
            if len(raw) <= self.HEAD + self.TAIL + 1
            else raw[: self.HEAD] + "…" + raw[-self.TAIL :]
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Line) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"{self.preview!r} ({self.size:,} bytes)"


# --------------------------------------------------------------------------- expectation


@dataclass
class Expectation:
    """What the tables must hold: key -> value tuple (see KEY_FIELDS / VALUE_FIELDS; the
    ledger's key is the bare event_id, not a 1-tuple: a million of those add up)."""

    lines: int = 0
    files: int = 0
    tables: dict[str, dict[Any, Any]] = field(default_factory=lambda: {name: {} for name in TABLES})
    # event id -> its valid lines, for ids found in more than one source (resolve_contested)
    contested: dict[str, list["Occurrence"]] = field(default_factory=dict)
    # source -> its last position (line number, offset): what the sink's positions must say
    positions: dict[str, int] = field(default_factory=dict)


class _Several(list):
    """Values expected under one key more than once (two input files with one base name)."""


def _put(table: dict[Any, Any], key, value: tuple) -> None:
    if key not in table:
        table[key] = value
    elif isinstance(table[key], _Several):
        table[key].append(value)
    else:
        table[key] = _Several([table[key], value])


def expect(
    input_dir: str,
    currencies: Optional[Mapping[str, int]] = None,
    kafka: Optional[tuple[str, int]] = None,
) -> Expectation:
    """The expected rows for the files under `input_dir`, streamed through the reference.
    `kafka` = (topic, partitions): the job read them from that topic, as `jobs.produce` put
    them into it when it was empty, so each line is named by partition and offset.

    The reference reads the sources one after another; the job reads them side by side. The
    occurrences of event ids found in more than one source are kept (`Expectation.contested`),
    so that `resolve_contested` can accept the outcome of any order the job may have read them
    in."""
    paths = input_files(input_dir)

    def lines():
        if kafka:
            from jobs.produce import kafka_lines

            yield from (line for *_, line in kafka_lines(input_dir, *kafka))
            return
        for path in paths:
            # Named by path, as the job names them (its file source reads absolute paths).
            yield from read_lines(path, source=os.path.abspath(path))

    result = Expectation(files=len(paths))
    ledger, rejected, duplicates = (
        result.tables[name] for name in ("ledger", "rejected", "duplicates")
    )
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    repeated: set[str] = set()  # event ids with more than one valid line

    def positioned():
        for line in lines():
            if line.source is not None and line.line_number is not None:
                last = result.positions.get(line.source, 0)
                result.positions[line.source] = max(last, line.line_number)
            yield line

    for _, row in iter_outcomes(positioned(), currencies=currencies):
        result.lines += 1
        # outcome "ledger": a LedgerRow; "duplicate": the Payment; a reason: its RejectedRow
        if isinstance(row, LedgerRow):
            _put(
                ledger,
                row.event_id,
                (row.account_id, row.type, row.amount_minor, row.currency, row.occurred_at),
            )
            total = totals[(row.account_id, row.currency)]
            total[0] += row.amount_minor
            total[1] += 1
        elif isinstance(row, Payment):
            _put(duplicates, (row.source, row.line_number), (row.event_id,))
            repeated.add(row.event_id)
        else:
            _put(
                rejected, (row.source, row.line_number), (row.reason, Line(row.raw, row.raw_bytes))
            )
            if row.reason == Reason.CONFLICTING_DUPLICATE:
                again = parse_line(_exact(row), currencies, row.source, row.line_number)
                repeated.add(cast(Payment, again).event_id)
    result.tables["balances"] = {key: (b, n) for key, (b, n) in totals.items()}
    if repeated and len(paths) > 1:
        result.contested = contested_events(lines(), repeated, currencies)
    return result


def _exact(row: RejectedRow) -> bytes:
    return bytes(row.raw_bytes) if row.raw_bytes is not None else row.raw.encode("utf-8")


# --------------------------------------------------------------------------- order across sources


@dataclass(frozen=True)
class Occurrence:
    """A valid line of an event id that occurs in more than one source, and the rows it gives
    as the first of its event id (`ledger`) or as a conflicting duplicate (`conflict`)."""

    source: str
    line_number: int
    fingerprint: str
    ledger: tuple  # VALUE_FIELDS["ledger"]
    conflict: tuple  # VALUE_FIELDS["rejected"]

    @property
    def key(self) -> tuple[str, int]:
        return self.source, self.line_number


# Where a line names its event id, for a quick look before parsing it. A line with no such
# match, with an escape in it, or with two of them is parsed whatever it holds.
_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([^"\\]*)"')


def contested_events(
    lines: Iterable[SourceLine], repeated: set[str], currencies: Optional[Mapping[str, int]]
) -> dict[str, list[Occurrence]]:
    """The valid lines, in input order, of each event id of `repeated` whose valid lines are
    in more than one source (files, or Kafka partitions)."""
    found: dict[str, list[Occurrence]] = defaultdict(list)
    for item in lines:
        raw = item.line if isinstance(item.line, bytes) else item.line.encode("utf-8")
        named = _EVENT_ID.findall(raw)
        if len(named) == 1 and named[0].decode("utf-8", "replace") not in repeated:
            continue
        payment = parse_line(item.line, currencies, item.source, item.line_number)
        if isinstance(payment, Payment) and payment.event_id in repeated:
            row = rejected_row(conflict_rejection(payment))
            found[payment.event_id].append(
                Occurrence(
                    cast(str, item.source),
                    cast(int, item.line_number),
                    fingerprint(payment),
                    tuple(ledger_row(payment))[1:],
                    (row.reason, Line(row.raw, row.raw_bytes)),
                )
            )
    return {
        event_id: occurrences
        for event_id, occurrences in found.items()
        if len({o.source for o in occurrences}) > 1
    }


def resolve_contested(conn, expectation: Expectation) -> int:
    """Make the expectation of each contested event id the outcome the database shows, when
    that outcome is one the job may legitimately produce; returns how many were so resolved
    in another order than the reference's.

    The rule: lines of one source reach the job in their order, sources in any order. So the
    first valid line of the event id in *any one* source may be the one applied (its ledger
    row and balance); every other valid line of it is then a duplicate when its content is the
    same as that line's, and a `conflicting_duplicate` rejection when not. The line the
    database applied is the first of its source whose ledger values match the ledger's row and
    that is neither in `duplicates` nor in `rejected`. Anything else (no such line, or two)
    keeps the reference's expectation, so the comparison reports it."""
    contested = expectation.contested
    if not contested:
        return 0
    ids = list(contested)
    keys = [o.key for occurrences in contested.values() for o in occurrences]
    sources = [source for source, _ in keys]
    numbers = [number for _, number in keys]
    in_ledger = {
        row[0]: tuple(row[1:])
        for row in conn.execute(FOUND_ROWS["ledger"] + " WHERE event_id = ANY(%s)", (ids,))
    }
    placed = {
        (source, number)
        for table in ("duplicates", "rejected")
        for source, number in conn.execute(
            f"SELECT t.source, t.line_number FROM {table} t JOIN unnest(%s::text[], "
            "%s::bigint[]) AS p(source, line_number) USING (source, line_number)",
            (sources, numbers),
        )
    }
    tables = expectation.tables
    resolved = 0
    for event_id, occurrences in contested.items():
        firsts: dict[str, Occurrence] = {}
        for occurrence in occurrences:
            firsts.setdefault(occurrence.source, occurrence)
        applied = [
            o
            for o in firsts.values()
            if o.ledger == in_ledger.get(event_id) and o.key not in placed
        ]
        if len(applied) != 1 or applied[0] is occurrences[0]:
            continue
        if any(
            isinstance(tables[name].get(o.key), _Several)
            for o in occurrences
            for name in ("duplicates", "rejected")
        ):
            continue  # two input files with one base name: keep the reference's order
        _apply_instead(tables, event_id, occurrences, occurrences[0], applied[0])
        resolved += 1
    return resolved


def _apply_instead(tables, event_id: str, occurrences, reference: Occurrence, chosen: Occurrence):
    """Rewrite the expectation of `event_id` as if `chosen` had been read first."""
    tables["ledger"][event_id] = chosen.ledger
    balances = tables["balances"]
    for occurrence, sign in ((reference, -1), (chosen, 1)):
        account, _, amount, currency, _ = occurrence.ledger
        balance, count = balances.get((account, currency), (0, 0))
        balance, count = balance + sign * amount, count + sign
        if count:
            balances[(account, currency)] = (balance, count)
        else:
            balances.pop((account, currency), None)
    for occurrence in occurrences:
        tables["duplicates"].pop(occurrence.key, None)
        tables["rejected"].pop(occurrence.key, None)
        if occurrence is chosen:
            continue
        if occurrence.fingerprint == chosen.fingerprint:
            tables["duplicates"][occurrence.key] = (event_id,)
        else:
            tables["rejected"][occurrence.key] = occurrence.conflict


# --------------------------------------------------------------------------- differences

MISSING, DUPLICATED, UNEXPECTED, ALTERED = "missing", "duplicated", "unexpected", "altered"
DEAD_LETTERED, EXPLAINED = "dead-lettered", "explained"  # accounted for by dead letters
DIFFERENCE_KINDS = (MISSING, DUPLICATED, UNEXPECTED, ALTERED)
_MATCHED = object()


@dataclass
class Example:
    key: Any  # a tuple, or the ledger's bare event_id
    expected: Optional[tuple] = None
    found: Optional[tuple] = None
    note: str = ""


@dataclass
class TableDiff:
    """One table's comparison: counts per kind of difference, and the first examples of each."""

    name: str
    max_examples: int = 20
    expected: int = 0
    found: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=lambda: defaultdict(list))

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
        keys = format_key(self.name, example.key)
        names = VALUE_FIELDS[self.name]
        if kind in (ALTERED, EXPLAINED) and example.expected and example.found:
            values = "; ".join(
                f"{n}: expected {e!r}, found {f!r}"
                for n, e, f in zip(names, example.expected, example.found)
                if e != f
            )
        else:
            shown = example.expected if example.found is None else example.found
            values = " ".join(f"{n}={v!r}" for n, v in zip(names, shown)) if shown else ""
        return "  ".join(part for part in (keys, values, example.note) if part)


def format_key(table: str, key) -> str:
    """`event_id='e-1'`, `source='a.jsonl'  line_number=7`: a key as the report names rows."""
    values = key if isinstance(key, tuple) else (key,)  # the ledger's key is the bare event_id
    return "  ".join(f"{k}={v!r}" for k, v in zip(KEY_FIELDS[table], values))


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
    diff.expected = sum(len(v) if isinstance(v, _Several) else 1 for v in expected.values())
    for key, value, note in found:
        diff.found += 1
        wanted = expected.get(key)
        if wanted is None:
            diff.add(UNEXPECTED, Example(key, found=value, note=note))
        elif isinstance(wanted, _Several):
            _match_several(diff, key, wanted, value, note)
        elif wanted is _MATCHED:
            diff.add(DUPLICATED, Example(key, found=value, note=note))
        else:
            if wanted != value and not (explains and explains(key, wanted, value)):
                diff.add(ALTERED, Example(key, wanted, value, note))
            expected[key] = _MATCHED
    missing = []
    for key, wanted in expected.items():
        for value in wanted if isinstance(wanted, _Several) else [wanted]:
            if value is not _MATCHED:
                missing.append((key, value))
    return missing


def _match_several(diff, key, wanted: _Several, value, note) -> None:
    open_values = [i for i, v in enumerate(wanted) if v is not _MATCHED]
    if not open_values:
        diff.add(DUPLICATED, Example(key, found=value, note=note))
        return
    same = [i for i in open_values if wanted[i] == value]
    index = same[0] if same else open_values[0]
    if not same:
        diff.add(ALTERED, Example(key, wanted[index], value, note))
    wanted[index] = _MATCHED


def _age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


# --------------------------------------------------------------------------- the audit


@dataclass
class AuditReport:
    lines: int
    files: int
    tables: dict[str, TableDiff]
    rejected_by_reason: dict[str, tuple[int, int]]  # reason -> (expected, found)
    per_currency: dict[str, tuple[int, int]]  # currency -> (expected, found) balance sum
    dead_letters: Optional[list[DeadLetter]]  # None: no dead-letter table
    stray_dead_letters: list[tuple[DeadLetter, str]]  # dead letters that explain nothing
    pending: list[Pending]
    fail_on_dead_letters: bool = False
    dead_lettered_reasons: Counter = field(default_factory=Counter)  # rejected rows, by reason
    dead_lettered_amounts: Counter = field(default_factory=Counter)  # balance deltas, by currency
    contested: int = 0  # event ids with valid lines in more than one source
    reordered: int = 0  # of those, applied in another order than the reference's: accepted
    # The books sink's source positions (sinks/positions.py): (sources expected, sources
    # found, the sources whose position is not the input's end); None: the sink keeps none.
    positions: Optional[tuple[int, int, list[str]]] = None

    @property
    def differences(self) -> int:
        total = sum(t.differences for t in self.tables.values())
        total += len(self.stray_dead_letters) + len(self.pending)
        total += len(self.positions[2]) if self.positions else 0
        if self.fail_on_dead_letters:
            total += len(self.dead_letters or ())
        return total

    @property
    def clean(self) -> bool:
        return self.differences == 0

    def summary_rows(self) -> list[tuple[str, str, str, str]]:
        """(what, expected, found, status) rows of the summary table."""
        t = self.tables
        rows = [
            (
                "lines in",
                f"{self.lines:,}",
                "",
                f"{self.files} file" + ("" if self.files == 1 else "s"),
            )
        ]
        in_tables = sum(t[name].found for name in ("ledger", "duplicates", "rejected"))
        set_aside = sum(
            t[name].counts[DEAD_LETTERED] for name in ("ledger", "duplicates", "rejected")
        )
        rows.append(
            (
                "  in ledger, duplicates, rejected",
                "",
                f"{in_tables:,}",
                f"+ {set_aside:,} dead-lettered" if set_aside else "",
            )
        )
        rows.append(
            (
                "  lines accounted for",
                f"{self.lines:,}",
                f"{in_tables + set_aside:,}",
                "ok" if in_tables + set_aside == self.lines else "NO",
            )
        )
        if self.contested:
            rows.append(
                (
                    "  event ids in several sources",
                    f"{self.contested:,}",
                    "",
                    f"{self.reordered:,} applied in another source order (accepted)",
                )
            )
        for label, name in (
            ("ledger rows", "ledger"),
            ("duplicates", "duplicates"),
            ("rejected", "rejected"),
        ):
            rows.append((label, f"{t[name].expected:,}", f"{t[name].found:,}", t[name].status()))
            if name == "rejected":
                for reason, (e, f) in sorted(
                    self.rejected_by_reason.items(), key=lambda kv: (-kv[1][0], kv[0])
                ):
                    dead = self.dead_lettered_reasons[reason]
                    rows.append(
                        (
                            f"  {reason}",
                            f"{e:,}",
                            f"{f:,}",
                            ""
                            if e == f
                            else f"{dead:,} dead-lettered"
                            if e == f + dead
                            else "differs",
                        )
                    )
        rows.append(
            (
                "balances (account, currency)",
                f"{t['balances'].expected:,}",
                f"{t['balances'].found:,}",
                t["balances"].status(),
            )
        )
        for currency, (e, f) in sorted(self.per_currency.items()):
            units = DEFAULT_CURRENCIES.get(currency, 0)
            short = self.dead_lettered_amounts[currency]
            rows.append(
                (
                    f"  {currency} total",
                    format_minor_units(e, units),
                    format_minor_units(f, units),
                    "" if e == f else "short by its dead letters" if e == f + short else "differs",
                )
            )
        if self.dead_letters is None:
            rows.append(("dead letters", "", "-", "no dead-letter table"))
        else:
            by_table = Counter(letter.table for letter in self.dead_letters)
            status = ", ".join(f"{n:,} {name}" for name, n in sorted(by_table.items()))
            status = f"accounted for: {status}" if status else "none"
            if self.stray_dead_letters:
                status += f"; {len(self.stray_dead_letters):,} explain nothing"
            rows.append(("dead letters", "", f"{len(self.dead_letters):,}", status))
        if self.positions is not None:
            expected, found, differing = self.positions
            status = f"{len(differing):,} not at the input's end" if differing else "ok"
            rows.append(("source positions", f"{expected:,}", f"{found:,}", status))
        kinds = Counter(p.kind for p in self.pending)
        for label, kind in (
            ("prepared transactions (tpc:)", "prepared transaction"),
            ("staged batches", "staged batch"),
        ):
            rows.append((label, "0", f"{kinds[kind]:,}", "DANGLING" if kinds[kind] else "ok"))
        return rows

    def render(self, max_diff: Optional[int] = None) -> str:
        """The summary table, then up to `max_diff` examples per table and kind of difference."""
        rows = [("", "expected", "found", "")] + self.summary_rows()
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        out = [
            f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip()
            for a, b, c, d in rows
        ]
        for name in TABLES:
            diff = self.tables[name]
            kinds = [k for k in DIFFERENCE_KINDS + (DEAD_LETTERED, EXPLAINED) if diff.counts[k]]
            if not kinds:
                continue
            out += ["", f"{name}: {diff.status()}"]
            for kind in kinds:
                examples = diff.examples[kind][:max_diff]
                out += [f"  {kind:<13} {diff.describe(example, kind)}" for example in examples]
                if diff.counts[kind] > len(examples):
                    out.append(f"  ... and {diff.counts[kind] - len(examples):,} more {kind}")
        if self.stray_dead_letters:
            out += ["", f"dead letters that explain no difference: {len(self.stray_dead_letters)}"]
            out += [
                f"  {letter.table}: {format_key(letter.table, letter.key)}: {why}  "
                f"(sqlstate {letter.sqlstate}: {letter.message})"
                for letter, why in self.stray_dead_letters[:max_diff]
            ]
        if self.positions and self.positions[2]:
            out += ["", "source positions not at the input's end (a run would read or skip lines):"]
            out += [f"  {what}" for what in self.positions[2][:max_diff]]
        if self.pending:
            out += [
                "",
                f"dangling sink work: {len(self.pending)} (a job still running, or one "
                "that stopped between pre-commit and commit: restore it from its "
                "checkpoint, or clean up by hand as sinks/README.md describes)",
            ]
            out += [
                f"  {p.kind:<21} {p.gid}  age {_age(p.age)}"
                + (f", {p.rows:,} rows" if p.rows is not None else "")
                for p in self.pending[:max_diff]
            ]
        letters = len(self.dead_letters or ())
        out.append("")
        if self.clean:
            out.append(
                "audit: clean"
                + (f" ({letters:,} rows dead-lettered, accounted for)" if letters else "")
            )
        else:
            out.append(f"audit: {self.differences:,} DIFFERENCES")
        return "\n".join(out)


def _found_rows(conn, table: str, itersize: int = 10_000) -> Iterator[tuple[tuple, tuple, str]]:
    """(key, value, note) per row, read with a server-side cursor (constant memory)."""
    with conn.cursor(name=f"audit_{table}") as cur:
        cur.itersize = itersize
        cur.execute(FOUND_ROWS[table])
        for row in cur:
            if table == "ledger":
                yield row[0], tuple(row[1:6]), ""
            elif table == "balances":
                yield (row[0], row[1]), (int(row[2]), int(row[3])), ""
            elif table == "rejected":
                yield (row[0], row[1]), (row[2], Line(row[3], row[4])), f"(id {row[5]})"
            else:
                yield (row[0], row[1]), (row[2],), f"(id {row[3]})"


def audit(
    conn,
    input_dir: str,
    sink_id_prefix: str = "payments",
    control_schema: str = "public",
    max_examples: int = 20,
    currencies: Optional[Mapping[str, int]] = None,
    fail_on_dead_letters: bool = False,
    kafka: Optional[tuple[str, int]] = None,
) -> AuditReport:
    """Compare the payments tables with what the input must give. Reads the database in one
    repeatable-read snapshot when `conn` is not already inside a transaction."""
    import psycopg

    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"input directory not found: {input_dir}")
    expectation = expect(input_dir, currencies, kafka)

    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if idle:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        reordered = resolve_contested(conn, expectation)
        expected_reasons = Counter(value[0] for value in _values(expectation.tables["rejected"]))
        expected_currency: Counter = Counter()
        for (_, currency), (balance, _) in expectation.tables["balances"].items():
            expected_currency[currency] += balance
        dead_letters = load_dead_letters(conn, control_schema, sink_id_prefix)
        if dead_letters is not None:
            dead_letters = route_payment_letters(dead_letters, expectation.tables)
        letters = _letters_by_key(dead_letters or [])
        diffs = {name: TableDiff(name, max_examples) for name in TABLES}
        balance_letters = _BalanceLetters(diffs["balances"], letters["balances"])
        found_reasons: Counter = Counter()
        found_currency: Counter = Counter()
        stray: list[tuple[DeadLetter, str]] = []
        dead_lettered_reasons: Counter = Counter()
        for name in TABLES:
            rows = _found_rows(conn, name)
            if name == "rejected":
                rows = _counting(rows, lambda value: found_reasons.update([value[0]]))
            elif name == "balances":
                rows = _counting_balances(rows, found_currency)
            if name == "balances":
                missing = compare(
                    diffs[name], expectation.tables[name], rows, balance_letters.explains
                )
                balance_letters.account_for_missing(missing)
                stray += balance_letters.rest()
            else:
                missing = compare(diffs[name], expectation.tables[name], rows)
                stray += _account_for_rows(
                    diffs[name],
                    missing,
                    letters[name],
                    dead_lettered_reasons if name == "rejected" else None,
                )
        pending = pending_work(conn, control_schema)
        positions = _check_positions(
            expectation.positions,
            read_positions(conn, books_sink_id(sink_id_prefix), control_schema),
        )
    return AuditReport(
        lines=expectation.lines,
        files=expectation.files,
        tables=diffs,
        rejected_by_reason={
            r: (expected_reasons[r], found_reasons[r])
            for r in set(expected_reasons) | set(found_reasons)
        },
        per_currency={
            c: (expected_currency[c], found_currency[c])
            for c in set(expected_currency) | set(found_currency)
        },
        dead_letters=dead_letters,
        stray_dead_letters=stray,
        pending=pending,
        fail_on_dead_letters=fail_on_dead_letters,
        dead_lettered_reasons=dead_lettered_reasons,
        dead_lettered_amounts=balance_letters.short_by_currency,
        contested=len(expectation.contested),
        reordered=reordered,
        positions=positions,
    )


def _check_positions(
    expected: Mapping[str, int], found: Mapping[str, Position]
) -> Optional[tuple[int, int, list[str]]]:
    """Every source of the input at its end in the sink's positions (None: it keeps none)."""
    if not found:
        return None
    differing = [
        f"{source}: the input ends at {last:,}, the position is "
        + (f"{found[source].last_position:,}" if source in found else "missing")
        for source, last in sorted(expected.items())
        if source not in found or found[source].last_position != last
    ]
    return len(expected), sum(1 for source in expected if source in found), differing


def _values(table: dict[tuple, Any]) -> Iterator[tuple]:
    for value in table.values():
        yield from (value if isinstance(value, _Several) else [value])


def _counting(rows, count):
    for key, value, note in rows:
        count(value)
        yield key, value, note


def _counting_balances(rows, per_currency: Counter):
    for key, value, note in rows:
        per_currency[key[1]] += value[0]
        yield key, value, note


def _letters_by_key(dead_letters: list[DeadLetter]) -> dict[str, dict[tuple, list[DeadLetter]]]:
    letters: dict[str, dict[tuple, list[DeadLetter]]] = {name: defaultdict(list) for name in TABLES}
    for letter in dead_letters:
        letters[letter.table][letter.key].append(letter)
    return letters


def _why(letters: list[DeadLetter]) -> str:
    reasons = Counter(f"sqlstate {letter.sqlstate}: {letter.message}" for letter in letters)
    return "; ".join(reason + (f" (x{n})" if n > 1 else "") for reason, n in reasons.items())


def _account_for_rows(
    diff: TableDiff,
    missing: list[tuple[tuple, tuple]],
    letters: dict[tuple, list[DeadLetter]],
    by_first_field: Optional[Counter] = None,
) -> list[tuple[DeadLetter, str]]:
    """A missing row with a dead letter under its key is dead-lettered, not missing; returns
    the dead letters that stand for no missing row. Counts the dead-lettered rows by their
    first value field (a rejected row's reason) into `by_first_field`."""
    for key, value in missing:
        if letters.get(key):
            diff.add(DEAD_LETTERED, Example(key, expected=value, note=_why([letters[key].pop()])))
            if by_first_field is not None:
                by_first_field[value[0]] += 1
        else:
            diff.add(MISSING, Example(key, expected=value))
    return [
        (letter, "its row is in the table too, or the input gives no such row")
        for rest in letters.values()
        for letter in rest
    ]


class _BalanceLetters:
    """Balances: a balance short by exactly the sum of its dead-lettered deltas is explained."""

    def __init__(self, diff: TableDiff, letters: dict[tuple, list[DeadLetter]]):
        self.diff, self.letters = diff, letters
        self.stray: list[tuple[DeadLetter, str]] = []
        self.short_by_currency: Counter = Counter()

    def explains(self, key: tuple, expected: tuple, found: tuple) -> bool:
        letters = self.letters.pop(key, None)
        if not letters:
            return False
        short = (expected[0] - found[0], expected[1] - found[1])
        total = (
            sum(letter.delta[0] for letter in letters),
            sum(letter.delta[1] for letter in letters),
        )
        if total == short:
            self.short_by_currency[key[1]] += short[0]
            self.diff.add(
                EXPLAINED,
                Example(
                    key,
                    expected,
                    found,
                    f"short by {short[0]:,} minor units and {short[1]:,} "
                    f"events, the sum of {len(letters)} dead-lettered delta(s): {_why(letters)}",
                ),
            )
            return True
        self.stray += [
            (letter, f"its balance is short by {short}, not by the dead-lettered {total}")
            for letter in letters
        ]
        return False

    def account_for_missing(self, missing: list[tuple[tuple, tuple]]) -> None:
        for key, value in missing:
            if not self.explains(key, value, (0, 0)):
                self.diff.add(MISSING, Example(key, expected=value))

    def rest(self) -> list[tuple[DeadLetter, str]]:
        return self.stray + [
            (letter, "its balance shows no shortfall")
            for rest in self.letters.values()
            for letter in rest
        ]


# --------------------------------------------------------------------------- command


def main(argv=None) -> int:
    from sinks.database import add_connection_arguments, connect

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="exit status: 0 clean, 1 differences, 2 usage or connection error",
    )
    parser.add_argument("--input", required=True, help="the directory the job read")
    add_connection_arguments(parser)
    add_sink_arguments(parser)
    parser.add_argument(
        "--max-diff",
        type=int,
        default=20,
        help="example rows shown per table and kind of difference",
    )
    parser.add_argument(
        "--fail-on-dead-letters",
        action="store_true",
        help="count dead-lettered rows as differences",
    )
    parser.add_argument(
        "--currencies",
        metavar="FILE",
        help="the job's --currencies table (default: transforms/currencies.json)."
        " After an upgrade that changed the rules, lines processed under "
        "the old ones show as differences: audit with each version's table",
    )
    parser.add_argument(
        "--kafka-topic",
        metavar="TOPIC",
        help="the job read --input's lines from this topic, produced into it "
        "by `jobs.produce` while it was empty: compare rejected and "
        "duplicate rows by partition and offset",
    )
    parser.add_argument(
        "--kafka-partitions",
        type=int,
        default=2,
        metavar="N",
        help="the topic's partitions (with --kafka-topic)",
    )
    args = parser.parse_args(argv)
    args.max_diff = max(args.max_diff, 0)
    if not os.path.isdir(args.input):
        print(f"audit: input directory not found: {args.input}", file=sys.stderr)
        return 2
    import psycopg

    try:
        with connect(
            args.db_url, args.db_user, args.password_env, args.password_file, connect_timeout=10
        ) as conn:
            from transforms.currencies import load_currencies

            currencies = load_currencies(args.currencies) if args.currencies else None
            report = audit(
                conn,
                args.input,
                args.sink_id_prefix,
                args.control_schema,
                args.max_diff,
                currencies=currencies,
                fail_on_dead_letters=args.fail_on_dead_letters,
                kafka=(args.kafka_topic, args.kafka_partitions) if args.kafka_topic else None,
            )
    except psycopg.errors.UndefinedTable as e:
        print(
            f"audit: {e.diag.message_primary}: is this the payments job's database? "
            "(python -m jobs.payments_schema creates the tables)",
            file=sys.stderr,
        )
        return 2
    except psycopg.OperationalError as e:
        print(f"audit: cannot reach the database: {e}", file=sys.stderr)
        return 2
    print(f"audit of {args.input} against {_where(args.db_url)}\n")
    print(report.render(args.max_diff))
    return 0 if report.clean else 1


def _where(db_url: str) -> str:
    """The URL without anything after '?' (no credentials are ever printed)."""
    return db_url.split("?", 1)[0]


if __name__ == "__main__":
    sys.exit(main())
