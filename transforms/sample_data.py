"""Deterministic sample payments as JSON lines, with duplicates and bad lines on request.

    python -m transforms.sample_data --events 10000 --seed 7 --output var/in/payments.jsonl

`generate_lines(events, seed, ...)` returns the lines as ``bytes`` (each ending in ``\\n``);
the same arguments always give the same bytes. Shares are fractions of ``events``:

* ``duplicate_share``: exact re-sends of an earlier line (byte for byte),
* ``conflict_share``: an earlier ``event_id`` again with another amount,
* ``bad_share``: lines that must be rejected (taken from `BAD_LINES`).

The total number of lines is ``events`` + the extra duplicate/conflict/bad lines (`Sample`
tells how many of each were generated). Pure Python, no Beam or Flink.
"""

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Optional

from transforms.currencies import DEFAULT_CURRENCIES
from transforms.payments import format_minor_units

#: Bad lines used by the generator (one per family; `tests/corpus` holds the full corpus).
BAD_LINES: Sequence[bytes] = (
    b'{"event_id": "bad-1", "account_id": "acc-1"',
    b"not json at all",
    b'{"event_id": "bad-2", "account_id": "acc-1", "type": "charge", "amount": "1.00", '
    b'"currency": "USD"}',
    b'{"event_id": "bad-3", "account_id": "acc-1", "type": "transfer", "amount": "1.00", '
    b'"currency": "USD", "occurred_at": "2024-01-01T00:00:00Z"}',
    b'{"event_id": "bad-4", "account_id": "acc-1", "type": "charge", "amount": "1.001", '
    b'"currency": "USD", "occurred_at": "2024-01-01T00:00:00Z"}',
    b'{"event_id": "bad-5", "account_id": "acc-1", "type": "charge", "amount": "0", '
    b'"currency": "EUR", "occurred_at": "2024-01-01T00:00:00Z"}',
    b'{"event_id": "bad-6", "account_id": "acc-1", "type": "charge", "amount": "1.00", '
    b'"currency": "XXX", "occurred_at": "2024-01-01T00:00:00Z"}',
    b'{"event_id": "bad-7", "account_id": "acc-1", "type": "charge", "amount": "1.00", '
    b'"currency": "GBP", "occurred_at": "2024-01-01T00:00:00"}',
    b'{"event_id": "bad-8", "account_id": "acc-1", "type": "refund", "amount": -3, '
    b'"currency": "JPY", "occurred_at": "2024-01-01T00:00:00Z"}',
    b'{"event_id": 9, "account_id": "acc-1", "type": "charge", "amount": "1.00", '
    b'"currency": "USD", "occurred_at": "2024-01-01T00:00:00Z"}',
    b'\xff\xfe{"event_id": "bad-10"}',
    b"",
)

_OFFSETS = ("Z", "+00:00", "+02:00", "-05:00", "+05:30")


class Sample(NamedTuple):
    lines: list[bytes]
    events: int
    duplicates: int
    conflicts: int
    bad: int


def _payment(
    rng: random.Random,
    event_id: str,
    accounts: int,
    codes: Sequence[str],
    currencies: Mapping[str, int],
    base: datetime,
) -> dict[str, Any]:
    currency = rng.choice(codes)
    units = currencies[currency]
    minor = rng.randint(1, 10 ** (units + 4))
    amount = format_minor_units(minor, units)
    offset = rng.choice(_OFFSETS)
    when = base + timedelta(
        seconds=rng.randint(0, 86400 * 30), microseconds=rng.choice((0, rng.randint(0, 999999)))
    )
    if offset == "Z":
        stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    else:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
        stamp = when.astimezone(timezone(delta)).isoformat()
    return {
        "event_id": event_id,
        "account_id": f"acc-{rng.randint(1, accounts):05d}",
        "type": "charge" if rng.random() < 0.8 else "refund",
        "amount": amount,
        # one amount in five is written as a JSON number, the rest as decimal strings
        "_number": rng.random() < 0.2,
        "currency": currency,
        "occurred_at": stamp,
    }


def _line(obj: dict[str, Any]) -> bytes:
    """JSON text of a payment; ``_number`` amounts are written as JSON numbers, verbatim."""
    clean = {k: v for k, v in obj.items() if not k.startswith("_")}
    text = json.dumps(clean, ensure_ascii=False)
    if obj.get("_number"):
        quoted = json.dumps(obj["amount"])
        text = text.replace(f'"amount": {quoted}', f'"amount": {obj["amount"]}', 1)
    return text.encode("utf-8") + b"\n"


def generate(
    events: int,
    seed: int = 0,
    duplicate_share: float = 0.05,
    conflict_share: float = 0.01,
    bad_share: float = 0.02,
    accounts: int = 50,
    currencies: Optional[Mapping[str, int]] = None,
    id_prefix: str = "evt",
) -> Sample:
    """Generate a `Sample`; see the module docstring."""
    rng = random.Random(seed)
    table = dict(currencies if currencies is not None else DEFAULT_CURRENCIES)
    codes = sorted(table)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    lines: list[bytes] = []
    originals: list[dict[str, Any]] = []
    n_dup = round(events * duplicate_share)
    n_conf = round(events * conflict_share)
    n_bad = round(events * bad_share)
    # positions (in the final stream) of the extras, chosen up front
    extras = ["dup"] * n_dup + ["conf"] * n_conf + ["bad"] * n_bad
    plan = ["event"] * events + extras
    rng.shuffle(plan)
    # an extra before any event would have nothing to duplicate: move events first
    first_event = plan.index("event") if events else len(plan)
    plan = ["event"] + plan[:first_event] + plan[first_event + 1 :] if events else plan
    number = 0
    for kind in plan:
        if kind == "event" or (kind in ("dup", "conf") and not originals):
            number += 1
            obj = _payment(rng, f"{id_prefix}-{number:08d}", accounts, codes, table, base)
            originals.append(obj)
            lines.append(_line(obj))
        elif kind == "dup":
            lines.append(_line(rng.choice(originals)))
        elif kind == "conf":
            original = dict(rng.choice(originals))
            units = table[original["currency"]]
            original["amount"] = format_minor_units(
                rng.randint(10 ** (units + 4) + 1, 10 ** (units + 5)), units
            )
            lines.append(_line(original))
        else:
            lines.append(rng.choice(BAD_LINES) + b"\n")
    return Sample(lines, number, n_dup, n_conf, n_bad)


def generate_lines(events: int, seed: int = 0, **kwargs: Any) -> list[bytes]:
    """Just the lines of `generate` (bytes, each ending in ``\\n``)."""
    return generate(events, seed, **kwargs).lines


def write_jsonl(path: str, events: int, seed: int = 0, **kwargs: Any) -> Sample:
    """Write a generated sample to ``path`` and return it."""
    sample = generate(events, seed, **kwargs)
    with open(path, "wb") as f:
        f.writelines(sample.lines)
    return sample


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duplicate-share", type=float, default=0.05)
    parser.add_argument("--conflict-share", type=float, default=0.01)
    parser.add_argument("--bad-share", type=float, default=0.02)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--id-prefix", default="evt")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    sample = write_jsonl(
        args.output,
        args.events,
        args.seed,
        duplicate_share=args.duplicate_share,
        conflict_share=args.conflict_share,
        bad_share=args.bad_share,
        accounts=args.accounts,
        id_prefix=args.id_prefix,
    )
    print(
        f"wrote {len(sample.lines)} lines to {args.output}: {sample.events} events, "
        f"{sample.duplicates} exact duplicates, {sample.conflicts} conflicting, "
        f"{sample.bad} bad"
    )


if __name__ == "__main__":
    main()
