"""The shop orders job's rules, tables and pure reference: order lines to stock moves per SKU
and warehouse. Plain Python, no Beam and no Flink (the Beam layer is `transforms.orders_beam`,
the job `jobs.orders`).

An order line is a JSON object:

    {"order_id": "o-17", "sku": "sku-3", "warehouse": "berlin", "quantity": 2, "kind": "sale"}

* ``order_id``, ``sku``, ``warehouse``: identifiers (`transforms.lines.check_identifier`, at
  most 64 characters);
* ``quantity``: a whole JSON number from 1 to `MAX_QUANTITY` (``2.0`` is 2; ``"2"``, ``2.5``,
  ``0``, ``true`` and ``1e30`` are refused);
* ``kind``: ``sale`` takes the quantity out of the warehouse's stock, ``restock`` and
  ``return`` put it back in (`STOCK_SIGN`). Other fields are ignored.

Every line ends in exactly one table: ``stock_moves`` (an applied order, with its signed
``change``), ``order_duplicates`` or ``order_rejects`` (with a reason code, `OrderReason`).
``stock`` holds the running balance per (sku, warehouse): the sum of the moves' changes, and
how many moves made it.

Duplicates: an order id is issued once by the shop, so the first line of an ``order_id`` wins
and every later line with that id is a duplicate, whatever else it holds (a resend with other
fields is not a new order): recorded in ``order_duplicates`` with where it came from, never
applied. "First" is input order: file order within a file (the job reads a file in order,
the reference takes files in the order given); keep an order's lines in one file or one
Kafka partition.
"""

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import NamedTuple, Optional, Union

from transforms.lines import (
    LineReason,
    LineRejected,
    RawLine,
    RejectedLine,
    SourceLine,
    check_identifier,
    decode_line,
    parse_json_object,
    read_lines,
    rejected_line,
    require_fields,
    require_strings,
    strip_line_terminator,
)
from transforms.tables import (
    SERIAL_ID,
    Table,
    bigint_column,
    insert_lines_if_absent_sql,
    line_recorded_elsewhere,
    rejected_table,
    text_column,
)

__all__ = [
    "FIELDS",
    "KINDS",
    "MAX_LINE_BYTES",
    "MAX_QUANTITY",
    "ORDER_DUPLICATES",
    "ORDER_REJECTS",
    "STOCK",
    "STOCK_MOVES",
    "STOCK_SIGN",
    "TABLES",
    "LINE_TABLES",
    "Order",
    "OrderReason",
    "OrdersOutcome",
    "DuplicateOrder",
    "StockRow",
    "apply_orders_sql",
    "expected_tables",
    "insert_order_lines_sql",
    "line_outcomes",
    "process_files",
    "process_lines",
    "stock",
    "validate_order",
]

MAX_LINE_BYTES = 4096
MAX_ID_LENGTH = 64
MAX_QUANTITY = 1_000_000  # a stock sum stays in bigint for 9 * 10**12 moves
FIELDS = ("order_id", "sku", "warehouse", "quantity", "kind")
#: How each kind changes the stock of its (sku, warehouse).
STOCK_SIGN = {"sale": -1, "restock": 1, "return": 1}
KINDS = tuple(STOCK_SIGN)


class OrderReason(LineReason):
    """Reason codes of ``order_rejects``, in check order: the line checks, then these. Never
    rename one."""

    INVALID_QUANTITY = "invalid_quantity"
    UNKNOWN_KIND = "unknown_kind"


class Order(NamedTuple):
    """A valid order line: a row of ``stock_moves``."""

    order_id: str
    sku: str
    warehouse: str
    kind: str
    quantity: int
    change: int  # the signed quantity: what it does to the stock
    source: Optional[str]
    line_number: Optional[int]


class DuplicateOrder(NamedTuple):
    """A row of ``order_duplicates``."""

    order_id: str
    source: Optional[str]
    line_number: Optional[int]


class StockRow(NamedTuple):
    """A row of ``stock``."""

    sku: str
    warehouse: str
    quantity: int
    moves: int


def validate_order(item: SourceLine) -> Order:
    """The `Order` of one line (without its terminator), or `LineRejected` with the first
    failing check's reason."""
    obj = parse_json_object(decode_line(item.line, MAX_LINE_BYTES))
    require_fields(obj, FIELDS)
    require_strings(obj, ("order_id", "sku", "warehouse", "kind"))
    order_id = check_identifier("order_id", obj["order_id"], MAX_ID_LENGTH)
    sku = check_identifier("sku", obj["sku"], MAX_ID_LENGTH)
    warehouse = check_identifier("warehouse", obj["warehouse"], MAX_ID_LENGTH)
    quantity = obj["quantity"]
    # bool is no Decimal: `true` is refused, as is "2" (a string) and 2.5.
    if not isinstance(quantity, Decimal) or not 1 <= quantity <= MAX_QUANTITY:
        raise LineRejected(OrderReason.INVALID_QUANTITY, "quantity")
    if quantity != quantity.to_integral_value():
        raise LineRejected(OrderReason.INVALID_QUANTITY, "quantity")
    kind = obj["kind"]
    if kind not in STOCK_SIGN:
        raise LineRejected(OrderReason.UNKNOWN_KIND, kind[:40])
    units = int(quantity)
    return Order(order_id, sku, warehouse, kind, units, STOCK_SIGN[kind] * units, *item[:2])


def stock(moves: Iterable[Order]) -> list[StockRow]:
    """The ``stock`` rows of `moves`, sorted by (sku, warehouse)."""
    totals: dict[tuple[str, str], list[int]] = {}
    for move in moves:
        total = totals.setdefault((move.sku, move.warehouse), [0, 0])
        total[0] += move.change
        total[1] += 1
    return [StockRow(sku, wh, q, n) for (sku, wh), (q, n) in sorted(totals.items())]


# --------------------------------------------------------------------------- the reference


class OrdersOutcome(NamedTuple):
    """What the tables hold after `lines`: ``lines == len(moves) + len(duplicates) +
    len(rejected)``."""

    moves: list[Order]
    stock: list[StockRow]
    duplicates: list[DuplicateOrder]
    rejected: list[RejectedLine]
    lines: int


MOVE = "stock_move"
DUPLICATE = "duplicate"


def iter_outcomes(
    lines: Iterable[Union[RawLine, SourceLine]], source: Optional[str] = None
) -> Iterator[tuple[str, Union[Order, DuplicateOrder, RejectedLine]]]:
    """One ``(outcome, row)`` per line, in input order: ``("stock_move", Order)``,
    ``("duplicate", DuplicateOrder)`` or ``(reason, RejectedLine)``. Raw lines are numbered
    from 1 under `source`; `SourceLine`s are kept as given."""
    seen: set[str] = set()
    for number, raw in enumerate(lines, 1):
        item = raw if isinstance(raw, SourceLine) else SourceLine(source, number, raw)
        item = SourceLine(item.source, item.line_number, strip_line_terminator(item.line))
        try:
            order = validate_order(item)
        except LineRejected as refusal:
            yield refusal.reason, rejected_line(item, refusal)
            continue
        if order.order_id in seen:
            yield DUPLICATE, DuplicateOrder(order.order_id, order.source, order.line_number)
        else:
            seen.add(order.order_id)
            yield MOVE, order


def line_outcomes(lines: Iterable[Union[RawLine, SourceLine]]) -> list[str]:
    """Where each line ends: ``"stock_move"``, ``"duplicate"`` or its reason code."""
    return [outcome for outcome, _ in iter_outcomes(lines)]


def process_lines(
    lines: Iterable[Union[RawLine, SourceLine]], source: Optional[str] = None
) -> OrdersOutcome:
    """The job's tables after `lines`, in plain Python: what every runner must match."""
    moves: list[Order] = []
    duplicates: list[DuplicateOrder] = []
    rejected: list[RejectedLine] = []
    count = 0
    for _, row in iter_outcomes(lines, source):
        count += 1
        if isinstance(row, Order):
            moves.append(row)
        elif isinstance(row, DuplicateOrder):
            duplicates.append(row)
        else:
            rejected.append(row)
    return OrdersOutcome(moves, stock(moves), duplicates, rejected, count)


def expected_tables(
    lines: Iterable[Union[RawLine, SourceLine]],
) -> dict[str, list[tuple[object, ...]]]:
    """What each table holds after `lines`, by table name, as rows of its written columns
    (`jobs.audit --job orders` compares the database with it)."""
    outcome = process_lines(lines)
    return {
        STOCK_MOVES.name: list(outcome.moves),
        STOCK.name: list(outcome.stock),
        ORDER_DUPLICATES.name: list(outcome.duplicates),
        ORDER_REJECTS.name: list(outcome.rejected),
    }


def process_files(paths: Iterable[str]) -> OrdersOutcome:
    """`process_lines` over files in the given order, each line named by its file's base name
    and number (`transforms.lines.read_lines`)."""
    return process_lines(line for path in paths for line in read_lines(path))


# --------------------------------------------------------------------------- tables

STOCK_MOVES = Table(
    "stock_moves",
    (
        text_column("order_id", "PRIMARY KEY"),
        text_column("sku"),
        text_column("warehouse"),
        text_column("kind", "NOT NULL CHECK (kind IN ('sale', 'restock', 'return'))"),
        bigint_column("quantity", "NOT NULL CHECK (quantity > 0)"),
        bigint_column("change"),
        text_column("source", ""),
        bigint_column("line_number", ""),
    ),
    indexes=(("source", "line_number"),),
)

STOCK = Table(
    "stock",
    (
        text_column("sku"),
        text_column("warehouse"),
        bigint_column("quantity"),
        bigint_column("moves"),
    ),
    primary_key=("sku", "warehouse"),
)

ORDER_DUPLICATES = Table(
    "order_duplicates",
    (
        SERIAL_ID,
        text_column("order_id"),
        text_column("source", ""),
        bigint_column("line_number", ""),
    ),
    indexes=(("source", "line_number"),),
)

ORDER_REJECTS = rejected_table("order_rejects")

#: Every table of the orders job, in creation order (`python -m jobs.schema --tables
#: transforms.orders:TABLES`).
TABLES: dict[str, Table] = {
    table.name: table for table in (STOCK_MOVES, STOCK, ORDER_DUPLICATES, ORDER_REJECTS)
}
#: The tables an input line may end in: each line ends in exactly one of them.
LINE_TABLES = (STOCK_MOVES, ORDER_DUPLICATES, ORDER_REJECTS)

#: The stock is the sum of the moves: (sku, warehouse, quantity, moves) both ways.
STOCK_FROM_MOVES_SQL = (
    "SELECT sku, warehouse, sum(change), count(*) FROM stock_moves GROUP BY sku, warehouse"
)
STOCK_SQL = "SELECT sku, warehouse, quantity, moves FROM stock"


def insert_order_lines_sql(table: Table) -> str:
    """The sink's statement for a batch of duplicates or rejects: each line no table of the
    job holds yet."""
    return insert_lines_if_absent_sql(table, LINE_TABLES)


def apply_orders_sql() -> str:
    """The sink's statement for a batch of first-seen orders (read as ``tpc_batch``, the
    columns of ``stock_moves``). The database is the last line of defence, whatever reaches
    it (a run that restored no state sees every order id as new):

    * an order whose ``order_id`` ``stock_moves`` holds is not applied again: its line is
      recorded in ``order_duplicates``, unless it is the very line the move came from or a
      line some table holds already;
    * ``stock`` adds up only the moves this statement inserted.
    """
    columns = ", ".join(STOCK_MOVES.field_names)
    return f"""WITH inserted AS (
    INSERT INTO stock_moves ({columns})
    SELECT {columns} FROM tpc_batch b
    WHERE NOT ({line_recorded_elsewhere(STOCK_MOVES, "b", LINE_TABLES)})
    ON CONFLICT (order_id) DO NOTHING
    RETURNING {columns}
),
stock_changes AS (
    INSERT INTO stock (sku, warehouse, quantity, moves)
    SELECT sku, warehouse, sum(change), count(*) FROM inserted
    GROUP BY sku, warehouse
    ON CONFLICT (sku, warehouse) DO UPDATE SET
        quantity = stock.quantity + EXCLUDED.quantity,
        moves = stock.moves + EXCLUDED.moves
)
INSERT INTO order_duplicates (order_id, source, line_number)
SELECT b.order_id, b.source, b.line_number FROM tpc_batch b
WHERE NOT EXISTS (SELECT 1 FROM inserted i
    WHERE i.source = b.source AND i.line_number = b.line_number)
AND NOT EXISTS (SELECT 1 FROM stock_moves m
    WHERE m.source = b.source AND m.line_number = b.line_number)
AND NOT ({line_recorded_elsewhere(STOCK_MOVES, "b", LINE_TABLES)})"""
