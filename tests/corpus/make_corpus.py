"""Regenerate `corpus.jsonl` and `expected.tsv` (run from the project root):

    python tests/corpus/make_corpus.py

The cases are listed here so that each one has a name and an expected outcome; the files are
what tests read. The 1 MB line is not stored: `tests.corpus.load_corpus()` appends it.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def payment(_event_id, **overrides):
    obj = {
        "event_id": _event_id,
        "account_id": "acc-1",
        "type": "charge",
        "amount": "10.00",
        "currency": "USD",
        "occurred_at": "2024-01-01T10:00:00+00:00",
    }
    obj.update(overrides)
    for key in [k for k, v in obj.items() if v is ...]:
        del obj[key]
    return json.dumps(obj).encode()


def raw_payment(event_id, field, json_text):
    """A payment whose `field` is spliced in as raw JSON text (NaN, numbers, ...)."""
    marker = "@@RAW@@"
    return payment(event_id, **{field: marker}).replace(f'"{marker}"'.encode(), json_text)


CASES = [
    # ---- accepted
    ("valid_charge_usd", payment("c-1"), "ledger"),
    ("valid_refund_eur_json_number", raw_payment("c-2", "amount", b"12.5"), "ledger"),
    ("valid_jpy", payment("c-3", amount="1500", currency="JPY"), "ledger"),
    ("valid_jpy_trailing_zero", payment("c-4", amount="7.0", currency="JPY"), "ledger"),
    (
        "valid_bhd_three_decimals",
        payment("c-5", amount="1.234", currency="BHD", type="refund"),
        "ledger",
    ),
    ("valid_exponent_amount", payment("c-6", amount="1.5E+2"), "ledger"),
    ("valid_fraction_z", payment("c-7", occurred_at="2024-02-29T23:59:59.123456Z"), "ledger"),
    ("valid_negative_offset", payment("c-8", occurred_at="2024-01-01T00:30:00-05:30"), "ledger"),
    ("valid_max_int64_minor", payment("c-9", amount="92233720368547758.07"), "ledger"),
    ("valid_extra_field_ignored", payment("c-10", note="ignored"), "ledger"),
    ("valid_crlf_ending", payment("c-11") + b"\r", "ledger"),
    (
        "non_ascii_account_utf8",
        json.dumps(
            {
                "event_id": "c-12",
                "account_id": "kontø-ü-账户",
                "type": "charge",
                "amount": "3.00",
                "currency": "EUR",
                "occurred_at": "2024-01-01T10:00:00+01:00",
            },
            ensure_ascii=False,
        ).encode("utf-8"),
        "ledger",
    ),
    ("non_ascii_account_escaped", payment("c-13", account_id="caf\u00e9"), "ledger"),
    ("cr_between_tokens", payment("c-14").replace(b", ", b",\r", 1), "ledger"),
    # ---- duplicates
    ("exact_duplicate", payment("c-1"), "duplicate"),
    (
        "equivalent_duplicate",
        payment("c-1", amount="10.0", occurred_at="2024-01-01T12:00:00+02:00"),
        "duplicate",
    ),
    ("conflicting_duplicate_amount", payment("c-1", amount="10.01"), "conflicting_duplicate"),
    (
        "conflicting_duplicate_type",
        payment("c-3", amount="1500", currency="JPY", type="refund"),
        "conflicting_duplicate",
    ),
    ("rejected_first_then_valid_1", payment("c-15", amount="abc"), "invalid_amount"),
    ("rejected_first_then_valid_2", payment("c-15"), "ledger"),
    ("duplicate_of_conflict_winner", payment("c-15"), "duplicate"),
    # ---- malformed JSON
    ("truncated_object", b'{"event_id": "m-1", "account_id": "acc-1"', "malformed_json"),
    ("trailing_comma", payment("m-2")[:-1] + b", }", "malformed_json"),
    ("single_quotes", payment("m-3").replace(b'"', b"'"), "malformed_json"),
    ("plain_text", b"hello world", "malformed_json"),
    ("two_objects_on_one_line", payment("m-4") + payment("m-5"), "malformed_json"),
    ("nan_literal", raw_payment("m-6", "amount", b"NaN"), "malformed_json"),
    ("infinity_literal", raw_payment("m-7", "amount", b"Infinity"), "malformed_json"),
    ("minus_infinity_literal", raw_payment("m-8", "amount", b"-Infinity"), "malformed_json"),
    (
        "raw_control_char_in_string",
        payment("m-9", account_id="acc\x01x").replace(b"\\u0001", b"\x01"),
        "malformed_json",
    ),
    (
        "raw_tab_in_string",
        payment("m-10", account_id="acc\tx").replace(b"\\t", b"\t"),
        "malformed_json",
    ),
    ("nul_byte", payment("m-11") + b"\x00", "malformed_json"),
    ("vertical_tab_between_tokens", payment("m-12").replace(b", ", b",\x0b", 1), "malformed_json"),
    ("utf8_bom", b"\xef\xbb\xbf" + payment("m-13"), "malformed_json"),
    ("deep_nesting", b"[" * 20000 + b"]" * 20000, "malformed_json"),
    ("not_an_object_array", b"[1, 2, 3]", "not_an_object"),
    ("not_an_object_string", b'"just a string"', "not_an_object"),
    ("not_an_object_number", b"42", "not_an_object"),
    ("not_an_object_null", b"null", "not_an_object"),
    ("duplicate_key", payment("m-14")[:-1] + b', "amount": "99.00"}', "duplicate_field"),
    # ---- missing / mistyped fields
    *[
        (f"missing_{f}", payment(f"f-{i}", **{f: ...}), "missing_field")
        for i, f in enumerate(
            ["event_id", "account_id", "type", "amount", "currency", "occurred_at"]
        )
    ],
    ("null_amount", payment("f-10", amount=None), "missing_field"),
    ("empty_object", b"{}", "missing_field"),
    ("numeric_event_id", payment(17), "mistyped_field"),
    ("numeric_account_id", payment("f-11", account_id=5), "mistyped_field"),
    ("boolean_amount", payment("f-12", amount=True), "mistyped_field"),
    ("list_amount", payment("f-13", amount=["1.00"]), "mistyped_field"),
    ("object_amount", payment("f-14", amount={"value": "1.00"}), "mistyped_field"),
    ("numeric_type", payment("f-15", type=1), "mistyped_field"),
    ("numeric_currency", payment("f-16", currency=840), "mistyped_field"),
    ("numeric_timestamp", payment("f-17", occurred_at=1704103200), "mistyped_field"),
    # ---- identifiers
    ("empty_event_id", payment(""), "invalid_identifier"),
    ("blank_account_id", payment("i-1", account_id="   "), "invalid_identifier"),
    ("padded_event_id", payment(" i-2"), "invalid_identifier"),
    ("escaped_control_char_account", payment("i-3", account_id="acc\u0007"), "invalid_identifier"),
    ("escaped_nul_account", payment("i-4", account_id="acc\u0000"), "invalid_identifier"),
    (
        "lone_surrogate_account",
        payment("i-5").replace(b'"acc-1"', b'"acc\\ud800"'),
        "invalid_identifier",
    ),
    ("too_long_account", payment("i-6", account_id="a" * 300), "invalid_identifier"),
    # ---- type
    ("type_transfer", payment("t-1", type="transfer"), "invalid_type"),
    ("type_capitalised", payment("t-2", type="Charge"), "invalid_type"),
    ("type_empty", payment("t-3", type=""), "invalid_type"),
    # ---- currency
    ("currency_unknown", payment("u-1", currency="XXX"), "unsupported_currency"),
    ("currency_lower_case", payment("u-2", currency="usd"), "unsupported_currency"),
    ("currency_empty", payment("u-3", currency=""), "unsupported_currency"),
    # ---- amounts
    ("amount_text", payment("a-1", amount="abc"), "invalid_amount"),
    ("amount_nan_string", payment("a-2", amount="NaN"), "invalid_amount"),
    ("amount_infinity_string", payment("a-3", amount="Infinity"), "invalid_amount"),
    ("amount_comma_decimal", payment("a-4", amount="1,50"), "invalid_amount"),
    ("amount_padded", payment("a-5", amount=" 1.00"), "invalid_amount"),
    ("amount_plus_sign", payment("a-6", amount="+1.00"), "invalid_amount"),
    ("amount_hex", payment("a-7", amount="0x10"), "invalid_amount"),
    ("amount_underscore", payment("a-8", amount="1_000"), "invalid_amount"),
    ("amount_empty_string", payment("a-9", amount=""), "invalid_amount"),
    ("amount_trailing_dot", payment("a-10", amount="1."), "invalid_amount"),
    ("amount_leading_dot", payment("a-11", amount=".5"), "invalid_amount"),
    ("amount_currency_symbol", payment("a-12", amount="$1.00"), "invalid_amount"),
    ("amount_zero", payment("a-13", amount="0"), "non_positive_amount"),
    ("amount_zero_decimals", payment("a-14", amount="0.00"), "non_positive_amount"),
    ("amount_zero_number", raw_payment("a-15", "amount", b"0"), "non_positive_amount"),
    ("amount_negative_zero", payment("a-16", amount="-0"), "non_positive_amount"),
    ("amount_negative", payment("a-17", amount="-1.00"), "non_positive_amount"),
    ("amount_negative_number", raw_payment("a-18", "amount", b"-5"), "non_positive_amount"),
    (
        "amount_negative_refund",
        payment("a-19", amount="-1.00", type="refund"),
        "non_positive_amount",
    ),
    ("too_many_decimals_usd", payment("a-20", amount="1.001"), "amount_not_exact"),
    ("too_many_decimals_usd_number", raw_payment("a-21", "amount", b"0.015"), "amount_not_exact"),
    ("decimals_for_jpy", payment("a-22", amount="1.5", currency="JPY"), "amount_not_exact"),
    ("too_many_decimals_bhd", payment("a-23", amount="0.0001", currency="BHD"), "amount_not_exact"),
    ("tiny_exponent", payment("a-24", amount="1e-30"), "amount_not_exact"),
    ("beyond_int64_by_one", payment("a-25", amount="92233720368547758.08"), "amount_out_of_range"),
    (
        "beyond_int64_jpy_number",
        raw_payment("a-26", "amount", b"9223372036854775808"),
        "amount_out_of_range",
    ),
    ("huge_exponent", payment("a-27", amount="1e400"), "amount_out_of_range"),
    ("five_thousand_digits", raw_payment("a-28", "amount", b"9" * 5000), "amount_out_of_range"),
    # ---- timestamps
    (
        "timestamp_no_offset",
        payment("s-1", occurred_at="2024-01-01T10:00:00"),
        "timestamp_without_offset",
    ),
    (
        "timestamp_no_offset_fraction",
        payment("s-2", occurred_at="2024-01-01T10:00:00.5"),
        "timestamp_without_offset",
    ),
    ("timestamp_date_only", payment("s-3", occurred_at="2024-01-01"), "invalid_timestamp"),
    ("timestamp_month_13", payment("s-4", occurred_at="2024-13-01T00:00:00Z"), "invalid_timestamp"),
    ("timestamp_feb_30", payment("s-5", occurred_at="2023-02-29T00:00:00Z"), "invalid_timestamp"),
    ("timestamp_hour_25", payment("s-6", occurred_at="2024-01-01T25:00:00Z"), "invalid_timestamp"),
    ("timestamp_words", payment("s-7", occurred_at="yesterday"), "invalid_timestamp"),
    ("timestamp_epoch_string", payment("s-8", occurred_at="1704103200"), "invalid_timestamp"),
    (
        "timestamp_space_separator",
        payment("s-9", occurred_at="2024-01-01 10:00:00Z"),
        "invalid_timestamp",
    ),
    (
        "timestamp_nanoseconds",
        payment("s-10", occurred_at="2024-01-01T10:00:00.123456789Z"),
        "invalid_timestamp",
    ),
    (
        "timestamp_offset_24h",
        payment("s-11", occurred_at="2024-01-01T10:00:00+24:00"),
        "invalid_timestamp",
    ),
    (
        "timestamp_underflow_utc",
        payment("s-12", occurred_at="0001-01-01T00:00:00+01:00"),
        "invalid_timestamp",
    ),
    ("timestamp_empty", payment("s-13", occurred_at=""), "invalid_timestamp"),
    # ---- empty lines and encodings
    ("empty_line", b"", "empty_line"),
    ("blank_line_spaces", b"   ", "empty_line"),
    ("blank_line_tabs_cr", b"\t \r", "empty_line"),
    ("invalid_utf8_ff", b"\xff" + payment("e-1"), "invalid_encoding"),
    (
        "invalid_utf8_overlong",
        payment("e-2", account_id="X").replace(b"X", b"\xc0\xaf"),
        "invalid_encoding",
    ),
    (
        "invalid_utf8_truncated_multibyte",
        payment("e-3", account_id="X").replace(b"X", b"\xe2\x82"),
        "invalid_encoding",
    ),
    (
        "latin1_encoded_text",
        payment("e-4", account_id="X").replace(b"X", "café".encode("latin-1")),
        "invalid_encoding",
    ),
    (
        "utf8_encoded_surrogate",
        payment("e-5", account_id="X").replace(b"X", b"\xed\xa0\x80"),
        "invalid_encoding",
    ),
]


def main() -> None:
    names = [name for name, _, _ in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for name, line, _ in CASES:
        assert b"\n" not in line, name
    with open(HERE / "corpus.jsonl", "wb") as f:
        for _, line, _ in CASES:
            f.write(line + b"\n")
    with open(HERE / "expected.tsv", "w", encoding="utf-8") as f:
        f.write("line_number\tname\texpected\n")
        for number, (name, _, expected) in enumerate(CASES, start=1):
            f.write(f"{number}\t{name}\t{expected}\n")
    print(f"wrote {len(CASES)} cases")


if __name__ == "__main__":
    main()
