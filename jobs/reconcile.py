"""Reconciliation: does every input line end in exactly one place, and do the books balance?

    python -m jobs.reconcile --input DIR --db-url URL [--sink-id-prefix payments]
        [--control-schema public]

A quick summary from counts and sums (the input is counted, not parsed). `jobs.audit` is the
full check: it recomputes every expected row and diffs the tables row by row.
"""

import argparse
import sys
from dataclasses import dataclass, field

# The same definitions of dangling work and of dead letters as jobs.audit.
from jobs.payments_dead_letters import add_sink_arguments, load_dead_letters
from sinks.control_tables import pending_work
from transforms.currencies import DEFAULT_CURRENCIES
from transforms.inputs import input_files
from transforms.payments import format_minor_units


def count_lines(input_dir: str) -> int:
    total = 0
    for path in input_files(input_dir):
        with open(path, "rb") as f:
            total += sum(1 for _ in f)
    return total


@dataclass
class Reconciliation:
    lines_read: int
    ledger_rows: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int]
    per_currency: dict[str, tuple[int, int]]  # currency -> (ledger sum, balances sum)
    balance_events: int
    pending: dict[str, int] = field(default_factory=dict)
    # Lines whose ledger, duplicate or rejected row the database refused, recorded by the sinks'
    # dead-letter policy (tpc_dead_letters) instead.
    dead_letters: int = 0

    @property
    def every_line_accounted(self) -> bool:
        return self.lines_read == (
            self.ledger_rows + self.duplicates + self.rejected + self.dead_letters
        )

    @property
    def books_balance(self) -> bool:
        return (
            self.every_line_accounted
            and self.balance_events == self.ledger_rows
            and all(ledger == balance for ledger, balance in self.per_currency.values())
            and not any(self.pending.values())
        )

    def report(self) -> str:
        out = [
            f"lines read        {self.lines_read:>10,}",
            f"  ledger rows     {self.ledger_rows:>10,}",
            f"  duplicates      {self.duplicates:>10,}",
            f"  rejected        {self.rejected:>10,}",
        ]
        for reason, count in sorted(self.rejected_by_reason.items(), key=lambda kv: -kv[1]):
            out.append(f"    {reason:<28}{count:>6,}")
        if self.dead_letters:
            out.append(
                f"  dead letters    {self.dead_letters:>10,}  (refused by the database: "
                f"see tpc_dead_letters, and jobs.audit)"
            )
        out.append(
            f"  accounted for   {'yes' if self.every_line_accounted else 'NO':>10}"
            f"  (ledger + duplicates + rejected + dead letters = "
            f"{self.ledger_rows + self.duplicates + self.rejected + self.dead_letters:,})"
        )
        out.append("balances by currency (ledger total = sum of balances):")
        for currency, (ledger, balance) in sorted(self.per_currency.items()):
            units = DEFAULT_CURRENCIES.get(currency, 0)
            mark = "ok" if ledger == balance else "MISMATCH"
            out.append(
                f"  {currency}  {format_minor_units(ledger, units):>22}  "
                f"{format_minor_units(balance, units):>22}  {mark}"
            )
        if any(self.pending.values()):
            out.append(f"pending sink work: {self.pending}")
        out.append(f"books balance: {'yes' if self.books_balance else 'NO'}")
        return "\n".join(out)


def reconcile(
    conn, input_dir: str, sink_id_prefix: str = "payments", control_schema: str = "public"
) -> Reconciliation:
    letters = load_dead_letters(conn, control_schema, sink_id_prefix) or []

    def one(sql):
        return conn.execute(sql).fetchone()[0]

    pending = [p.kind for p in pending_work(conn, control_schema)]
    per_currency: dict[str, tuple[int, int]] = {}
    for currency, total in conn.execute(
        "SELECT currency, sum(amount_minor) FROM ledger GROUP BY currency"
    ):
        per_currency[currency] = (int(total), 0)
    for currency, total in conn.execute(
        "SELECT currency, sum(balance_minor) FROM balances GROUP BY currency"
    ):
        per_currency[currency] = (per_currency.get(currency, (0, 0))[0], int(total))
    return Reconciliation(
        lines_read=count_lines(input_dir),
        ledger_rows=one("SELECT count(*) FROM ledger"),
        duplicates=one("SELECT count(*) FROM duplicates"),
        rejected=one("SELECT count(*) FROM rejected"),
        rejected_by_reason=dict(
            conn.execute("SELECT reason, count(*) FROM rejected GROUP BY reason").fetchall()
        ),
        per_currency=per_currency,
        balance_events=int(one("SELECT coalesce(sum(event_count), 0) FROM balances")),
        pending={
            "prepared": pending.count("prepared transaction"),
            "staged": pending.count("staged batch"),
        },
        dead_letters=sum(1 for letter in letters if letter.table != "balances"),
    )


def main(argv=None) -> int:
    from sinks.database import add_connection_arguments, connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    add_connection_arguments(parser)
    add_sink_arguments(parser)
    args = parser.parse_args(argv)
    with connect(args.db_url, args.db_user, args.password_env, args.password_file) as conn:
        result = reconcile(conn, args.input, args.sink_id_prefix, args.control_schema)
    print(result.report())
    return 0 if result.books_balance else 1


if __name__ == "__main__":
    sys.exit(main())
