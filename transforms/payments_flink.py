"""The payments job's PyFlink parts, on the generic adapters of `transforms.flink_adapters`.

* The row types of the payments tables (`LEDGER_ROW_TYPE`, `BALANCE_ROW_TYPE`,
  `REJECTED_ROW_TYPE`, `DUPLICATE_ROW_TYPE`, from their declarations in transforms/tables.py)
  and of a valid payment as it leaves Python (`PAYMENT_ROW_TYPE`, filled by `payment_fields`).
* `parse_payment_lines(lines)`: `ParsePaymentFn` on numbered lines through
  `flink_adapters.parse_lines`, typed rows out: the one Python step of the payments job
  (`jobs.payments.build_pipeline`, whose graph the Beam/Flink parity test runs).
* `DeduplicateFunction`: first-wins duplicate handling over `classify_duplicate`, with the
  fingerprint in keyed ``ValueState`` (optional TTL); the job compares fingerprints on the JVM
  (`jvm_operators.deduplicate`) instead.
"""

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, Optional, cast

from pyflink.common import Time, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

from transforms import beam as payment_transforms
from transforms import tables
from transforms.flink_adapters import parse_lines, row_type
from transforms.payments import (
    DUPLICATE,
    NEW,
    Payment,
    Rejection,
    classify_duplicate,
    conflict_rejection,
    fingerprint,
    rejected_row,
)

__all__ = [
    "LEDGER_ROW_TYPE",
    "BALANCE_ROW_TYPE",
    "REJECTED_ROW_TYPE",
    "DUPLICATE_ROW_TYPE",
    "PAYMENT_ROW_TYPE",
    "payment_fields",
    "ParsedLines",
    "parse_payment_lines",
    "DeduplicateFunction",
]

#: The output tables' rows, from their declarations in transforms/tables.py.
LEDGER_ROW_TYPE = row_type(tables.LEDGER)
BALANCE_ROW_TYPE = row_type(tables.BALANCES)
REJECTED_ROW_TYPE = row_type(tables.REJECTED)
DUPLICATE_ROW_TYPE = row_type(tables.DUPLICATES)

#: A valid payment as it leaves Python: its ledger fields, the fingerprint that decides
#: duplicates, where it came from, and the rejection it becomes if it conflicts.
PAYMENT_ROW_TYPE = Types.ROW_NAMED(
    [
        "event_id",
        "fingerprint",
        "account_id",
        "type",
        "amount_minor",
        "currency",
        "occurred_at",
        "source",
        "line_number",
        "raw",
        "conflict_reason",
        "conflict_detail",
        "conflict_raw_bytes",
    ],
    [
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
    ],
)


def payment_fields(payment: Payment) -> tuple[Any, ...]:
    """A `Payment`'s `PAYMENT_ROW_TYPE` fields, in the type's order."""
    conflict = conflict_rejection(payment)
    return (
        payment.event_id,
        fingerprint(payment),
        payment.account_id,
        payment.type,
        payment.amount_minor,
        payment.currency,
        payment.occurred_at,
        payment.source,
        payment.line_number,
        payment.raw,
        conflict.reason,
        conflict.detail,
        conflict.raw_bytes,
    )


class ParsedLines(NamedTuple):
    payments: DataStream  # PAYMENT_ROW_TYPE
    rejected: DataStream  # REJECTED_ROW_TYPE


def parse_payment_lines(
    lines: DataStream,
    currencies: Optional[Mapping[str, int]] = None,
    batch_lines: Optional[int] = 500,
) -> ParsedLines:
    """`ParsePaymentFn` on numbered lines: typed payment rows and rejected rows (see
    `flink_adapters.parse_lines`, also for ``batch_lines``). The operators' names and uids are
    the job's since its first savepoint: ``line-batches``, ``parse-payments``, ``payments``,
    ``rejected-lines``."""
    parsed = parse_lines(
        lines,
        payment_transforms.ParsePaymentFn(currencies),
        PAYMENT_ROW_TYPE,
        tables.REJECTED,
        fields=payment_fields,
        rejected_tag=payment_transforms.REJECTED,
        batch_lines=batch_lines,
        name="parse-payments",
        rows_name="payments",
        batches_name="line-batches",
        rejected_name="rejected-lines",
    )
    return ParsedLines(parsed.rows, parsed.rejected)


class DeduplicateFunction(KeyedProcessFunction):
    """Keyed by event_id: first valid payment wins (main output), later ones go to the
    ``duplicates`` tag (the Payment) or the ``rejected`` tag (a `RejectedRow`).

    The accepted fingerprint lives in ``ValueState``; give ``ttl_days`` to expire it (a
    duplicate arriving after the TTL is then accepted again).
    """

    def __init__(
        self, duplicates_tag: OutputTag, rejected_tag: OutputTag, ttl_days: Optional[int] = None
    ):
        self.duplicates_tag = duplicates_tag
        self.rejected_tag = rejected_tag
        self.ttl_days = ttl_days
        self._seen: Any = None  # ValueState, from open()

    def open(self, runtime_context: Any) -> None:
        descriptor = ValueStateDescriptor("payment-fingerprint", Types.STRING())
        if self.ttl_days:
            descriptor.enable_time_to_live(
                StateTtlConfig.new_builder(Time.days(self.ttl_days)).build()
            )
        self._seen = runtime_context.get_state(descriptor)

    def process_element(self, payment: Payment, ctx: Any) -> Iterator[Any]:
        verdict = classify_duplicate(payment, self._seen.value())
        if verdict == NEW:
            self._seen.update(fingerprint(payment))
            yield payment
        elif verdict == DUPLICATE:
            yield self.duplicates_tag, payment
        else:
            yield self.rejected_tag, rejected_row(cast(Rejection, verdict))
