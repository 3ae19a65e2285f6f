"""The line-level checks every job shares (`transforms.lines`), on hostile input."""

import json
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.transforms.strategies import EDGE_CODE_POINTS, any_text, storable
from transforms.lines import (
    LineReason,
    LineRejected,
    check_identifier,
    decode_line,
    exact_bytes,
    parse_json_object,
    raw_text,
    require_fields,
    require_strings,
    storable_text,
    strip_line_terminator,
)

LIMIT = 64


def rejected(check, *args) -> LineRejected:
    with pytest.raises(LineRejected) as err:
        check(*args)
    return err.value


#: Any code point, surrogates included, so every category is drawn.
any_character = st.characters(codec=None, categories=None, exclude_categories=())


# --------------------------------------------------------------------------- the rejection


def test_a_rejection_carries_a_reason_and_a_storable_detail():
    error = LineRejected("orders_negative_quantity", "quantity \x00\ud800")
    assert error.reason == "orders_negative_quantity"
    assert error.detail == "quantity \\x00\\ud800" and storable(error.detail)
    assert error.args == ("orders_negative_quantity", "quantity \x00\ud800")
    assert LineRejected(LineReason.EMPTY_LINE).detail == ""


def test_reason_codes_are_their_names_in_lower_case():
    # the stored strings, in check order, are pinned with payments' own codes in
    # test_payment_rules.py (test_every_reason_code_is_stable_and_covered_by_the_corpus)
    codes = {k: v for k, v in vars(LineReason).items() if k.isupper()}
    assert len(codes) == 9 and all(code == name.lower() for name, code in codes.items())


# --------------------------------------------------------------------------- decode_line


@pytest.mark.parametrize("line", [b"", b" ", b" \t\r\x0b\x0c ", "", "  \t", "\u3000", "\x85"])
def test_empty_lines(line):
    assert rejected(decode_line, line, LIMIT).reason == LineReason.EMPTY_LINE


def test_only_ascii_whitespace_makes_bytes_empty_as_it_always_did():
    # str.strip() knows Unicode whitespace, bytes.strip() only ASCII: the stored reasons of
    # such lines depend on it, so the difference stays (and is pinned here)
    assert decode_line("\u3000".encode(), LIMIT) == "\u3000"
    assert decode_line(b"\xc2\x85", LIMIT) == "\x85"


def test_the_byte_limit_counts_utf8_bytes_not_characters():
    assert decode_line(b"x" * LIMIT, LIMIT) == "x" * LIMIT
    assert decode_line("é" * (LIMIT // 2), LIMIT) == "é" * (LIMIT // 2)
    for line in (b"x" * (LIMIT + 1), "é" * (LIMIT // 2 + 1), ("é" * LIMIT).encode()):
        error = rejected(decode_line, line, LIMIT)
        assert error.reason == LineReason.LINE_TOO_LONG
        size = len(line if isinstance(line, bytes) else line.encode())
        assert error.detail == f"{size} bytes"


def test_the_length_is_checked_before_the_encoding():
    assert rejected(decode_line, b"\xff" * (LIMIT + 1), LIMIT).reason == LineReason.LINE_TOO_LONG


@pytest.mark.parametrize(
    "line,offset",
    [
        (b"\xff{}", 0),
        (b"{}\xfe", 2),
        (b'{"a":"\xc0\xaf"}', 6),  # overlong encoding of "/"
        (b'{"a":"\xed\xa0\x80"}', 6),  # a surrogate, encoded as if it were a code point
        (b'{"a":"\xf4\x90\x80\x80"}', 6),  # beyond U+10FFFF
        (b'{"a":"\xe2\x82"}', 6),  # truncated sequence
        (b"\x80", 0),  # a lone continuation byte
    ],
)
def test_bytes_that_are_not_utf8(line, offset):
    error = rejected(decode_line, line, LIMIT)
    assert (error.reason, error.detail) == (LineReason.INVALID_ENCODING, f"byte {offset}")


@pytest.mark.parametrize("line", ["{\ud800}", "\udfff", "a\udbff\udc00"])  # reversed pair too
def test_a_str_with_a_lone_surrogate_is_not_utf8_either(line):
    error = rejected(decode_line, line, LIMIT)
    assert (error.reason, error.detail) == (LineReason.INVALID_ENCODING, "lone surrogate")


def test_a_bom_is_text_like_any_other_and_json_refuses_it():
    text = decode_line(b"\xef\xbb\xbf{}", LIMIT)
    assert text == "\ufeff{}"
    assert rejected(parse_json_object, text).reason == LineReason.MALFORMED_JSON


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_decode_exactly_or_are_rejected(line):
    try:
        text = decode_line(line, LIMIT)
    except LineRejected as error:
        assert error.reason in (
            LineReason.EMPTY_LINE,
            LineReason.LINE_TOO_LONG,
            LineReason.INVALID_ENCODING,
        )
    else:
        assert text.encode("utf-8") == line


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=any_character, max_size=40))
def test_any_text_is_kept_as_is_or_rejected(line):
    try:
        assert decode_line(line, LIMIT) == line
    except LineRejected as error:
        assert error.reason in (
            LineReason.EMPTY_LINE,
            LineReason.LINE_TOO_LONG,
            LineReason.INVALID_ENCODING,
        )


def test_strip_line_terminator_removes_one_newline_and_its_carriage_return():
    assert strip_line_terminator(b"a\r\n") == b"a" and strip_line_terminator("a\r\n") == "a"
    assert strip_line_terminator(b"a\n\n") == b"a\n" and strip_line_terminator("a\n\n") == "a\n"
    assert strip_line_terminator(b"a\r") == b"a\r" and strip_line_terminator("a\r") == "a\r"
    assert strip_line_terminator(b"\r\r\n") == b"\r"


# --------------------------------------------------------------------------- parse_json_object


def test_numbers_are_exact_decimals_never_floats():
    obj = parse_json_object('{"i": 20, "f": 1.15, "e": 1E-7, "n": -0, "z": 0.10}')
    assert obj == {
        "i": Decimal(20),
        "f": Decimal("1.15"),
        "e": Decimal("1E-7"),
        "n": Decimal("-0"),
        "z": Decimal("0.10"),
    }
    assert all(type(value) is Decimal for value in obj.values())
    assert str(obj["z"]) == "0.10"  # the written precision is kept


def test_huge_integers_are_exact():
    digits = "9" * 5000  # beyond int()'s default 4300-digit limit for str conversion
    assert parse_json_object(f'{{"n": {digits}}}')["n"] == Decimal(digits)


@pytest.mark.parametrize(
    "exponent", ["1e9999999999999999999", "-1E-9999999999999999999", "0e99999999999999999999"]
)
def test_a_number_beyond_the_decimal_range_is_malformed_not_a_crash(exponent):
    error = rejected(parse_json_object, f'{{"note": {exponent}}}')
    assert (error.reason, error.detail) == (
        LineReason.MALFORMED_JSON,
        f"number out of range: {exponent}",
    )


def test_huge_exponents_within_the_decimal_range_are_exact():
    obj = parse_json_object('{"a": 1e999999999999999999, "b": 1.5e-999999999999999999}')
    assert obj == {"a": Decimal("1e999999999999999999"), "b": Decimal("1.5e-999999999999999999")}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_constants_are_malformed(constant):
    error = rejected(parse_json_object, f'{{"a": {constant}}}')
    assert (error.reason, error.detail) == (LineReason.MALFORMED_JSON, f"{constant} is not JSON")


@pytest.mark.parametrize(
    "text",
    [
        "{nope",
        '{"a": 1',
        '{"a": 1} x',
        '{"a": "tab\tinside"}',  # control characters must be escaped inside strings
        '{"a": "\x00"}',
        "{'a': 1}",
        '{"a": 01}',
        '{"a": .5}',
        '{"a": 1,}',
        '{"a": "\\x41"}',
        '{"a": "\\u12"}',
    ],
)
def test_malformed_json(text):
    error = rejected(parse_json_object, text)
    assert error.reason == LineReason.MALFORMED_JSON and 0 < len(error.detail) <= 80


def test_nesting_too_deep_for_the_parser_is_malformed_not_a_crash():
    for text in ("[" * 100_000, '{"a":' * 100_000):
        error = rejected(parse_json_object, text)
        assert error.reason == LineReason.MALFORMED_JSON
        assert error.detail.startswith("maximum recursion depth exceeded")


@pytest.mark.parametrize(
    "text,key",
    [
        ('{"a": 1, "a": 1}', "a"),
        ('{"a": 1, "b": 2, "a": 3}', "a"),
        ('{"x": {"k": 1, "k": 2}}', "k"),
        ('{"x": [1, {"y": {"k": 1, "k": 2}}]}', "k"),
        ('{"a": 1, "\\u0061": 2}', "a"),  # the same key, escaped: keys compare once decoded
        ('{"\\ud800": 1, "\\ud800": 2}', "\\ud800"),  # the detail is storable
        ('{"a\\u0000": 1, "a\\u0000": 2}', "a\\x00"),
        ('{"a": 1, "a": 2} trailing', "a"),  # found as the object closes, before the rest
    ],
)
def test_a_key_twice_in_any_object_is_a_duplicate_field(text, key):
    error = rejected(parse_json_object, text)
    assert (error.reason, error.detail) == (LineReason.DUPLICATE_FIELD, key)


def test_a_duplicate_key_wins_over_not_an_object():
    error = rejected(parse_json_object, '[{"a": 1, "a": 1}]')
    assert error.reason == LineReason.DUPLICATE_FIELD


def test_keys_that_differ_only_in_case_or_normal_form_are_different_keys():
    nfc, nfd = "é", unicodedata.normalize("NFD", "é")
    obj = parse_json_object(json.dumps({"a": 1, "A": 2, nfc: 3, nfd: 4}))
    assert len(obj) == 4


@pytest.mark.parametrize(
    "text,kind",
    [
        ("[]", "list"),
        ("[1, 2]", "list"),
        ('"x"', "str"),
        ("1", "Decimal"),
        ("1.5", "Decimal"),
        ("true", "bool"),
        ("null", "NoneType"),
    ],
)
def test_json_that_is_not_an_object(text, kind):
    error = rejected(parse_json_object, text)
    assert (error.reason, error.detail) == (LineReason.NOT_AN_OBJECT, kind)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _as_parsed(value):
    """What parse_json_object gives back for ``value``: numbers as Decimal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, list):
        return [_as_parsed(item) for item in value]
    return {key: _as_parsed(item) for key, item in value.items()}


def _dumps(value) -> str:
    """JSON text of ``value`` with Decimals written exactly (json.dumps knows no Decimal)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(_dumps, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(any_text, json_values, max_size=6))
def test_any_json_object_round_trips_with_exact_numbers(obj):
    # any key, any string value, surrogates and NUL included: json.dumps escapes them
    assert parse_json_object(_dumps(obj)) == _as_parsed(obj)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=any_character, max_size=60),
        st.lists(st.sampled_from(EDGE_CODE_POINTS + ['{"', '":', "1e5", "[", "]", "}", ","]))
        .map("".join)
        .map(lambda text: "{" + text),
    )
)
@example('{"a": {"b": 1, "b": 1}}')
@example('{"\\ud800\\u0000": 1, "\\ud800\\u0000": 1}')
def test_any_text_is_an_object_or_a_storable_rejection(text):
    try:
        assert isinstance(parse_json_object(text), dict)
    except LineRejected as error:
        assert error.reason in (
            LineReason.MALFORMED_JSON,
            LineReason.DUPLICATE_FIELD,
            LineReason.NOT_AN_OBJECT,
        )
        assert storable(error.detail)


# --------------------------------------------------------------------------- fields


def test_require_fields_names_the_first_absent_or_null_one():
    obj = {"a": 1, "b": None, "c": "", "d": False, "e": Decimal(0)}
    require_fields(obj, ["a", "c", "d", "e"])  # empty, false and zero are present
    assert rejected(require_fields, obj, ["a", "b", "z"]).detail == "b"
    error = rejected(require_fields, obj, ["z", "b"])
    assert (error.reason, error.detail) == (LineReason.MISSING_FIELD, "z")


def test_require_strings_names_the_first_non_string():
    obj = {"s": "x", "n": Decimal(1), "b": True, "l": ["x"], "o": {}}
    require_strings(obj, ["s"])
    for field in ("n", "b", "l", "o", "absent"):
        error = rejected(require_strings, obj, ["s", field])
        assert (error.reason, error.detail) == (LineReason.MISTYPED_FIELD, field)


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize(
    "value", ["e-1", "kontø-账户", "a b", "\U0001f4b8", "x" * LIMIT, "\ufeffa"]
)
def test_identifiers_that_pass_are_returned_unchanged(value):
    assert check_identifier("event_id", value, LIMIT) == value


@pytest.mark.parametrize(
    "value,detail",
    [
        ("", "event_id empty or padded with whitespace"),
        (" e", "event_id empty or padded with whitespace"),
        ("e\n", "event_id empty or padded with whitespace"),
        ("e\u3000", "event_id empty or padded with whitespace"),
        ("\u2028e", "event_id empty or padded with whitespace"),
        ("x" * (LIMIT + 1), f"event_id longer than {LIMIT}"),
        ("a\x00b", "event_id has control characters"),
        ("a\x85b", "event_id has control characters"),
        ("a\x7fb", "event_id has control characters"),
        ("a\ud800b", "event_id has control characters"),
        ("a\udfff", "event_id has control characters"),
    ],
)
def test_identifiers_that_fail(value, detail):
    error = rejected(check_identifier, "event_id", value, LIMIT)
    assert (error.reason, error.detail) == (LineReason.INVALID_IDENTIFIER, detail)


@settings(max_examples=1000, deadline=None)
@given(any_character)
def test_every_code_point_class_inside_an_identifier(ch):
    # inside (not at an end, where whitespace is padding): only control characters and
    # surrogates are refused; noncharacters, format characters, unassigned code points pass
    value = f"a{ch}b"
    if unicodedata.category(ch) in ("Cc", "Cs"):
        assert rejected(check_identifier, "id", value, LIMIT).reason == (
            LineReason.INVALID_IDENTIFIER
        )
    else:
        assert check_identifier("id", value, LIMIT) == value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=any_character, max_size=LIMIT + 2))
def test_a_passing_identifier_is_storable_and_unpadded(value):
    try:
        check_identifier("id", value, LIMIT)
    except LineRejected as error:
        assert error.reason == LineReason.INVALID_IDENTIFIER
    else:
        assert storable(value) and value.strip() == value and 0 < len(value) <= LIMIT


# --------------------------------------------------------------------------- storable forms


def test_raw_text_is_readable_and_storable():
    assert raw_text(b"a\xffb") == "a\\xffb"
    assert raw_text(b"a\x00b") == "a\\x00b"
    assert raw_text("é\x01".encode()) == "é\x01"
    assert raw_text("a\ud800") == "a\\ud800"
    assert raw_text(bytearray(b"a\xff")) == raw_text(memoryview(b"a\xff")) == "a\\xff"


def test_exact_bytes_only_when_raw_text_had_to_escape():
    assert exact_bytes(b'{"a": "\xc3\xa9"}') is None
    assert exact_bytes(b"a\xff") == b"a\xff"
    assert exact_bytes(b"a\x00") == b"a\x00"
    assert exact_bytes("a\ud800") == b"a\xed\xa0\x80"  # how Python reads such bytes back
    assert exact_bytes("\ufeff{}") is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_any_bytes_are_kept_losslessly_in_storable_text(line):
    text = raw_text(line)
    assert storable(text)
    assert (exact_bytes(line) or text.encode("utf-8")) == line


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=any_character, max_size=40))
def test_any_text_is_kept_losslessly_in_storable_text(line):
    text = raw_text(line)
    assert storable(text) and storable(storable_text(line))
    assert (exact_bytes(line) or text.encode("utf-8")) == line.encode("utf-8", "surrogatepass")
