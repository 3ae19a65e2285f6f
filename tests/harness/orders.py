"""The orders job's rule (`transforms.orders.validate_order`) with a rejected table of another
shape than the job's: what shows that `transforms.flink_adapters.parse_lines` fills a job's
rejected rows by column name, whatever their order. Flink runs `validate_order`, so this is a
harness module, not a test file."""

from typing import Optional

from transforms.flink_adapters import row_type
from transforms.orders import STOCK_MOVES, Order, validate_order
from transforms.tables import Column, Table

__all__ = ["ORDER_TYPE", "ORDER_REJECTS", "Order", "order_line", "validate_order"]

ORDER_TYPE = row_type(STOCK_MOVES)

#: Some of the columns of `transforms.lines.RejectedLine`, in an order of its own.
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


def order_line(order_id: str, quantity: Optional[int], end: bytes = b"\n") -> bytes:
    """A sale of `quantity` (none: the field is left out) of sku-1 from wh-1."""
    fields = f'"order_id": "{order_id}", "sku": "sku-1", "warehouse": "wh-1", "kind": "sale"'
    if quantity is not None:
        fields += f', "quantity": {quantity}'
    return b"{" + fields.encode() + b"}" + end
