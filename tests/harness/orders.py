"""A second job's rule, with no payments code: what shows that a new job's rule is one validate
function on the generic adapters (`transforms.flink_adapters.parse_lines`). An order line is a
JSON object with an ``order_id`` (an identifier) and a ``quantity`` (a whole number from 1).
Flink runs `validate_order`, so this is a harness module, not a test file."""

from decimal import Decimal
from typing import NamedTuple, Optional

from pyflink.common import Types

from transforms.lines import (
    LineRejected,
    SourceLine,
    check_identifier,
    decode_line,
    parse_json_object,
    require_fields,
    require_strings,
)
from transforms.tables import Column, Table

__all__ = ["ORDER_TYPE", "ORDER_REJECTS", "Order", "validate_order"]

ORDER_TYPE = Types.ROW_NAMED(
    ["order_id", "quantity", "source", "line_number"],
    [Types.STRING(), Types.LONG(), Types.STRING(), Types.LONG()],
)

#: Its rejected table: some of the columns of `transforms.lines.RejectedLine`, in an order of
#: its own (the rows are filled by column name).
ORDER_REJECTS = Table(
    "order_rejects",
    (
        Column("source", Optional[str], "STRING", "text", "text"),
        Column("line_number", Optional[int], "LONG", "bigint", "bigint"),
        Column("reason", str, "STRING", "text", "text", "NOT NULL"),
        Column("raw", str, "STRING", "text", "text", "NOT NULL"),
        Column("detail", str, "STRING", "text", "text", "NOT NULL"),
    ),
)


class Order(NamedTuple):
    order_id: str
    quantity: int
    source: Optional[str]
    line_number: Optional[int]


def validate_order(item: SourceLine) -> Order:
    obj = parse_json_object(decode_line(item.line, 1024))
    require_fields(obj, ("order_id", "quantity"))
    require_strings(obj, ("order_id",))
    quantity = obj["quantity"]
    if (
        not isinstance(quantity, Decimal)
        or quantity != quantity.to_integral_value()
        or quantity < 1
    ):
        raise LineRejected("invalid_quantity", "quantity")
    order_id = check_identifier("order_id", obj["order_id"], 64)
    return Order(order_id, int(quantity), item.source, item.line_number)
