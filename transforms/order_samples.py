"""Deterministic sample order lines, with duplicates and bad lines (hostile ones too).

    python -m transforms.order_samples --orders 10000 --seed 7 --output var/in/orders.jsonl

`generate_lines(orders, seed, ...)` gives the lines as ``bytes``, each ending in ``\\n``; the
same arguments always give the same bytes. Shares are fractions of ``orders``:
``duplicate_share`` resends an earlier line byte for byte, ``conflict_share`` an earlier
``order_id`` with other fields (a duplicate too, see `transforms.orders`), ``bad_share`` a line
of `BAD_LINES`. Pure Python, no Beam or Flink.
"""

import argparse
import json
import random
from collections.abc import Sequence
from typing import Any, Optional

from transforms.orders import KINDS

__all__ = ["BAD_LINES", "generate_lines", "write_jsonl", "main"]

#: One line of each fault the job must refuse, hostile ones included.
BAD_LINES: Sequence[bytes] = (
    b"",
    b"   ",
    b"not json",
    b"[1, 2]",
    b'{"order_id": "bad-1", "sku": "s", "warehouse": "w", "quantity": 1}',
    b'{"order_id": "bad-2", "sku": "s", "warehouse": "w", "quantity": 0, "kind": "sale"}',
    b'{"order_id": "bad-3", "sku": "s", "warehouse": "w", "quantity": 2.5, "kind": "sale"}',
    b'{"order_id": "bad-4", "sku": "s", "warehouse": "w", "quantity": "3", "kind": "sale"}',
    b'{"order_id": "bad-5", "sku": "s", "warehouse": "w", "quantity": true, "kind": "sale"}',
    b'{"order_id": "bad-6", "sku": "s", "warehouse": "w", "quantity": 1e400, "kind": "sale"}',
    b'{"order_id": "bad-7", "sku": "s", "warehouse": "w", "quantity": '
    + b"9" * 400
    + b', "kind": "sale"}',
    b'{"order_id": "bad-8", "sku": "s", "warehouse": "w", "quantity": 1, "kind": "theft"}',
    b'{"order_id": 9, "sku": "s", "warehouse": "w", "quantity": 1, "kind": "sale"}',
    b'{"order_id": "bad-10", "order_id": "bad-10b", "sku": "s", "warehouse": "w", '
    b'"quantity": 1, "kind": "sale"}',
    b'{"order_id": " bad-11", "sku": "s", "warehouse": "w", "quantity": 1, "kind": "sale"}',
    b'{"order_id": "bad-12", "sku": "s\\u0000", "warehouse": "w", "quantity": 1, "kind": "sale"}',
    b'\xff\xfe{"order_id": "bad-13"}',
    b'{"order_id": "bad-14", "sku": "s", "warehouse": "w", "quantity": NaN, "kind": "sale"}',
    b'{"order_id": "bad-15", "sku": "s", "warehouse": "w", "quantity": 1, "kind": "sale"',
    b'{"order_id": "' + b"x" * 5000 + b'"}',
)


def _order(rng: random.Random, order_id: str, skus: int, warehouses: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "sku": f"sku-{rng.randrange(skus)}",
        "warehouse": f"wh-{rng.randrange(warehouses)}",
        "quantity": rng.randint(1, 20),
        "kind": rng.choices(KINDS, weights=(8, 3, 1))[0],
    }


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def generate_lines(
    orders: int,
    seed: int = 0,
    duplicate_share: float = 0.05,
    conflict_share: float = 0.01,
    bad_share: float = 0.02,
    skus: int = 30,
    warehouses: int = 3,
    id_prefix: str = "o",
) -> list[bytes]:
    """See the module docstring."""
    rng = random.Random(seed)
    plan = (
        ["order"] * orders
        + ["dup"] * round(orders * duplicate_share)
        + ["changed"] * round(orders * conflict_share)
        + ["bad"] * round(orders * bad_share)
    )
    rng.shuffle(plan)
    lines: list[bytes] = []
    originals: list[dict[str, Any]] = []
    for kind in plan:
        if kind == "bad":
            lines.append(rng.choice(BAD_LINES) + b"\n")
        elif kind == "order" or not originals:
            originals.append(_order(rng, f"{id_prefix}-{len(originals) + 1}", skus, warehouses))
            lines.append(_line(originals[-1]))
        elif kind == "dup":
            lines.append(_line(rng.choice(originals)))
        else:
            changed = dict(rng.choice(originals), quantity=rng.randint(21, 40))
            lines.append(_line(changed))
    return lines


def write_jsonl(path: str, orders: int, seed: int = 0, **kwargs: Any) -> int:
    """Write generated lines to ``path``; returns how many."""
    lines = generate_lines(orders, seed, **kwargs)
    with open(path, "wb") as f:
        f.writelines(lines)
    return len(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Generate sample order lines (JSON lines).")
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    count = write_jsonl(args.output, args.orders, args.seed)
    print(f"wrote {count} lines to {args.output}")


if __name__ == "__main__":
    main()
