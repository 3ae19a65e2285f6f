"""Apache Beam layer over the pure payment rules (`transforms.payments`).

Thin on purpose: every decision is taken by a pure function; this module only wires them
into Beam. Runs on any Beam runner (tests use the DirectRunner) and, for the DoFns and the
CombineFn, inside PyFlink through `transforms.flink_adapters`.

Input elements are raw lines (``bytes`` or ``str``) or `SourceLine` tuples
``(source, line_number, line)``; give positions when the input may hold conflicting
duplicates, because the first payment in (source, line_number) order wins.

=======================  ==================================================================
`ParsePaymentFn`          DoFn: line -> `Payment` (main) | `RejectedRow` (tag ``rejected``)
`ParsePayments`           PTransform wrapping it; result ``.payments`` / ``.rejected``
`DeduplicateFn`           DoFn over ``(event_id, [Payment])``: accepted (main),
                          ``duplicates`` (Payment), ``rejected`` (conflicting duplicates)
`DeduplicatePayments`     key by event_id + GroupByKey + `DeduplicateFn`
`ToLedgerRows`            `Payment` -> `LedgerRow`
`BalanceCombineFn`        CombineFn: amount_minor values -> (balance_minor, event_count)
`ComputeBalances`         `LedgerRow`s -> `BalanceRow` per (account_id, currency)
`PaymentsBusinessStep`    the whole step: lines -> dict of PCollections ``ledger``,
                          ``balances``, ``rejected``, ``duplicates`` (the dropped Payments)
=======================  ==================================================================
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional, Union

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.typehints import KV
from apache_beam.typehints import Any as BeamAny

from transforms.lines import RejectedLine
from transforms.payments import (
    BalanceRow,
    LedgerRow,
    Payment,
    add_to_balance,
    balance_key,
    balance_row,
    ledger_row,
    merge_balances,
    parse_source_line,
    position_key,
    rejected_row,
    resolve_duplicates,
)

PAYMENTS = "payments"
REJECTED = "rejected"
DUPLICATES = "duplicates"
ACCEPTED = "accepted"


class ParsePaymentFn(beam.DoFn):
    """Parse one raw line: a `Payment` to the main output, a `RejectedRow` to ``rejected``.

    ``currencies`` is a currency table (default: `DEFAULT_CURRENCIES`).
    """

    def __init__(self, currencies: Optional[Mapping[str, int]] = None) -> None:
        # Beam's DoFn.__init__ (and so the constructors of DoFns without their own) is
        # unannotated; mypy's untyped_calls_exclude does not reach constructors.
        super().__init__()  # type: ignore[no-untyped-call]
        self.currencies = dict(currencies) if currencies is not None else None

    def process(self, element: Any) -> Iterable[Union[Payment, pvalue.TaggedOutput]]:
        result = parse_source_line(element, self.currencies)
        if isinstance(result, RejectedLine):
            yield pvalue.TaggedOutput(REJECTED, rejected_row(result))
        else:
            yield result


class ParsePayments(beam.PTransform[Any, Any]):
    """Lines -> ``DoOutputsTuple`` with ``.payments`` (`Payment`) and ``.rejected``."""

    def __init__(self, currencies: Optional[Mapping[str, int]] = None, label: Optional[str] = None):
        super().__init__(label)
        self.currencies = currencies

    # Beam reads a transform's and a DoFn's annotations as its type hints: `Any` where none
    # were declared before, so that typing this module changes nothing in the pipelines.
    def expand(self, lines: Any) -> Any:
        return lines | "ParseLine" >> beam.ParDo(ParsePaymentFn(self.currencies)).with_outputs(
            REJECTED, main=PAYMENTS
        )


class DeduplicateFn(beam.DoFn):
    """All payments of one event_id -> the first (main), ``duplicates``, ``rejected``.

    "First" is the smallest (source, line_number); positions unknown sort last, then by
    raw text, so the result never depends on the runner's grouping order.
    """

    def process(self, element: tuple[str, Iterable[Payment]]) -> Iterator[Any]:
        _, payments = element
        ordered = sorted(payments, key=lambda pay: (position_key(pay), pay.raw))
        accepted, duplicates, rejected = resolve_duplicates(ordered)
        if accepted is not None:
            yield accepted
        for payment in duplicates:
            yield pvalue.TaggedOutput(DUPLICATES, payment)
        for rejection in rejected:
            yield pvalue.TaggedOutput(REJECTED, rejected_row(rejection))


class DeduplicatePayments(beam.PTransform[Any, Any]):
    """Payments -> ``.accepted``, ``.duplicates`` (Payment) and ``.rejected`` (RejectedRow)."""

    def expand(self, payments: Any) -> Any:
        return (
            payments
            | "KeyByEventId"
            >> beam.Map(lambda pay: (pay.event_id, pay)).with_output_types(KV[str, BeamAny])
            | "GroupByEventId" >> beam.GroupByKey()
            | "FirstWins"
            >> beam.ParDo(DeduplicateFn()).with_outputs(  # type: ignore[no-untyped-call]
                DUPLICATES, REJECTED, main=ACCEPTED
            )
        )


class ToLedgerRows(beam.PTransform[Any, Any]):
    """`Payment` -> `LedgerRow`."""

    def expand(self, payments: Any) -> Any:
        return payments | "LedgerRow" >> beam.Map(ledger_row)


class BalanceCombineFn(beam.CombineFn):
    """Sum of ``amount_minor`` values and their count: accumulator ``(balance, count)``."""

    def create_accumulator(self) -> tuple[int, int]:
        return 0, 0

    def add_input(self, accumulator: tuple[int, int], amount_minor: int) -> tuple[int, int]:
        return add_to_balance(accumulator, amount_minor)

    def merge_accumulators(self, accumulators: Iterable[tuple[int, int]]) -> tuple[int, int]:
        return merge_balances(accumulators)

    def extract_output(self, accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator


class ComputeBalances(beam.PTransform[Any, Any]):
    """`LedgerRow`s -> one `BalanceRow` per (account_id, currency)."""

    def expand(self, ledger: Any) -> Any:
        return (
            ledger
            | "KeyByAccountCurrency"
            >> beam.Map(lambda row: (balance_key(row), row.amount_minor)).with_output_types(
                KV[tuple[str, str], int]
            )
            | "SumPerKey" >> beam.CombinePerKey(BalanceCombineFn())  # type: ignore[no-untyped-call]
            | "BalanceRow" >> beam.MapTuple(balance_row).with_output_types(BalanceRow)
        )


class PaymentsBusinessStep(beam.PTransform[Any, Any]):
    """The payments business step: raw lines -> ledger, balances, rejected, duplicates.

    Returns a dict of PCollections: ``ledger`` (`LedgerRow`), ``balances`` (`BalanceRow`),
    ``rejected`` (`RejectedRow`, parse errors and conflicting duplicates) and ``duplicates``
    (the dropped `Payment`s; count them for the duplicates figure).
    """

    def __init__(self, currencies: Optional[Mapping[str, int]] = None, label: Optional[str] = None):
        super().__init__(label)
        self.currencies = currencies

    def expand(self, lines: Any) -> Any:
        parsed = lines | "Parse" >> ParsePayments(self.currencies)
        deduped = parsed[PAYMENTS] | "Deduplicate" >> DeduplicatePayments()
        ledger = deduped[ACCEPTED] | "Ledger" >> ToLedgerRows()
        balances = ledger | "Balances" >> ComputeBalances()
        rejected = (parsed[REJECTED], deduped[REJECTED]) | "AllRejected" >> beam.Flatten()
        return {
            "ledger": ledger,
            "balances": balances,
            "rejected": rejected,
            "duplicates": deduped[DUPLICATES],
        }


__all__ = [
    "ParsePaymentFn",
    "ParsePayments",
    "DeduplicateFn",
    "DeduplicatePayments",
    "ToLedgerRows",
    "BalanceCombineFn",
    "ComputeBalances",
    "PaymentsBusinessStep",
    "PAYMENTS",
    "REJECTED",
    "DUPLICATES",
    "ACCEPTED",
    "LedgerRow",
    "BalanceRow",
]
