"""Payment rules as plain Python: one raw line in, a `Payment` or a `Rejection` out.

No Beam and no Flink import here: these functions are the business logic, and every runner
(the pure reference in `transforms.reference`, the Beam DoFns in `transforms.beam`, the PyFlink
job through `transforms.payments_flink`) calls them unchanged.

Input line (DESIGN.md section 2): one JSON object with
``event_id``, ``account_id`` (non-empty strings), ``type`` (``charge`` | ``refund``),
``amount`` (a decimal string such as ``"12.30"`` or a JSON number, > 0), ``currency``
(a code of the currency table, upper case) and ``occurred_at`` (ISO 8601 with an offset).
Other keys are ignored (forward compatible); a key that appears twice is rejected.

Checks run in this order; the first failing one gives the reason code (`Reason`):

1. ``empty_line``          the line is empty or only whitespace
2. ``line_too_long``       more than `MAX_LINE_BYTES` bytes (UTF-8)
3. ``invalid_encoding``    the bytes are not valid UTF-8
4. ``malformed_json``      not JSON (this includes the non-standard ``NaN``/``Infinity``
                           literals and control characters inside strings)
5. ``not_an_object``       valid JSON but not an object (array, string, number, ...)
6. ``duplicate_field``     the object has the same key twice
7. ``missing_field``       a required field is absent or ``null``
8. ``mistyped_field``      a field has the wrong JSON type (e.g. numeric ``event_id``,
                           boolean ``amount``)
9. ``invalid_identifier``  ``event_id``/``account_id`` empty, longer than `MAX_ID_LENGTH`,
                           with leading/trailing whitespace, control characters or lone
                           surrogates (PostgreSQL text cannot hold NUL or surrogates)
10. ``invalid_type``       ``type`` is not ``charge`` or ``refund``
11. ``unsupported_currency`` not a code of the currency table (codes are case-sensitive)
12. ``invalid_amount``     not a decimal number (``"abc"``, ``"NaN"``, ``"Infinity"``,
                           ``"1,5"``, ``" 1"``, ``"0x10"``, ``"1_000"``)
13. ``non_positive_amount`` zero or negative (also ``-0``, ``0.00``)
14. ``amount_not_exact``   more decimals than the currency has minor units (never rounded)
15. ``amount_out_of_range`` more than 2**63-1 minor units (PostgreSQL ``bigint``)
16. ``invalid_timestamp``  not ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)``, an
                           impossible date/time, more than 6 fractional digits (would need
                           rounding) or outside the representable range once in UTC
17. ``timestamp_without_offset`` a valid local date-time without ``Z``/offset

and, once a line is a valid payment, ``conflicting_duplicate`` from `classify_duplicate`
(same ``event_id`` already accepted with a different `fingerprint`).

Raw lines: `parse_line` accepts ``bytes`` (preferred: files are read as bytes) or ``str``; a
single trailing ``\\n`` (and a ``\\r`` before it) is not part of the line. Checks 1 to 9 are
the line-level checks every job shares (`transforms.lines`; payments sets their limits,
`MAX_LINE_BYTES` and `MAX_ID_LENGTH`, and names its fields), and so is the way a rejection
keeps the line: ``raw`` is `transforms.lines.raw_text(line)`, readable text PostgreSQL can
store, and ``raw_bytes`` is `transforms.lines.exact_bytes(line)`, the exact bytes when ``raw``
had to escape something, else ``None``. Every ``detail`` is storable too
(`transforms.lines.storable_text`).

Row shapes (NamedTuples; ``row._asdict()`` gives the plain dict):

* `LedgerRow`  (event_id, account_id, type, amount_minor, currency, occurred_at)
  ``amount_minor`` is an ``int`` (charge positive, refund negative); ``occurred_at`` is a
  ``str``: the instant normalised to UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (always 6
  fractional digits, so strings sort chronologically); PostgreSQL ``timestamptz`` parses it.
* `BalanceRow` (account_id, currency, balance_minor, event_count)
* `RejectedRow` (reason, raw, source, line_number, detail, raw_bytes): ``source`` (file) and
  ``line_number`` (1-based) are ``None`` when unknown; ``detail`` is a short human hint
  (e.g. the field name), not a stable value; ``raw_bytes`` see above.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, Optional, TypeAlias, Union, cast

from transforms.currencies import DEFAULT_CURRENCIES
from transforms.lines import (
    LineReason,
    LineRejected,
    RawLine,
    RejectedLine,
    SourceLine,
    check_identifier,
    decode_line,
    exact_bytes,
    parse_json_object,
    raw_text,
    require_fields,
    require_strings,
    strip_line_terminator,
)

#: Longest accepted line in bytes (UTF-8). Longer lines are rejected as ``line_too_long``
#: without being parsed (a 1 MB line is never a payment).
MAX_LINE_BYTES = 64 * 1024
#: Longest accepted ``event_id`` / ``account_id`` in characters.
MAX_ID_LENGTH = 256
#: Largest amount in minor units (PostgreSQL bigint / Java long).
MAX_AMOUNT_MINOR = 2**63 - 1

TYPES = ("charge", "refund")
REQUIRED_FIELDS = ("event_id", "account_id", "type", "amount", "currency", "occurred_at")


class Reason:
    """Stable reason codes of the ``rejected`` table (never rename one: data depends on it)."""

    # the line-level checks every job shares (transforms.lines), then payments' own
    EMPTY_LINE = LineReason.EMPTY_LINE
    LINE_TOO_LONG = LineReason.LINE_TOO_LONG
    INVALID_ENCODING = LineReason.INVALID_ENCODING
    MALFORMED_JSON = LineReason.MALFORMED_JSON
    NOT_AN_OBJECT = LineReason.NOT_AN_OBJECT
    DUPLICATE_FIELD = LineReason.DUPLICATE_FIELD
    MISSING_FIELD = LineReason.MISSING_FIELD
    MISTYPED_FIELD = LineReason.MISTYPED_FIELD
    INVALID_IDENTIFIER = LineReason.INVALID_IDENTIFIER
    INVALID_TYPE = "invalid_type"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    INVALID_AMOUNT = "invalid_amount"
    NON_POSITIVE_AMOUNT = "non_positive_amount"
    AMOUNT_NOT_EXACT = "amount_not_exact"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_WITHOUT_OFFSET = "timestamp_without_offset"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


#: Every reason code, in check order.
REASON_CODES: tuple[str, ...] = tuple(value for key, value in vars(Reason).items() if key.isupper())


class Payment(NamedTuple):
    """A valid payment, plus where it came from (for rejections found later)."""

    event_id: str
    account_id: str
    type: str
    amount_minor: int  # signed: charge > 0, refund < 0
    currency: str
    occurred_at: str  # UTC, YYYY-MM-DDTHH:MM:SS.ffffff+00:00
    raw: str = ""  # raw_text() of the line
    source: Optional[str] = None
    line_number: Optional[int] = None


#: A line that cannot be a ledger row, with its stable reason code: a refused line as every
#: job's rejected table stores it. (Type checks name `RejectedLine`: mypy refuses an alias of a
#: NamedTuple in isinstance.)
Rejection: TypeAlias = RejectedLine


class LedgerRow(NamedTuple):
    event_id: str
    account_id: str
    type: str
    amount_minor: int
    currency: str
    occurred_at: str


class BalanceRow(NamedTuple):
    account_id: str
    currency: str
    balance_minor: int
    event_count: int


class RejectedRow(NamedTuple):
    reason: str
    raw: str
    source: Optional[str] = None
    line_number: Optional[int] = None
    detail: str = ""
    raw_bytes: Optional[bytes] = None  # the exact line when `raw` is not (see exact_bytes)


# --------------------------------------------------------------------------- amounts

_DECIMAL_STRING = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


def parse_amount(value: Any) -> Decimal:
    """A JSON amount (decimal string or number) as an exact `Decimal`.

    Strings must look like JSON numbers (optional ``-``, digits, optional fraction and
    exponent); anything else, including ``NaN``/``Infinity``, raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise TypeError("amount must be a string or a number")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        if not _DECIMAL_STRING.match(value):
            raise ValueError(f"not a decimal number: {value[:40]!r}")
        try:
            amount = Decimal(value)
        except InvalidOperation:  # "1e99999999999999999999": no ValueError, it would stop the job
            raise ValueError(f"exponent out of range: {value[:40]!r}") from None
    elif isinstance(value, float):
        raise TypeError("floats are never accepted: parse JSON with parse_float=Decimal")
    else:
        raise TypeError("amount must be a string or a number")
    if not amount.is_finite():
        raise ValueError("amount is not finite")
    return amount


def to_minor_units(amount: Decimal, minor_units: int) -> int:
    """Exact conversion of a positive `Decimal` to integer minor units; never rounds.

    Pure integer arithmetic on the decimal's digits (no context precision, no floats).
    Raises `ValueError` with a reason code as its first argument when the amount is not
    positive (``non_positive_amount``), needs more decimals than ``minor_units``
    (``amount_not_exact``) or exceeds `MAX_AMOUNT_MINOR` (``amount_out_of_range``).
    """
    if not amount.is_finite():
        raise ValueError(Reason.INVALID_AMOUNT, "amount is not finite")
    sign, digits, exponent = amount.as_tuple()
    if sign or not any(digits):
        raise ValueError(Reason.NON_POSITIVE_AMOUNT, "amount must be > 0")
    # Work on the digit tuple: no int() of unbounded digit strings, no powers of huge exponents.
    digits = digits[next(i for i, d in enumerate(digits) if d) :]  # drop leading zeros
    shift = cast(int, exponent) + minor_units  # an int: the amount is finite
    if shift < 0:
        dropped = digits[shift:] if -shift <= len(digits) else digits
        if -shift > len(digits) or any(dropped):
            raise ValueError(
                Reason.AMOUNT_NOT_EXACT, f"more than {minor_units} decimals for the currency"
            )
        digits, shift = digits[:shift], 0
    if len(digits) + shift > 19:  # >= 10**19 minor units
        raise ValueError(Reason.AMOUNT_OUT_OF_RANGE, "amount beyond 64-bit minor units")
    minor: int = int("".join(map(str, digits))) * 10**shift
    if minor > MAX_AMOUNT_MINOR:
        raise ValueError(Reason.AMOUNT_OUT_OF_RANGE, "amount beyond 64-bit minor units")
    return minor


def format_minor_units(amount_minor: int, minor_units: int) -> str:
    """The decimal string of an amount in minor units (inverse of `to_minor_units`)."""
    sign = "-" if amount_minor < 0 else ""
    digits = str(abs(amount_minor))
    if minor_units == 0:
        return sign + digits
    digits = digits.rjust(minor_units + 1, "0")
    return f"{sign}{digits[:-minor_units]}.{digits[-minor_units:]}"


# --------------------------------------------------------------------------- timestamps

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?P<offset>Z|z|[+-]\d{2}:\d{2})?$"
)


def normalise_timestamp(value: str) -> str:
    """ISO 8601 with offset -> UTC ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``.

    Raises ``ValueError(reason_code, detail)``: ``timestamp_without_offset`` when the offset
    is missing, else ``invalid_timestamp``.
    """
    match = _TIMESTAMP.match(value)
    if not match:
        raise ValueError(Reason.INVALID_TIMESTAMP, "expected YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM")
    fraction = match.group(7)
    if fraction and len(fraction) > 7:
        raise ValueError(Reason.INVALID_TIMESTAMP, "more than microsecond precision")
    if match.group("offset") is None:
        raise ValueError(Reason.TIMESTAMP_WITHOUT_OFFSET, "no Z or +HH:MM offset")
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    try:
        parsed = datetime.fromisoformat(text)
        utc = parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise ValueError(Reason.INVALID_TIMESTAMP, str(exc)[:80]) from None
    return utc.isoformat(timespec="microseconds")


# --------------------------------------------------------------------------- parsing


#: The fields that are JSON strings (``amount`` may also be a number: checked on its own).
STRING_FIELDS = ("event_id", "account_id", "type", "currency", "occurred_at")


def _validate(
    obj: dict[str, Any],
    currencies: Mapping[str, int],
    raw: str,
    source: Optional[str],
    line_number: Optional[int],
) -> Payment:
    """The payment in a line's JSON object, or `LineRejected` (checks 7 to 17, in order)."""
    require_fields(obj, REQUIRED_FIELDS)
    require_strings(obj, STRING_FIELDS)
    if isinstance(obj["amount"], bool) or not isinstance(obj["amount"], (str, Decimal, int)):
        raise LineRejected(Reason.MISTYPED_FIELD, "amount")
    event_id = check_identifier("event_id", obj["event_id"], MAX_ID_LENGTH)
    account_id = check_identifier("account_id", obj["account_id"], MAX_ID_LENGTH)
    kind = obj["type"]
    if kind not in TYPES:
        raise LineRejected(Reason.INVALID_TYPE, kind[:40])
    currency = obj["currency"]
    if currency not in currencies:
        raise LineRejected(Reason.UNSUPPORTED_CURRENCY, currency[:40])
    try:
        amount = parse_amount(obj["amount"])
    except (ValueError, TypeError) as exc:
        raise LineRejected(Reason.INVALID_AMOUNT, str(exc)) from None
    try:
        minor = to_minor_units(amount, currencies[currency])
        occurred_at = normalise_timestamp(obj["occurred_at"])
    except ValueError as exc:
        raise LineRejected(*exc.args) from None
    return Payment(
        event_id,
        account_id,
        kind,
        minor if kind == "charge" else -minor,
        currency,
        occurred_at,
        raw,
        source,
        line_number,
    )


def parse_line(
    line: RawLine,
    currencies: Optional[Mapping[str, int]] = None,
    source: Optional[str] = None,
    line_number: Optional[int] = None,
) -> Union[Payment, Rejection]:
    """Parse and validate one raw line (``bytes`` or ``str``) into a `Payment` or `Rejection`.

    Never raises for bad input: every problem becomes a `Rejection` with a reason code (see
    the module docstring for the list and order). ``currencies`` defaults to
    `transforms.currencies.DEFAULT_CURRENCIES`.
    """
    if currencies is None:
        currencies = DEFAULT_CURRENCIES
    if isinstance(line, (bytearray, memoryview)):
        line = bytes(line)
    line = strip_line_terminator(line)
    raw = raw_text(line)
    try:
        obj = parse_json_object(decode_line(line, MAX_LINE_BYTES))
        return _validate(obj, currencies, raw, source, line_number)
    except LineRejected as rejected:
        return Rejection(
            rejected.reason, raw, source, line_number, rejected.detail, exact_bytes(line, raw)
        )


def parse_source_line(
    item: Union[SourceLine, RawLine], currencies: Optional[Mapping[str, int]] = None
) -> Union[Payment, Rejection]:
    """`parse_line` for a `SourceLine` (or a bare raw line without position)."""
    if isinstance(item, (bytes, str, bytearray, memoryview)):
        return parse_line(item, currencies)
    source, line_number, line = item
    return parse_line(line, currencies, source, line_number)


# --------------------------------------------------------------------------- duplicates


def fingerprint(payment: Payment) -> str:
    """Content fingerprint (SHA-256 hex) of a payment's ledger fields.

    Computed on the *normalised* values, so ``"10.5"``, ``"10.50"`` and ``10.5`` (and the
    same instant written with different offsets) are the same content. Position and raw
    text are not part of it. Changing this function invalidates fingerprints kept in Flink
    state: treat it as a stored format.
    """
    fields = [
        payment.event_id,
        payment.account_id,
        payment.type,
        payment.amount_minor,
        payment.currency,
        payment.occurred_at,
    ]
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


NEW = "new"
DUPLICATE = "duplicate"


def classify_duplicate(payment: Payment, seen_fingerprint: Optional[str]) -> Union[str, Rejection]:
    """``'new'``, ``'duplicate'`` or a ``conflicting_duplicate`` `Rejection`.

    ``seen_fingerprint`` is the fingerprint of the payment already accepted for the same
    ``event_id`` (``None`` if none): the Flink job keeps it in keyed ``ValueState``. Only
    accepted payments set it; rejected lines never do.
    """
    if seen_fingerprint is None:
        return NEW
    if seen_fingerprint == fingerprint(payment):
        return DUPLICATE
    return conflict_rejection(payment)


def conflict_rejection(payment: Payment) -> Rejection:
    """The rejection of ``payment`` when its ``event_id`` was already accepted with other
    content (a job that compares fingerprints elsewhere, e.g. on the JVM, takes it from here)."""
    return Rejection(
        Reason.CONFLICTING_DUPLICATE,
        payment.raw,
        payment.source,
        payment.line_number,
        "event_id already accepted with other content",
    )


def position_key(item: Union[Payment, Rejection, SourceLine]) -> tuple[str, int]:
    """Sort key "first in (source, line_number) order": unknown positions sort last."""
    source = item.source if item.source is not None else "\uffff"
    line_number = item.line_number if item.line_number is not None else 2**62
    return source, line_number


def resolve_duplicates(
    payments: Iterable[Payment],
) -> tuple[Optional[Payment], list[Payment], list[Rejection]]:
    """All payments of one ``event_id``, in arrival order -> (accepted, duplicates, rejected).

    The first payment is accepted; later ones are duplicates or conflicting duplicates of it.
    """
    accepted: Optional[Payment] = None
    seen: Optional[str] = None
    duplicates: list[Payment] = []
    rejected: list[Rejection] = []
    for payment in payments:
        verdict = classify_duplicate(payment, seen)
        if verdict == NEW:
            accepted, seen = payment, fingerprint(payment)
        elif verdict == DUPLICATE:
            duplicates.append(payment)
        else:
            rejected.append(cast(Rejection, verdict))
    return accepted, duplicates, rejected


# --------------------------------------------------------------------------- rows


def ledger_row(payment: Payment) -> LedgerRow:
    return LedgerRow(
        payment.event_id,
        payment.account_id,
        payment.type,
        payment.amount_minor,
        payment.currency,
        payment.occurred_at,
    )


def rejected_row(rejection: Rejection) -> RejectedRow:
    return RejectedRow(*rejection)


def balance_key(row: Union[LedgerRow, Payment]) -> tuple[str, str]:
    return row.account_id, row.currency


def add_to_balance(accumulator: tuple[int, int], amount_minor: int) -> tuple[int, int]:
    """(balance_minor, event_count) + one ledger amount."""
    return accumulator[0] + amount_minor, accumulator[1] + 1


def merge_balances(accumulators: Iterable[tuple[int, int]]) -> tuple[int, int]:
    balance, count = 0, 0
    for b, c in accumulators:
        balance, count = balance + b, count + c
    return balance, count


def balance_row(key: tuple[str, str], accumulator: tuple[int, int]) -> BalanceRow:
    return BalanceRow(key[0], key[1], accumulator[0], accumulator[1])


def balances(rows: Iterable[LedgerRow]) -> list[BalanceRow]:
    """Balances per (account_id, currency), sorted by key."""
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        key = balance_key(row)
        totals[key] = add_to_balance(totals.get(key, (0, 0)), row.amount_minor)
    return [balance_row(key, acc) for key, acc in sorted(totals.items())]
