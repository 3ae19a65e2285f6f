"""File format of the business step's outputs (pure Python, shared by every runner).

The Beam pipeline (`transforms.pipeline`) writes into its output directory:

* ``ledger.jsonl``    one `LedgerRow` per line, as a JSON object of its fields
* ``balances.jsonl``  one `BalanceRow` per line
* ``rejected.jsonl``  one `RejectedRow` per line (``raw`` is text, see `raw_text`;
  ``raw_bytes`` is hex or null)
* ``summary.json``    ``{"lines": n, "ledger": n, "duplicates": n, "rejected": n}``

(each ``*.jsonl`` may also be written as shards ``name-SSSSS-of-NNNNN.jsonl``).
`load_outputs(directory)` reads them back as an `Outcome` for comparisons.
"""

import glob
import json
import os
from collections.abc import Iterator
from typing import NamedTuple, Optional, TypeVar, Union

from transforms.payments import BalanceRow, LedgerRow, RejectedRow
from transforms.reference import Outcome

Row = Union[LedgerRow, BalanceRow, RejectedRow]
R = TypeVar("R", LedgerRow, BalanceRow, RejectedRow)


def row_to_json(row: NamedTuple) -> str:
    """One output line (no newline). Non-ASCII kept, control characters JSON-escaped, bytes
    as hex."""
    return json.dumps(
        row._asdict(), ensure_ascii=False, separators=(",", ":"), default=_bytes_as_hex
    )


def _bytes_as_hex(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _row_from_json(row_type: type[R], text: str) -> R:
    fields = json.loads(text)
    for name, kind in row_type.__annotations__.items():
        if kind == Optional[bytes] and isinstance(fields.get(name), str):
            fields[name] = bytes.fromhex(fields[name])
    return row_type(**fields)


def _files(directory: str, name: str) -> list[str]:
    return sorted(
        glob.glob(os.path.join(directory, f"{name}.jsonl"))
        + glob.glob(os.path.join(directory, f"{name}-*-of-*.jsonl"))
    )


def read_rows(directory: str, name: str, row_type: type[R]) -> Iterator[R]:
    for path in _files(directory, name):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield _row_from_json(row_type, line)


def load_outputs(directory: str) -> Outcome:
    """The outputs of a pipeline run as an `Outcome` (rows in file order)."""
    with open(os.path.join(directory, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    return Outcome(
        list(read_rows(directory, "ledger", LedgerRow)),
        list(read_rows(directory, "balances", BalanceRow)),
        list(read_rows(directory, "rejected", RejectedRow)),
        summary["duplicates"],
        summary["lines"],
    )
