"""The honest single-process alternative to the payments job: what a pragmatic engineer would
write instead of a Flink job, doing the same exactly-once work.

    python -m bench.baseline --input DIR --db-url jdbc:postgresql://HOST:PORT/DB --db-user USER
    python -m bench.baseline --source kafka --bootstrap-servers HOST:PORT --topic T --db-url ...

The same pure transforms (`transforms.payments`) decide every line; the same tables
(`jobs.payments_schema`) receive the results. Lines are applied in chunks (default 10,000): each
chunk's ledger, rejected and duplicate rows (COPY), its balance deltas (one upsert per account
and currency) and the position reached in each file go into **one** transaction, so a crash
and a rerun resume exactly where the last commit left off. Dedupe memory is a dict, reloaded
from the ledger on start.

`--source kafka` reads a topic's partitions instead (kafka-python, assigned, never a consumer
group's commits): a chunk ends at `--chunk-lines` lines or `--commit-every` seconds after its
first line, whichever comes first, and its transaction records per partition the next offset
to read (`kafka:<topic>:<partition>`, as the job names it), where a restart seeks to. It runs
until SIGTERM/SIGINT (committing what it holds) or, with `--bounded`, to the end offsets of its
start.
"""

import argparse
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, cast

from jobs.payments_schema import ensure_schema
from sinks.database import add_connection_arguments, connect
from transforms.inputs import input_files
from transforms.lines import RejectedLine
from transforms.payments import (
    DUPLICATE,
    NEW,
    Payment,
    Rejection,
    classify_duplicate,
    fingerprint,
    parse_line,
)

OFFSETS_DDL = (
    "CREATE TABLE IF NOT EXISTS baseline_offsets (source text PRIMARY KEY, "
    "lines_done bigint NOT NULL)"
)


def numbered_lines(path: Path, skip: int) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if number > skip:
                yield number, line


def load_seen(conn) -> dict[str, str]:
    """event_id -> fingerprint of every payment already in the ledger (dedupe after a restart)."""
    seen = {}
    for event_id, account, kind, amount, currency, occurred in conn.execute(
        "SELECT event_id, account_id, type, amount_minor, currency, "
        "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') "
        "FROM ledger"
    ):
        seen[event_id] = fingerprint(Payment(event_id, account, kind, amount, currency, occurred))
    return seen


class Chunk:
    def __init__(self):
        self.ledger: list[tuple] = []
        self.rejected: list[tuple] = []
        self.duplicates: list[tuple] = []
        self.balances: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.offsets: dict[str, int] = {}
        self.lines = 0

    def add(self, result, seen: dict[str, str]) -> None:
        self.lines += 1
        if isinstance(result, RejectedLine):
            self.rejected.append(
                (
                    result.reason,
                    result.raw,
                    result.source,
                    result.line_number,
                    result.detail,
                    result.raw_bytes,
                )
            )
            return
        verdict = classify_duplicate(result, seen.get(result.event_id))
        if verdict == NEW:
            seen[result.event_id] = fingerprint(result)
            self.ledger.append(
                (
                    result.event_id,
                    result.account_id,
                    result.type,
                    result.amount_minor,
                    result.currency,
                    result.occurred_at,
                )
            )
            total = self.balances[(result.account_id, result.currency)]
            total[0] += result.amount_minor
            total[1] += 1
        elif verdict == DUPLICATE:
            self.duplicates.append((result.event_id, result.source, result.line_number))
        else:
            conflict = cast(Rejection, verdict)
            self.rejected.append(
                (
                    conflict.reason,
                    conflict.raw,
                    conflict.source,
                    conflict.line_number,
                    conflict.detail,
                    conflict.raw_bytes,
                )
            )

    def commit(self, conn) -> None:
        with conn.transaction():
            with conn.cursor() as cur:
                copy(
                    cur,
                    "ledger (event_id, account_id, type, amount_minor, currency, occurred_at)",
                    self.ledger,
                )
                copy(
                    cur,
                    "rejected (reason, raw, source, line_number, detail, raw_bytes)",
                    self.rejected,
                )
                copy(cur, "duplicates (event_id, source, line_number)", self.duplicates)
                cur.executemany(
                    "INSERT INTO balances (account_id, currency, balance_minor, event_count) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (account_id, currency) DO UPDATE SET "
                    "balance_minor = balances.balance_minor + EXCLUDED.balance_minor, "
                    "event_count = balances.event_count + EXCLUDED.event_count",
                    [(a, c, b, n) for (a, c), (b, n) in sorted(self.balances.items())],
                )
                cur.executemany(
                    "INSERT INTO baseline_offsets (source, lines_done) VALUES (%s, %s) "
                    "ON CONFLICT (source) DO UPDATE SET lines_done = EXCLUDED.lines_done",
                    sorted(self.offsets.items()),
                )


def copy(cur, target: str, rows: list[tuple]) -> None:
    if rows:
        with cur.copy(f"COPY {target} FROM STDIN") as writer:
            for row in rows:
                writer.write_row(row)


def run(conn, input_dir: str, chunk_lines: int = 10_000) -> int:
    """Applies every line not yet applied; returns how many lines this run applied."""
    ensure_schema(conn)
    conn.execute(OFFSETS_DDL)
    conn.commit()
    done = dict(conn.execute("SELECT source, lines_done FROM baseline_offsets").fetchall())
    seen = load_seen(conn)
    conn.commit()
    applied = 0
    chunk = Chunk()
    for path in map(Path, input_files(input_dir)):  # the files the job reads
        source = os.path.abspath(path)  # as the job records it: the file's path
        for number, line in numbered_lines(path, done.get(str(path), 0)):
            chunk.add(parse_line(line, None, source, number), seen)
            chunk.offsets[str(path)] = number
            if chunk.lines >= chunk_lines:
                chunk.commit(conn)
                applied += chunk.lines
                chunk = Chunk()
    if chunk.lines:
        chunk.commit(conn)
        applied += chunk.lines
    return applied


def run_kafka(
    conn,
    bootstrap_servers: str,
    topic: str,
    chunk_lines: int = 10_000,
    commit_every: float = 0.2,
    bounded: bool = False,
    stop: Optional[threading.Event] = None,
) -> int:
    """Applies the topic's records not yet applied, until `stop` is set (or, `bounded`, until
    the end offsets of the start); returns how many records this run applied."""
    from kafka import KafkaConsumer, TopicPartition

    from jobs.produce import kafka_source

    stop = stop or threading.Event()
    ensure_schema(conn)
    conn.execute(OFFSETS_DDL)
    conn.commit()
    done = dict(conn.execute("SELECT source, lines_done FROM baseline_offsets").fetchall())
    seen = load_seen(conn)
    conn.commit()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="tpc-baseline",
        enable_auto_commit=False,
        request_timeout_ms=30_000,
        reconnect_backoff_max_ms=5_000,
        max_poll_records=chunk_lines,
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise SystemExit(f"topic {topic!r} not found at {bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, done.get(kafka_source(topic, tp.partition), 0))
        ends = consumer.end_offsets(assigned) if bounded else {}
        applied = 0
        chunk, chunk_started = Chunk(), 0.0
        while not stop.is_set():
            if bounded and all(consumer.position(tp) >= ends[tp] for tp in assigned):
                break
            for tp, records in consumer.poll(timeout_ms=50).items():
                source = kafka_source(topic, tp.partition)
                for record in records:
                    if not chunk.lines:
                        chunk_started = time.monotonic()
                    chunk.add(parse_line(record.value, None, source, record.offset), seen)
                    chunk.offsets[source] = record.offset + 1  # where a restart seeks to
            if chunk.lines and (
                chunk.lines >= chunk_lines or time.monotonic() - chunk_started >= commit_every
            ):
                chunk.commit(conn)
                applied += chunk.lines
                chunk = Chunk()
        if chunk.lines:
            chunk.commit(conn)
            applied += chunk.lines
        return applied
    finally:
        consumer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["files", "kafka"], default="files")
    parser.add_argument("--input", help="directory of JSON-lines files (--source files)")
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT[,HOST:PORT]")
    parser.add_argument("--topic")
    parser.add_argument(
        "--commit-every",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="kafka: commit a chunk this long after its first line at the latest",
    )
    parser.add_argument(
        "--bounded", action="store_true", help="kafka: stop at the end offsets of the start"
    )
    add_connection_arguments(parser)
    parser.add_argument("--chunk-lines", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.source == "files" and not args.input:
        parser.error("--input DIR is required with --source files")
    if args.source == "kafka" and not (args.bootstrap_servers and args.topic):
        parser.error("--source kafka needs --bootstrap-servers and --topic")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    with connect(
        args.db_url, args.db_user, args.password_env, args.password_file, connect_timeout=10
    ) as conn:
        if args.source == "kafka":
            lines = run_kafka(
                conn,
                args.bootstrap_servers,
                args.topic,
                args.chunk_lines,
                args.commit_every,
                args.bounded,
                stop,
            )
        else:
            lines = run(conn, args.input, args.chunk_lines)
    elapsed = time.monotonic() - started
    print(f"baseline applied {lines} lines in {elapsed:.1f} s ({lines / elapsed:,.0f} lines/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
