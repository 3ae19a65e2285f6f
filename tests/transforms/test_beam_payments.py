"""Each Beam transform and the composite, with TestPipeline + assert_that (DirectRunner)."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.corpus import load_corpus
from transforms import beam as pb
from transforms.currencies import DEFAULT_CURRENCIES, extend_currencies
from transforms.lines import SourceLine, raw_text
from transforms.payments import BalanceRow, LedgerRow, RejectedRow, parse_line
from transforms.reference import process_lines
from transforms.sample_data import generate_lines

pytestmark = pytest.mark.beam


def line(event_id="e-1", **kw) -> bytes:
    obj = {
        "event_id": event_id,
        "account_id": "acc-1",
        "type": "charge",
        "amount": "1.00",
        "currency": "USD",
        "occurred_at": "2024-01-01T00:00:00Z",
        **kw,
    }
    return json.dumps(obj).encode()


def at(n, raw, source="f"):
    return SourceLine(source, n, raw)


def test_parse_payments_splits_main_and_rejected(pipeline):
    inputs = [at(1, line()), at(2, b"\xff"), at(3, line("e-2", amount="0"))]
    with pipeline as p:
        parsed = p | beam.Create(inputs) | pb.ParsePayments()
        assert_that(
            parsed[pb.PAYMENTS] | beam.Map(lambda pay: (pay.event_id, pay.amount_minor)),
            equal_to([("e-1", 100)]),
            label="payments",
        )
        assert_that(
            parsed[pb.REJECTED],
            equal_to(
                [
                    RejectedRow("invalid_encoding", "\\xff", "f", 2, "byte 0", b"\xff"),
                    RejectedRow(
                        "non_positive_amount",
                        line("e-2", amount="0").decode(),
                        "f",
                        3,
                        "amount must be > 0",
                    ),
                ]
            ),
            label="rejected",
        )


def test_parse_payments_takes_bare_lines_and_a_custom_currency_table(pipeline):
    table = extend_currencies(DEFAULT_CURRENCIES, {"ISK": 0})
    with pipeline as p:
        parsed = (
            p
            | beam.Create([line(currency="ISK", amount="5"), "  "])
            | pb.ParsePayments(currencies=table)
        )
        assert_that(
            parsed.payments | beam.Map(lambda pay: pay.amount_minor),
            equal_to([5]),
            label="payments",
        )
        assert_that(
            parsed.rejected | beam.Map(lambda r: r.reason),
            equal_to(["empty_line"]),
            label="rejected",
        )


def test_deduplicate_first_position_wins_whatever_the_order(pipeline):
    payments = [
        parse_line(line(), source="f", line_number=5),
        parse_line(line(amount="2.00"), source="f", line_number=2),
        parse_line(line(), source="f", line_number=9),
        parse_line(line("e-2"), source="g", line_number=1),
    ]
    with pipeline as p:
        out = p | beam.Create(payments) | pb.DeduplicatePayments()
        assert_that(
            out.accepted | beam.Map(lambda pay: (pay.event_id, pay.line_number)),
            equal_to([("e-1", 2), ("e-2", 1)]),
            label="accepted",
        )
        assert_that(
            out.rejected | beam.Map(lambda r: (r.reason, r.line_number)),
            equal_to([("conflicting_duplicate", 5), ("conflicting_duplicate", 9)]),
            label="rejected",
        )
        assert_that(out.duplicates, equal_to([]), label="duplicates")


def test_to_ledger_rows(pipeline):
    with pipeline as p:
        rows = p | beam.Create([parse_line(line(type="refund"))]) | pb.ToLedgerRows()
        assert_that(
            rows,
            equal_to(
                [
                    LedgerRow(
                        "e-1", "acc-1", "refund", -100, "USD", "2024-01-01T00:00:00.000000+00:00"
                    )
                ]
            ),
        )


def test_balance_combine_fn_directly():
    fn = pb.BalanceCombineFn()
    acc = fn.add_input(fn.add_input(fn.create_accumulator(), 5), -2)
    assert fn.extract_output(fn.merge_accumulators([acc, (10, 1), fn.create_accumulator()])) == (
        13,
        3,
    )


def test_compute_balances(pipeline):
    rows = [
        LedgerRow("e1", "a", "charge", 100, "USD", "t"),
        LedgerRow("e2", "a", "refund", -30, "USD", "t"),
        LedgerRow("e3", "a", "charge", 5, "JPY", "t"),
        LedgerRow("e4", "b", "charge", 1, "USD", "t"),
    ]
    with pipeline as p:
        balances = p | beam.Create(rows) | pb.ComputeBalances()
        assert_that(
            balances,
            equal_to(
                [
                    BalanceRow("a", "USD", 70, 2),
                    BalanceRow("a", "JPY", 5, 1),
                    BalanceRow("b", "USD", 1, 1),
                ]
            ),
        )


def _expect(outcome, results):
    assert_that(results["ledger"], equal_to(outcome.ledger), label="ledger")
    assert_that(results["balances"], equal_to(outcome.balances), label="balances")
    assert_that(results["rejected"], equal_to(outcome.rejected), label="rejected")
    assert_that(
        results["duplicates"] | beam.combiners.Count.Globally(),
        equal_to([outcome.duplicates]),
        label="duplicates",
    )


def test_business_step_on_the_corpus_matches_the_reference(pipeline):
    lines = [at(n, case.line, "corpus") for n, case in enumerate(load_corpus(), start=1)]
    outcome = process_lines(lines)
    assert len(outcome.rejected) > 90 and outcome.duplicates == 3
    with pipeline as p:
        _expect(outcome, p | beam.Create(lines, reshuffle=False) | pb.PaymentsBusinessStep())


def test_business_step_on_generated_input_matches_the_reference(pipeline):
    lines = [at(n, raw, "gen") for n, raw in enumerate(generate_lines(3000, seed=4), start=1)]
    outcome = process_lines(lines)
    with pipeline as p:
        _expect(outcome, p | beam.Create(lines) | "Step" >> pb.PaymentsBusinessStep())


def test_raw_of_rejected_lines_is_the_line_as_read(pipeline):
    raw = b"\xfe\x00bad\r\n"
    with pipeline as p:
        out = p | beam.Create([at(1, raw)]) | pb.PaymentsBusinessStep()
        assert_that(out["rejected"] | beam.Map(lambda r: r.raw), equal_to([raw_text(raw[:-2])]))
