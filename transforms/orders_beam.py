"""The Beam layer over the orders rules (`transforms.orders`): every decision is a pure
function's, this module only wires them into Beam (any runner; tests use the DirectRunner).

`OrdersStep` takes `SourceLine`s and gives a dict of PCollections like the job's tables:
``stock_moves`` (`Order`), ``stock`` (`StockRow`), ``order_duplicates`` (`DuplicateOrder`),
``order_rejects`` (`RejectedLine`). The first line of an order id in (source, line_number)
order wins, so the result never depends on the runner's grouping order.
"""

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from transforms.beam_lines import ValidateLineFn
from transforms.orders import DuplicateOrder, Order, StockRow, validate_order

__all__ = ["FirstOrderWinsFn", "OrdersStep", "StockCombineFn", "parse_orders"]

REJECTED = "rejected"
DUPLICATES = "duplicates"


def parse_orders() -> ValidateLineFn:
    """The orders rule as a DoFn: `Order` (main) or `RejectedLine` (``rejected``); the job
    runs the same through `flink_adapters.parse_lines`."""
    return ValidateLineFn(validate_order, REJECTED)


def _position(order: Order) -> tuple[bool, str, int]:
    return (order.source is None, order.source or "", order.line_number or 0)


class FirstOrderWinsFn(beam.DoFn):
    """``(order_id, [Order])`` -> the first `Order` (main), the others as `DuplicateOrder`s
    (``duplicates``)."""

    def process(self, element: tuple[str, Iterable[Order]]) -> Iterator[Any]:
        first, *later = sorted(element[1], key=_position)
        yield first
        for order in later:
            yield pvalue.TaggedOutput(
                DUPLICATES, DuplicateOrder(order.order_id, order.source, order.line_number)
            )


def _stock_row(element: tuple[tuple[str, str], tuple[int, int]]) -> StockRow:
    (sku, warehouse), (quantity, moves) = element
    return StockRow(sku, warehouse, quantity, moves)


class StockCombineFn(beam.CombineFn):
    """A (sku, warehouse)'s moves' changes -> (quantity, moves)."""

    def create_accumulator(self) -> tuple[int, int]:
        return 0, 0

    def add_input(self, accumulator: tuple[int, int], change: int) -> tuple[int, int]:
        return accumulator[0] + change, accumulator[1] + 1

    def merge_accumulators(self, accumulators: Iterable[tuple[int, int]]) -> tuple[int, int]:
        totals = list(accumulators)
        return sum(a[0] for a in totals), sum(a[1] for a in totals)

    def extract_output(self, accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator


class OrdersStep(beam.PTransform[Any, Any]):
    """SourceLines -> ``{"stock_moves", "stock", "order_duplicates", "order_rejects"}``."""

    def expand(self, lines: Any) -> Any:
        parsed = lines | "ParseOrders" >> beam.ParDo(parse_orders()).with_outputs(
            REJECTED, main="orders"
        )
        deduplicated = (
            parsed.orders
            | "KeyByOrderId" >> beam.Map(lambda order: (order.order_id, order))
            | "GroupByOrderId" >> beam.GroupByKey()
            | "FirstWins"
            >> beam.ParDo(FirstOrderWinsFn()).with_outputs(  # type: ignore[no-untyped-call]
                DUPLICATES, main="moves"
            )
        )
        stock = (
            deduplicated.moves
            | "BySkuAndWarehouse"
            >> beam.Map(lambda order: ((order.sku, order.warehouse), order.change))
            | "SumStock" >> beam.CombinePerKey(StockCombineFn())  # type: ignore[no-untyped-call]
            | "StockRows" >> beam.Map(_stock_row)
        )
        return {
            "stock_moves": deduplicated.moves,
            "stock": stock,
            "order_duplicates": deduplicated[DUPLICATES],
            "order_rejects": parsed[REJECTED],
        }
