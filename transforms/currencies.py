"""The supported-currency table: ISO 4217 code -> number of minor units.

Pure Python (no Beam, no Flink). The table is data: the default lives in
`transforms/currencies.json` next to this module. To support another currency either

* add a line to `currencies.json` (it ships with the package), or
* build a table at run time and pass it to the functions that take `currencies=`::

      from transforms.currencies import DEFAULT_CURRENCIES, extend_currencies
      table = extend_currencies(DEFAULT_CURRENCIES, {"ISK": 0})
      parse_line(raw, currencies=table)

  or load one from a JSON file with `load_currencies(path)` (the Beam pipeline's
  `--currencies FILE` option does that).

A table is a `Currencies` object: an immutable, picklable mapping, so it travels into Beam
DoFns and PyFlink functions and can be shared safely.
"""

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Union

CURRENCY_FILE = Path(__file__).with_name("currencies.json")

_CODE = re.compile(r"^[A-Z]{3}$")
#: Upper bound on minor units: 10**18 still fits an int64 for an amount of 1 major unit.
MAX_MINOR_UNITS = 18


class Currencies(Mapping[str, int]):
    """Immutable, picklable mapping ISO 4217 code -> minor units (build it with the helpers)."""

    __slots__ = ("_units",)
    _units: dict[str, int]  # set once, in __init__ / __setstate__

    def __init__(self, units: Mapping[str, int]):
        object.__setattr__(self, "_units", dict(sorted(units.items())))

    def __getitem__(self, code: str) -> int:
        return self._units[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Currencies is immutable; use extend_currencies()")

    def __getstate__(self) -> dict[str, int]:
        return self._units

    def __setstate__(self, state: Mapping[str, int]) -> None:
        object.__setattr__(self, "_units", dict(state))

    def __repr__(self) -> str:
        return f"Currencies({self._units!r})"


def validate_currencies(table: Mapping[str, int]) -> Currencies:
    """Check a table (3 upper-case letters -> int 0..18) and return an immutable copy."""
    checked = {}
    for code, units in table.items():
        if code.startswith("_"):  # "_comment" and similar keys in JSON files
            continue
        if not isinstance(code, str) or not _CODE.match(code):
            raise ValueError(f"currency code must be 3 upper-case letters, got {code!r}")
        if (
            isinstance(units, bool)
            or not isinstance(units, int)
            or not 0 <= units <= MAX_MINOR_UNITS
        ):
            raise ValueError(
                f"minor units of {code} must be an int in 0..{MAX_MINOR_UNITS}, got {units!r}"
            )
        checked[code] = units
    return Currencies(checked)


def load_currencies(path: Union[str, Path] = CURRENCY_FILE) -> Currencies:
    """Load a currency table from a JSON object file (keys starting with `_` are ignored)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of code -> minor units")
    return validate_currencies(data)


def extend_currencies(base: Mapping[str, int], extra: Mapping[str, int]) -> Currencies:
    """A new table with `extra` added to (or overriding) `base`."""
    return validate_currencies({**base, **extra})


#: The table shipped in `currencies.json`.
DEFAULT_CURRENCIES: Currencies = load_currencies()
