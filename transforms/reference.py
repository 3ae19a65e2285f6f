"""The whole payments business step in plain Python: the reference every runner must match.

`process_lines(lines)` parses, validates, de-duplicates and aggregates an iterable of raw lines
and returns an `Outcome`; the Beam pipeline (`transforms.pipeline`) and the PyFlink job must
produce the same ledger, balances and rejected rows and the same duplicate count on the same
input (tests compare with `Outcome.normalised()`).

Duplicates: the first *valid* payment of an ``event_id`` in input order is accepted; a later
one with the same fingerprint is a duplicate, with another fingerprint a
``conflicting_duplicate`` rejection. (The Beam pipeline orders by (source, line_number); the
Flink job by arrival, which is file order within one file.)
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple, Optional, Union, cast

from transforms.lines import RawLine, RejectedLine, SourceLine, read_lines
from transforms.payments import (
    DUPLICATE,
    NEW,
    BalanceRow,
    LedgerRow,
    Payment,
    RejectedRow,
    Rejection,
    balances,
    classify_duplicate,
    fingerprint,
    ledger_row,
    parse_line,
    rejected_row,
)


class Outcome(NamedTuple):
    """Result of the business step. ``lines == len(ledger) + duplicates + len(rejected)``."""

    ledger: list[LedgerRow]
    balances: list[BalanceRow]
    rejected: list[RejectedRow]
    duplicates: int
    lines: int

    def normalised(
        self,
    ) -> tuple[list[LedgerRow], list[BalanceRow], list[RejectedRow], int]:
        """Order-independent form for comparisons: sorted rows and the duplicate count."""

        def key(row: RejectedRow) -> tuple[object, ...]:
            return tuple("" if v is None else v for v in row)

        return (
            sorted(self.ledger),
            sorted(self.balances),
            sorted(self.rejected, key=key),
            self.duplicates,
        )


def _numbered(
    lines: Iterable[Union[RawLine, SourceLine]], source: Optional[str]
) -> Iterator[SourceLine]:
    for number, item in enumerate(lines, start=1):
        if isinstance(item, SourceLine):
            yield item
        else:
            yield SourceLine(source, number, item)


LEDGER = "ledger"


def iter_outcomes(
    lines: Iterable[Union[RawLine, SourceLine]],
    source: Optional[str] = None,
    currencies: Optional[Mapping[str, int]] = None,
) -> Iterator[tuple[str, Union[LedgerRow, Payment, RejectedRow]]]:
    """One ``(outcome, row)`` per input line, in input order: ``("ledger", LedgerRow)``,
    ``("duplicate", Payment)`` or ``(reason_code, RejectedRow)``."""
    seen: dict[str, str] = {}
    for item in _numbered(lines, source):
        result = parse_line(item.line, currencies, item.source, item.line_number)
        if isinstance(result, RejectedLine):
            yield result.reason, rejected_row(result)
            continue
        verdict = classify_duplicate(result, seen.get(result.event_id))
        if verdict == NEW:
            seen[result.event_id] = fingerprint(result)
            yield LEDGER, ledger_row(result)
        elif verdict == DUPLICATE:
            yield DUPLICATE, result
        else:
            conflict = cast(Rejection, verdict)
            yield conflict.reason, rejected_row(conflict)


def line_outcomes(
    lines: Iterable[Union[RawLine, SourceLine]], currencies: Optional[Mapping[str, int]] = None
) -> list[str]:
    """Where each line ends: ``"ledger"``, ``"duplicate"`` or its reason code."""
    return [outcome for outcome, _ in iter_outcomes(lines, currencies=currencies)]


def process_lines(
    lines: Iterable[Union[RawLine, SourceLine]],
    source: Optional[str] = None,
    currencies: Optional[Mapping[str, int]] = None,
) -> Outcome:
    """Run the business step over raw lines (bytes/str, numbered from 1 under ``source``)
    or `SourceLine`s (kept as given), in input order."""
    ledger: list[LedgerRow] = []
    rejected: list[RejectedRow] = []
    duplicates = 0
    count = 0
    for outcome, row in iter_outcomes(lines, source, currencies):
        count += 1
        if outcome == LEDGER:
            ledger.append(cast(LedgerRow, row))
        elif outcome == DUPLICATE:
            duplicates += 1
        else:
            rejected.append(cast(RejectedRow, row))
    return Outcome(ledger, balances(ledger), rejected, duplicates, count)


def process_files(paths: Iterable[str], currencies: Optional[Mapping[str, int]] = None) -> Outcome:
    """`process_lines` over files in the given order (see `read_lines`)."""

    def lines() -> Iterator[SourceLine]:
        for path in paths:
            yield from read_lines(path)

    return process_lines(lines(), currencies=currencies)


__all__ = [
    "Outcome",
    "process_lines",
    "line_outcomes",
    "iter_outcomes",
    "process_files",
    "read_lines",
    "Payment",
]
