"""The payments rules as a Quix Streams application: what a Python team picks instead of PyFlink,
measured next to the job by `bench.steady_stream --runner quix`.

    python -m bench.quix_payments --bootstrap-servers HOST:PORT --topic T --db-url URL \\
        [--db-user USER] [--password-env PGPASSWORD | --password-file PATH]
        [--commit-interval 1.0] [--state-dir DIR]

Quix Streams 3.28 (its own virtualenv, `bench.quix_env`: it needs protobuf >= 6, which
apache-beam 2.61 refuses, so the two cannot share one) with its PostgreSQL sink, into the same
tables as the job (`jobs.payments_schema`, created beforehand), by the same pure rules
(`transforms.payments`): a line is parsed; a refused line is a `rejected` row; a payment goes
through a repartition by event id, where keyed state holds the fingerprint of the first payment
of each id (a later one is a `duplicates` row, or a `conflicting_duplicate` rejection); a new
payment is a `ledger` row, and through a repartition by account and currency, the running
balance in keyed state is upserted as that account's `balances` row (through a topic of
accepted payments keyed by account and currency: Quix allows one repartition per dataframe).

**Its guarantee.** Quix's default processing guarantee, at-least-once: at each commit
(`--commit-interval`) the sinks flush, then the state and the offsets are committed; after a
crash everything since the last commit is processed again. The ledger and balances rows are
upserts by primary key of values that the replay computes again from restored state, so they
come out right; the `duplicates` and `rejected` rows are plain inserts, and a replay inserts
them again. Quix's `exactly-once` guarantee covers its Kafka topics and state, not an external
sink ("sinks are at-least-once", its documentation says).
"""

import argparse
import sys
from typing import Any

from quixstreams import Application, message_context  # type: ignore[import-not-found]
from quixstreams.sinks.community.postgresql import (  # type: ignore[import-not-found]
    PostgreSQLSink,
)

from sinks.database import add_connection_arguments, jdbc_to_params, read_password
from transforms.lines import RejectedLine
from transforms.payments import NEW, Payment, classify_duplicate, fingerprint, parse_line

REJECTED_COLUMNS = ("reason", "raw", "source", "line_number", "detail", "raw_bytes")


def parsed(value: bytes) -> dict[str, Any]:
    """One line as the job reads it from Kafka (named `kafka:<topic>:<partition>`, its offset
    the line number), parsed by the payments rules."""
    context = message_context()
    source = f"kafka:{context.topic}:{context.partition}"
    result = parse_line(value, None, source, context.offset)
    if isinstance(result, RejectedLine):
        return {"rejected": dict(zip(REJECTED_COLUMNS, rejected_row(result)))}
    return {"payment": result._asdict()}


def rejected_row(rejection: RejectedLine) -> tuple:
    return (
        rejection.reason,
        rejection.raw,
        rejection.source,
        rejection.line_number,
        rejection.detail,
        rejection.raw_bytes,
    )


def classified(value: dict[str, Any], state) -> dict[str, Any]:
    """Keyed by event id: the first payment's fingerprint is kept; later ones compared to it."""
    payment = Payment(**value["payment"])
    verdict = classify_duplicate(payment, state.get("fingerprint"))
    if verdict == NEW:
        state.set("fingerprint", fingerprint(payment))
        return {"new": value["payment"]}
    if isinstance(verdict, RejectedLine):
        return {"rejected": dict(zip(REJECTED_COLUMNS, rejected_row(verdict)))}
    return {
        "duplicate": {
            "event_id": payment.event_id,
            "source": payment.source,
            "line_number": payment.line_number,
        }
    }


def balance(payment: dict[str, Any], state) -> dict[str, Any]:
    """Keyed by account and currency: the running balance, as the row to upsert."""
    total = state.get("balance", 0) + payment["amount_minor"]
    count = state.get("count", 0) + 1
    state.set("balance", total)
    state.set("count", count)
    return {
        "account_id": payment["account_id"],
        "currency": payment["currency"],
        "balance_minor": total,
        "event_count": count,
    }


def ledger_row(payment: dict[str, Any]) -> dict[str, Any]:
    fields = ("event_id", "account_id", "type", "amount_minor", "currency", "occurred_at")
    return {name: payment[name] for name in fields}


def rejected_rows(sdf, sink) -> None:
    """The rejected rows of `sdf` into `rejected`, by two sinks: one for rows whose line is
    exact text (`raw_bytes` NULL), one for the others. Quix's PostgreSQL sink takes a batch's
    columns from its first row and leaves out None values, so in one mixed batch whose first
    row had no `raw_bytes`, every other row's `raw_bytes` was silently not written (found by
    the audit: the non-UTF-8 lines' bytes were lost)."""
    rejected = sdf.filter(lambda v: "rejected" in v).apply(lambda v: v["rejected"])
    rejected.filter(lambda r: r["raw_bytes"] is None).sink(sink("rejected"))
    rejected.filter(lambda r: r["raw_bytes"] is not None).sink(sink("rejected"))


def build(args: argparse.Namespace) -> Application:
    params = jdbc_to_params(args.db_url)
    connection = dict(
        host=params["host"],
        port=int(params.get("port", 5432)),
        dbname=params["dbname"],
        user=args.db_user or params.get("user"),
        password=read_password(args.password_env, args.password_file) or "",
        schema_auto_update=False,  # the tables are the job's, made beforehand
        include_metadata=False,
        connection_timeout_seconds=10,
        statement_timeout_seconds=30,
    )

    def sink(table: str, **options) -> PostgreSQLSink:
        return PostgreSQLSink(table_name=table, **connection, **options)

    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group_id,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    lines = app.dataframe(topic).apply(parsed)

    rejected_rows(lines, sink)
    decided = (
        lines.filter(lambda v: "payment" in v)
        .group_by(lambda v: v["payment"]["event_id"], name="by-event-id")
        .apply(classified, stateful=True)
    )
    rejected_rows(decided, sink)
    decided.filter(lambda v: "duplicate" in v).apply(lambda v: v["duplicate"]).sink(
        sink("duplicates")
    )
    new = decided.filter(lambda v: "new" in v).apply(lambda v: v["new"])
    new.apply(ledger_row).sink(
        sink("ledger", primary_key_columns="event_id", upsert_on_primary_key=True)
    )
    # Quix allows one group_by per dataframe: the new payments go through a topic of their own,
    # keyed by account and currency, which a second dataframe sums.
    accepted = app.topic(f"{args.topic}-accepted", value_serializer="json", key_serializer="str")
    new.to_topic(accepted, key=lambda p: f"{p['account_id']}\x1f{p['currency']}")
    app.dataframe(accepted).apply(balance, stateful=True).sink(
        sink(
            "balances",
            primary_key_columns=["account_id", "currency"],
            upsert_on_primary_key=True,
        )
    )
    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quix_payments", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group-id", default="quix-payments")
    add_connection_arguments(parser)
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=1.0,
        help="seconds between commits (sinks flushed, then state and offsets)",
    )
    parser.add_argument("--state-dir", default="var/quix-state")
    args = parser.parse_args(argv)
    build(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
