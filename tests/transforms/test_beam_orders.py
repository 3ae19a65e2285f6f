"""The orders Beam transform (`transforms.orders_beam.OrdersStep`) equals the pure reference,
with TestPipeline + assert_that (DirectRunner)."""

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from transforms.lines import SourceLine
from transforms.order_samples import BAD_LINES, generate_lines
from transforms.orders import DuplicateOrder, Order, process_lines
from transforms.orders_beam import FirstOrderWinsFn, OrdersStep

pytestmark = pytest.mark.beam


def numbered(lines, source="orders.jsonl"):
    return [SourceLine(source, n, line) for n, line in enumerate(lines, 1)]


def test_orders_step_equals_the_pure_reference(pipeline):
    lines = numbered(generate_lines(1_500, seed=13)) + numbered(BAD_LINES, "bad.jsonl")
    expected = process_lines(lines)
    with pipeline as p:
        tables = p | beam.Create(lines, reshuffle=True) | OrdersStep()
        assert_that(tables["stock_moves"], equal_to(expected.moves), label="moves")
        assert_that(tables["stock"], equal_to(expected.stock), label="stock")
        assert_that(tables["order_duplicates"], equal_to(expected.duplicates), label="dups")
        assert_that(tables["order_rejects"], equal_to(expected.rejected), label="rejects")


def test_the_first_line_wins_whatever_order_the_group_comes_in():
    orders = [Order("o", "s", "w", "sale", n, -n, "orders.jsonl", n) for n in (3, 1, 2)]
    first, *later = FirstOrderWinsFn().process(("o", orders))
    assert first == orders[1]
    assert [d.value for d in later] == [
        DuplicateOrder("o", "orders.jsonl", 2),
        DuplicateOrder("o", "orders.jsonl", 3),
    ]
