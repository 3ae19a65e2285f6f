"""Every rule and reason code of transforms.payments, one behaviour per test."""

import json
import pickle
from decimal import Decimal

import pytest

from tests.corpus import load_corpus
from transforms import payments as p
from transforms.currencies import DEFAULT_CURRENCIES, extend_currencies
from transforms.lines import raw_text
from transforms.payments import Payment, Reason, Rejection, parse_line
from transforms.reference import line_outcomes

BASE = {
    "event_id": "e-1",
    "account_id": "acc-1",
    "type": "charge",
    "amount": "10.50",
    "currency": "USD",
    "occurred_at": "2024-03-01T12:00:00+02:00",
}


def line(**overrides) -> bytes:
    obj = {**BASE, **overrides}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def reason(raw, **kwargs):
    result = parse_line(raw, **kwargs)
    assert isinstance(result, Rejection), result
    return result.reason


def test_valid_line_gives_payment_in_minor_units_and_utc():
    result = parse_line(line(), source="f.jsonl", line_number=3)
    assert result == Payment(
        "e-1",
        "acc-1",
        "charge",
        1050,
        "USD",
        "2024-03-01T10:00:00.000000+00:00",
        line().decode(),
        "f.jsonl",
        3,
    )


def test_refund_is_negative():
    assert parse_line(line(type="refund")).amount_minor == -1050


def test_bytes_and_str_give_the_same_result():
    assert parse_line(line()) == parse_line(line().decode())


def test_line_terminators_are_not_part_of_the_line():
    assert parse_line(line() + b"\r\n") == parse_line(line())
    assert parse_line(line() + b"\n").raw == line().decode()


@pytest.mark.parametrize(
    "amount,currency,minor",
    [
        ("10.50", "USD", 1050),
        ("10.5", "USD", 1050),
        ("10", "USD", 1000),
        ("0.01", "USD", 1),
        ("1500", "JPY", 1500),
        ("7.0", "JPY", 7),
        ("1.234", "BHD", 1234),
        ("1.5E+2", "USD", 15000),
        ("92233720368547758.07", "USD", 2**63 - 1),
        ("9223372036854775807", "JPY", 2**63 - 1),
    ],
)
def test_amount_conversion_is_exact(amount, currency, minor):
    assert parse_line(line(amount=amount, currency=currency)).amount_minor == minor


def test_json_number_amount_is_parsed_as_decimal_not_float():
    # 0.1 + 0.2 style float noise must never appear: 1.15 USD is 115, not 114.99999
    assert parse_line(line().replace(b'"10.50"', b"1.15")).amount_minor == 115
    assert parse_line(line().replace(b'"10.50"', b"20")).amount_minor == 2000


@pytest.mark.parametrize("amount", [Decimal("1.005"), Decimal("1e-40")])
def test_to_minor_units_never_rounds(amount):
    with pytest.raises(ValueError) as err:
        p.to_minor_units(amount, 2)
    assert err.value.args[0] == Reason.AMOUNT_NOT_EXACT


@pytest.mark.parametrize(
    "amount,expected",
    [
        ('"1e99999999999999999999"', Reason.INVALID_AMOUNT),
        ('"1e-99999999999999999999"', Reason.INVALID_AMOUNT),
        ('"1e999999999999999999"', Reason.AMOUNT_OUT_OF_RANGE),
        ('"1e-999999999999999999"', Reason.AMOUNT_NOT_EXACT),
        ("1e99999999999999999999", Reason.MALFORMED_JSON),
        ("1e999999999999999999", Reason.AMOUNT_OUT_OF_RANGE),
    ],
)
def test_exponents_beyond_the_decimal_range_are_rejections_not_crashes(amount, expected):
    # they raised decimal.InvalidOperation out of parse_line, which would stop the job
    assert reason(line().replace(b'"10.50"', amount.encode())) == expected


def test_format_minor_units_inverts_to_minor_units():
    for minor, units in [(1, 2), (1050, 2), (5, 0), (1234, 3), (-1050, 2)]:
        text = p.format_minor_units(minor, units)
        assert p.to_minor_units(Decimal(text.lstrip("-")), units) == abs(minor)


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b"", Reason.EMPTY_LINE),
        (b"  \t ", Reason.EMPTY_LINE),
        ("   ", Reason.EMPTY_LINE),
        (b"{" + b" " * p.MAX_LINE_BYTES + b"}", Reason.LINE_TOO_LONG),
        (b"\xff{}", Reason.INVALID_ENCODING),
        ("{\ud800}", Reason.INVALID_ENCODING),
        (b"{nope", Reason.MALFORMED_JSON),
        (b"[1]", Reason.NOT_AN_OBJECT),
        (line()[:-1] + b', "type": "refund"}', Reason.DUPLICATE_FIELD),
    ],
)
def test_line_level_reasons(raw, expected):
    assert reason(raw) == expected


@pytest.mark.parametrize("field", p.REQUIRED_FIELDS)
def test_missing_and_null_fields(field):
    assert reason(line(**{field: ...})) == Reason.MISSING_FIELD
    assert reason(line(**{field: None})) == Reason.MISSING_FIELD
    assert parse_line(line(**{field: ...})).detail == field


@pytest.mark.parametrize(
    "field,value",
    [
        ("event_id", 1),
        ("account_id", 2.5),
        ("type", ["charge"]),
        ("currency", 840),
        ("occurred_at", 1700000000),
        ("amount", True),
        ("amount", [1]),
        ("amount", {"v": 1}),
    ],
)
def test_mistyped_fields(field, value):
    assert reason(line(**{field: value})) == Reason.MISTYPED_FIELD


@pytest.mark.parametrize(
    "field,value",
    [
        ("event_id", ""),
        ("event_id", " e"),
        ("account_id", "a\n"),
        ("account_id", "a\u0000"),
        ("account_id", "a\u0085b"),
        ("account_id", "x" * (p.MAX_ID_LENGTH + 1)),
    ],
)
def test_invalid_identifiers(field, value):
    assert reason(line(**{field: value})) == Reason.INVALID_IDENTIFIER


def test_non_ascii_identifiers_are_kept_as_is():
    result = parse_line(line(account_id="kontø-账户").decode())
    assert result.account_id == "kontø-账户"


@pytest.mark.parametrize("value", ["transfer", "Charge", "CHARGE", "", "refund "])
def test_invalid_type(value):
    assert reason(line(type=value)) == Reason.INVALID_TYPE


@pytest.mark.parametrize("value", ["XXX", "usd", "", "US", "USDX"])
def test_unsupported_currency(value):
    assert reason(line(currency=value)) == Reason.UNSUPPORTED_CURRENCY


def test_currency_table_is_data_a_user_can_extend():
    assert reason(line(currency="ISK", amount="5")) == Reason.UNSUPPORTED_CURRENCY
    table = extend_currencies(DEFAULT_CURRENCIES, {"ISK": 0})
    assert parse_line(line(currency="ISK", amount="5"), currencies=table).amount_minor == 5
    assert pickle.loads(pickle.dumps(table)) == table
    with pytest.raises(ValueError):
        extend_currencies(DEFAULT_CURRENCIES, {"isk": 0})
    with pytest.raises(ValueError):
        extend_currencies(DEFAULT_CURRENCIES, {"ISK": -1})


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "1,5",
        " 1",
        "1 ",
        "+1",
        "0x10",
        "1_000",
        "",
        "1.",
        ".5",
        "$1",
        "1e",
        "--1",
    ],
)
def test_invalid_amount(value):
    assert reason(line(amount=value)) == Reason.INVALID_AMOUNT


@pytest.mark.parametrize("value", ["0", "0.00", "-0", "-1", "-0.01", "0e5"])
def test_non_positive_amount(value):
    assert reason(line(amount=value)) == Reason.NON_POSITIVE_AMOUNT
    assert reason(line(amount=value, type="refund")) == Reason.NON_POSITIVE_AMOUNT


@pytest.mark.parametrize(
    "value,currency", [("1.001", "USD"), ("1.5", "JPY"), ("0.0001", "BHD"), ("1e-3", "EUR")]
)
def test_amount_not_exact(value, currency):
    assert reason(line(amount=value, currency=currency)) == Reason.AMOUNT_NOT_EXACT


@pytest.mark.parametrize(
    "value,currency",
    [
        ("92233720368547758.08", "USD"),
        ("9223372036854775808", "JPY"),
        ("1e19", "JPY"),
        ("1e999999999", "USD"),
        ("9" * 5000, "USD"),
    ],
)
def test_amount_out_of_range(value, currency):
    assert reason(line(amount=value, currency=currency)) == Reason.AMOUNT_OUT_OF_RANGE


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00.000000+00:00"),
        ("2024-01-01T10:00:00z", "2024-01-01T10:00:00.000000+00:00"),
        ("2024-01-01T10:00:00.5+01:00", "2024-01-01T09:00:00.500000+00:00"),
        ("2024-01-01T00:30:00-05:30", "2024-01-01T06:00:00.000000+00:00"),
        ("2024-12-31T23:59:59.999999-01:00", "2025-01-01T00:59:59.999999+00:00"),
    ],
)
def test_timestamps_are_normalised_to_utc(value, expected):
    assert parse_line(line(occurred_at=value)).occurred_at == expected


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01",
        "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01 10:00:00Z",
        "2024-01-01T10:00:00.1234567Z",
        "2024-01-01T10:00:00+24:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-02:00",
        "tomorrow",
        "1704103200",
        "2024-01-01T10:00Z",
        "２０２４-01-01T10:00:00Z",
    ],
)
def test_invalid_timestamp(value):
    assert reason(line(occurred_at=value)) == Reason.INVALID_TIMESTAMP


@pytest.mark.parametrize("value", ["2024-01-01T10:00:00", "2024-01-01T10:00:00.25"])
def test_timestamp_without_offset(value):
    assert reason(line(occurred_at=value)) == Reason.TIMESTAMP_WITHOUT_OFFSET


def test_extra_fields_are_ignored():
    assert parse_line(line(note="x")).amount_minor == 1050


def test_check_order_first_failure_wins():
    # mistyped event_id and bad currency: field types are checked before values
    assert reason(line(event_id=5, currency="XXX")) == Reason.MISTYPED_FIELD
    assert reason(line(currency="XXX", amount="abc")) == Reason.UNSUPPORTED_CURRENCY
    assert reason(line(amount="-1.001")) == Reason.NON_POSITIVE_AMOUNT
    assert reason(line(amount="1.001", occurred_at="x")) == Reason.AMOUNT_NOT_EXACT


def test_rejections_keep_the_raw_line_storable():
    rejected = parse_line(b"\xc0\xaf")
    assert rejected.raw == "\\xc0\\xaf" and "\x00" not in parse_line(b"{\x00}").raw


def test_fingerprint_depends_on_normalised_content_only():
    a = parse_line(line(), source="a", line_number=1)
    b = parse_line(
        line(amount="10.5", occurred_at="2024-03-01T10:00:00Z"), source="b", line_number=9
    )
    c = parse_line(line(amount="10.51"))
    assert p.fingerprint(a) == p.fingerprint(b) != p.fingerprint(c)
    assert len(p.fingerprint(a)) == 64


def test_classify_duplicate():
    first = parse_line(line())
    seen = p.fingerprint(first)
    assert p.classify_duplicate(first, None) == p.NEW
    assert p.classify_duplicate(parse_line(line(amount="10.500")), seen) == p.DUPLICATE
    conflict = p.classify_duplicate(parse_line(line(type="refund"), line_number=2), seen)
    assert isinstance(conflict, Rejection)
    assert (conflict.reason, conflict.line_number) == (Reason.CONFLICTING_DUPLICATE, 2)
    assert conflict.raw == line(type="refund").decode()


def test_resolve_duplicates_first_wins():
    a, b, c = parse_line(line()), parse_line(line()), parse_line(line(amount="1"))
    accepted, dups, rejected = p.resolve_duplicates([a, c, b])
    assert (
        accepted == a
        and dups == [b]
        and [r.reason for r in rejected] == [Reason.CONFLICTING_DUPLICATE]
    )


def test_ledger_and_balance_rows():
    charge = parse_line(line())
    refund = parse_line(line(event_id="e-2", type="refund", amount="0.50"))
    other = parse_line(line(event_id="e-3", currency="JPY", amount="7"))
    rows = [p.ledger_row(x) for x in (charge, refund, other)]
    assert rows[0]._asdict() == {
        "event_id": "e-1",
        "account_id": "acc-1",
        "type": "charge",
        "amount_minor": 1050,
        "currency": "USD",
        "occurred_at": "2024-03-01T10:00:00.000000+00:00",
    }
    assert p.balances(rows) == [
        p.BalanceRow("acc-1", "JPY", 7, 1),
        p.BalanceRow("acc-1", "USD", 1000, 2),
    ]
    assert p.merge_balances([(1, 1), (2, 3)]) == (3, 4)


def test_every_reason_code_is_stable_and_covered_by_the_corpus():
    assert p.REASON_CODES == (
        "empty_line",
        "line_too_long",
        "invalid_encoding",
        "malformed_json",
        "not_an_object",
        "duplicate_field",
        "missing_field",
        "mistyped_field",
        "invalid_identifier",
        "invalid_type",
        "unsupported_currency",
        "invalid_amount",
        "non_positive_amount",
        "amount_not_exact",
        "amount_out_of_range",
        "invalid_timestamp",
        "timestamp_without_offset",
        "conflicting_duplicate",
    )
    assert {c.expected for c in load_corpus()} == set(p.REASON_CODES) | {"ledger", "duplicate"}


CORPUS = load_corpus()


def test_corpus_every_case_ends_where_expected():
    got = line_outcomes([c.line for c in CORPUS])
    wrong = [(c.name, c.expected, g) for c, g in zip(CORPUS, got) if c.expected != g]
    assert not wrong


@pytest.mark.parametrize(
    "case",
    [c for c in CORPUS if c.expected not in ("ledger", "duplicate", "conflicting_duplicate")],
    ids=lambda c: c.name,
)
def test_corpus_case_alone(case):
    result = parse_line(case.line)
    assert isinstance(result, Rejection) and result.reason == case.expected
    assert result.raw == raw_text(case.line)
