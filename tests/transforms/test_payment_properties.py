"""Property-based tests (hypothesis): conservation of lines and exactness of amounts."""

from collections import Counter
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transforms.strategies import fresh_lines, hostile_lines, line_streams, storable
from transforms import payments as p
from transforms.lines import raw_text, strip_line_terminator
from transforms.reference import LEDGER, iter_outcomes, process_lines

OUTCOMES = set(p.REASON_CODES) | {LEDGER, "duplicate"}


@settings(max_examples=200, deadline=None)
@given(line_streams())
def test_every_line_ends_in_exactly_one_place(lines):
    outcomes = [outcome for outcome, _ in iter_outcomes(lines)]
    assert len(outcomes) == len(lines) and set(outcomes) <= OUTCOMES
    result = process_lines(lines)
    assert len(result.ledger) + result.duplicates + len(result.rejected) == len(lines)
    counts = Counter(outcomes)
    assert counts[LEDGER] == len(result.ledger) and counts["duplicate"] == result.duplicates
    # the ledger never holds an event_id twice, balances are the ledger's sums
    assert len({row.event_id for row in result.ledger}) == len(result.ledger)
    assert sum(b.balance_minor for b in result.balances) == sum(
        r.amount_minor for r in result.ledger
    )
    assert sum(b.event_count for b in result.balances) == len(result.ledger)
    for row in result.ledger:
        assert (row.amount_minor > 0) == (row.type == "charge")
        assert abs(row.amount_minor) <= p.MAX_AMOUNT_MINOR


@settings(max_examples=100, deadline=None)
@given(line_streams(max_size=25))
def test_replaying_the_input_changes_nothing_but_the_duplicate_count(lines):
    once, twice = process_lines(lines), process_lines(lines + lines)
    assert once.ledger == twice.ledger and once.balances == twice.balances
    assert twice.duplicates == 2 * once.duplicates + len(once.ledger)


@settings(max_examples=200, deadline=None)
@given(fresh_lines)
def test_parse_never_raises_and_keeps_the_raw_line(line):
    result = p.parse_line(line)
    assert isinstance(result, (p.Payment, p.Rejection))
    assert result.raw == raw_text(strip_line_terminator(line))
    assert "\x00" not in result.raw
    result.raw.encode("utf-8")  # storable: no lone surrogates


@given(st.integers(min_value=1, max_value=p.MAX_AMOUNT_MINOR), st.integers(0, 4))
def test_minor_unit_conversion_round_trips(minor, units):
    text = p.format_minor_units(minor, units)
    assert p.to_minor_units(Decimal(text), units) == minor


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=6,
        min_value=Decimal("0.000001"),
        max_value=Decimal(10) ** 20,
    ),
    st.integers(0, 3),
)
def test_conversion_is_exact_or_rejected_never_rounded(amount, units):
    try:
        minor = p.to_minor_units(amount, units)
    except ValueError as err:
        assert err.args[0] in (p.Reason.AMOUNT_NOT_EXACT, p.Reason.AMOUNT_OUT_OF_RANGE)
    else:
        assert Decimal(minor).scaleb(-units) == amount


@settings(max_examples=500, deadline=None)
@given(st.one_of(hostile_lines, fresh_lines))
def test_hostile_strings_in_any_field_are_classified_storable_and_kept_losslessly(line):
    result = p.parse_line(line)
    assert isinstance(result, (p.Payment, p.Rejection))
    assert all(storable(value) for value in result if isinstance(value, str)), result
    stripped = strip_line_terminator(line)
    if isinstance(result, p.Rejection):
        # the exact line is always recoverable from what the rejected table stores
        assert (result.raw_bytes or result.raw.encode("utf-8")) == stripped
        assert result.raw_bytes is None or result.raw.encode("utf-8") != stripped
    else:
        assert result.raw.encode("utf-8") == stripped
        conflict = p.conflict_rejection(result)
        assert (conflict.raw_bytes or conflict.raw.encode("utf-8")) == stripped


def test_the_cases_that_stopped_the_job_are_storable_rejections():
    nul_type = (
        b'{"event_id":"n-1","account_id":"a","type":"char\\u0000ge","amount":"1",'
        b'"currency":"EUR","occurred_at":"2024-01-01T00:00:00Z"}'
    )
    surrogate_type = nul_type.replace(b"\\u0000", b"\\ud800")
    for line in (
        nul_type,
        surrogate_type,
        nul_type.replace(b'"currency":"EUR"', b'"currency":"\\udfff\\u0000"'),
    ):
        result = p.parse_line(line)
        assert isinstance(result, p.Rejection) and storable(result.detail), result
        assert result.raw_bytes is None and result.raw.encode("utf-8") == line
