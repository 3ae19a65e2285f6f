"""Payments as a stream: events produced into Kafka at a steady rate while the payments job
runs, and the time from each event's production to its ledger row being visible in PostgreSQL.

    python -m bench.steady_stream [--rate 1000,5000] [--seconds 60] \\
        [--checkpoint-interval "200 ms","1 s"] [--runner job,script] [--out DIR]

Each run: a fresh topic (2 partitions) on a local Kafka broker, a fresh database, the payments
job as users start it (`python -m jobs.payments --source kafka`, mini cluster), a warm-up until
its first commit, then `--seconds` of production at `--rate` lines per second, then the wait
until every line is committed.

**Production.** One second of lines at a time from `transforms.sample_data` (the demo's mix:
5 % exact re-sends, 1 % conflicting re-sends, 2 % bad lines), handed to the Kafka producer in
10-ms slices on a fixed schedule (`acks=all`, idempotent, as `jobs.produce`). An event's
production time is the moment its slice is handed over; a producer that falls behind its
schedule is reported (`produced_per_second`), never hidden.

**Visibility.** The server runs with `track_commit_timestamp = on`, so PostgreSQL records when
each transaction committed; a ledger row's `pg_xact_commit_timestamp(xmin)` is the moment it
became visible to a new reader (in every ledger mode the row is written by the transaction whose
commit publishes it). Latency = that moment - its event's production time, for every event,
read after the run: nothing polls the database while the job runs, so the measurement costs the
job nothing. Both clocks are this machine's.

**Lag.** Every second: lines produced - lines the database says are applied (the job's Kafka
positions, `tpc_source_positions`, committed with the rows). Its growth over the production
window (a least-squares slope, lines/s) says whether the job keeps up: a job that keeps up has a
lag that goes up and down with the checkpoints and a slope near 0.

**CPU.** Every second, from /proc: CPU seconds per second of the job (its JVM and Python
workers), PostgreSQL, the Kafka broker and this process (the producer), and their RSS.
"""

import argparse
import itertools
import json
import os
import queue
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from jobs.payments import JOB as PAYMENTS
from jobs.payments_schema import ensure_schema
from jobs.produce import create_topic
from localenv.flink import child_process_environment
from localenv.kafka import LocalKafka
from localenv.paths import PROJECT_ROOT
from localenv.postgres import Database, LocalPostgres
from localenv.processes import descendants
from tests.sinks.support import kill_job, wait_for
from transforms import sample_data
from transforms.lines import SourceLine
from transforms.reference import process_lines

PASSWORD_ENV = "TPC_BENCH_PASSWORD"
PARTITIONS = 2
SLICES_PER_SECOND = 100
PERCENTILES = (0.5, 0.9, 0.99, 0.999)
# Visibility needs the commit time of every transaction (a restart-level setting).
SERVER_SETTINGS = {"track_commit_timestamp": "on"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- production


@dataclass
class Produced:
    """What the producer handed over: per second of production (`chunk`), the production time
    (epoch seconds) of each original event, by its number in the chunk's ids."""

    lines: int = 0
    events: int = 0
    times: dict[int, array] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    behind_seconds: float = 0.0  # the most the producer ran behind its schedule


def chunk_lines(prefix: str, chunk: int, rate: int) -> list[bytes]:
    """About `rate` lines (events plus the demo's extras), their event ids
    `<prefix><chunk>-<n>`."""
    return sample_data.generate_lines(
        max(1, round(rate / 1.08)), seed=chunk, id_prefix=f"{prefix}{chunk:05d}"
    )


class SteadyProducer(threading.Thread):
    """`rate` lines a second for `seconds` into `topic`, their ids starting with `prefix`. An
    event's lines (first, re-sends, conflicts) go to one partition, as a producer keying by
    event id would send them, so its first line is read first; bad lines go round robin."""

    def __init__(
        self, bootstrap_servers: str, topic: str, rate: int, seconds: int, prefix: str = "s"
    ):
        super().__init__(daemon=True, name="steady-producer")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.rate = rate
        self.seconds = seconds
        self.prefix = prefix
        self.produced = Produced()
        self.error: Optional[BaseException] = None
        self.stopped = threading.Event()
        # Lines are made a few seconds ahead, off the schedule's slices (a second of 20,000
        # lines takes the generator a good part of a second).
        self.ready: queue.Queue = queue.Queue(maxsize=3)

    def run(self) -> None:
        maker = threading.Thread(target=self._make, daemon=True, name="steady-lines")
        maker.start()
        try:
            self._produce()
        except BaseException as error:  # reported by the caller
            self.error = error
        finally:
            self.stopped.set()

    def _make(self) -> None:
        for chunk in range(1, self.seconds + 1):
            lines = chunk_lines(self.prefix, chunk, self.rate)
            while not self.stopped.is_set():
                try:
                    self.ready.put(lines, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def _produce(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap_servers.split(","),
            client_id="tpc-steady",
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=5,
            batch_size=256 * 1024,
            request_timeout_ms=30_000,
            delivery_timeout_ms=120_000,
            max_block_ms=30_000,
        )
        failures: list[BaseException] = []
        produced = self.produced
        first = self.ready.get(timeout=120)
        produced.started = time.time()
        start = time.monotonic()
        try:
            for second in range(self.seconds):
                chunk = second + 1
                lines = first if second == 0 else self.ready.get(timeout=120)
                times = produced.times[chunk] = array("d")
                expected = f'{{"event_id": "{self.prefix}{chunk:05d}-'.encode()
                per_slice = -(-len(lines) // SLICES_PER_SECOND)
                for index in range(SLICES_PER_SECOND):
                    due = start + second + index / SLICES_PER_SECOND
                    delay = due - time.monotonic()
                    if delay > 0:
                        if self.stopped.wait(delay):
                            return
                    else:
                        produced.behind_seconds = max(produced.behind_seconds, -delay)
                    now = time.time()
                    for line in lines[index * per_slice : (index + 1) * per_slice]:
                        value = line.rstrip(b"\n")
                        partition, number = partition_of(value, expected, produced.lines)
                        # An event's first line has the next number of its chunk; re-sends
                        # and conflicts repeat an earlier one (bad lines have none: 0).
                        if number == len(times) + 1:
                            times.append(now)
                        producer.send(self.topic, value=value, partition=partition).add_errback(
                            failures.append
                        )
                        produced.lines += 1
                    if failures:
                        raise failures[0]
                produced.events += len(times)
            producer.flush(timeout=120)
            if failures:
                raise failures[0]
        finally:
            produced.finished = time.time()
            producer.close(timeout=10)


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Variant:
    """A named set of extra flags for the job (e.g. `-D` Flink settings): what item "what moves
    the numbers" compares, side by side in one run. The script and Quix ignore it."""

    name: str
    job_args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """`NAME=FLAGS`, e.g. `unaligned=-D execution.checkpointing.unaligned.enabled=true`."""
        name, equals, flags = text.partition("=")
        name = name.strip()
        if not equals or not name or name.startswith("-") or " " in name:
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME=FLAGS")
        return cls(name.strip(), tuple(shlex.split(flags)))


DEFAULT_VARIANT = Variant("default")


@dataclass(frozen=True)
class Runner:
    """What reads the topic: its command, and how far it applied. The job and the script commit
    their Kafka positions with their rows (`positions_table`); Quix commits its consumer
    group's offsets to Kafka after its sinks flushed."""

    name: str
    positions_table: str = ""  # with `applied_column`: the lines applied, per partition
    applied_column: str = ""

    def command(
        self,
        db: Database,
        bootstrap: str,
        topic: str,
        interval: str,
        work: Path,
        job_args: tuple[str, ...] = (),
    ):
        """The reader's command line; `job_args` go to the job's only (a variant's flags)."""
        connection = ["--db-url", db.jdbc_url, "--db-user", db.user, "--password-env"]
        kafka = ["--bootstrap-servers", bootstrap, "--topic", topic]
        # The script and Quix commit at most `interval` after a line: their counterpart of the
        # job's checkpoint interval.
        seconds = parse_interval_seconds(interval)
        if self.name == "script":
            return [
                sys.executable,
                "-m",
                "bench.baseline",
                "--source",
                "kafka",
                *kafka,
                *connection,
                PASSWORD_ENV,
                "--commit-every",
                seconds,
            ]
        if self.name == "quix":
            return [
                str(quix_python()),
                "-m",
                "bench.quix_payments",
                *kafka,
                *connection,
                PASSWORD_ENV,
                "--commit-interval",
                seconds,
                "--group-id",
                QUIX_GROUP,
                "--state-dir",
                str(work / "quix-state"),
            ]
        return [
            sys.executable,
            "-m",
            "jobs.payments",
            "--source",
            "kafka",
            *kafka,
            *connection,
            PASSWORD_ENV,
            "--checkpoint-interval",
            interval,
            "--checkpoint-dir",
            str(work / "checkpoints"),
            "--progress-interval",
            "10",
            *job_args,
        ]

    def settled(self, bootstrap: str) -> bool:
        """Nothing left in flight past what `applied` counts: for Quix, its consumer group has
        committed every partition it reads (its own repartition topics too) up to the end."""
        if self.positions_table:
            return True
        from kafka import KafkaAdminClient
        from kafka.admin import OffsetSpec
        from kafka.errors import CoordinatorNotAvailableError

        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
        try:
            committed = admin.list_group_offsets({QUIX_GROUP: None}).get(QUIX_GROUP, {})
            ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in committed})
        except CoordinatorNotAvailableError:
            return False
        finally:
            admin.close()
        return all(committed[tp].offset >= ends[tp].offset for tp in committed)

    def applied(self, db: Database, bootstrap: str, topic: str) -> int:
        """Lines applied so far, as this reader has committed them."""
        if not self.positions_table:
            return committed_offsets(bootstrap, QUIX_GROUP, topic)
        with db.connect(connect_timeout=10) as conn:
            if not conn.execute("SELECT to_regclass(%s)", (self.positions_table,)).fetchone()[0]:
                return 0  # before its first commit made the table
            row = conn.execute(
                f"SELECT coalesce(sum({self.applied_column}), 0) FROM {self.positions_table} "
                "WHERE source LIKE 'kafka:%%'"
            ).fetchone()
            return int(row[0])


RUNNERS = {
    # The job's Kafka positions: lines applied per partition.
    "job": Runner("job", "tpc_source_positions", "lines"),
    # The script's offsets: the next offset per partition, = lines applied on a fresh topic.
    "script": Runner("script", "baseline_offsets", "lines_done"),
    # Quix Streams (`bench.quix_payments`): its consumer group's committed offsets.
    "quix": Runner("quix"),
}
QUIX_GROUP = "quix-payments"
QUIX_VERSION = "3.28.1"


def quix_python() -> Path:
    """The Python of Quix Streams' own virtualenv (`var/quix-venv`), made on first use: Quix
    needs protobuf >= 6, apache-beam 2.61 refuses it, so they cannot share the project's."""
    venv = PROJECT_ROOT / "var" / "quix-venv"
    python = venv / "bin" / "python"
    # psycopg: the project's URL parsing (`sinks.database`), which the application uses.
    packages = [f"quixstreams[postgresql]=={QUIX_VERSION}", "psycopg[binary]>=3.1,<4"]
    marker = venv / ("installed-" + "-".join(sorted(packages)).replace("/", "_"))
    if not marker.exists():
        print(f"  installing Quix Streams {QUIX_VERSION} into {venv} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *packages],
            check=True,
            timeout=900,
        )
        marker.touch()
    return python


def committed_offsets(bootstrap: str, group: str, topic: str) -> int:
    """The sum of `group`'s committed offsets on `topic` (0 before its first commit)."""
    from kafka import KafkaAdminClient
    from kafka.errors import CoordinatorNotAvailableError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except CoordinatorNotAvailableError:
        return 0  # the group has not committed yet (its coordinator is made on first use)
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def parse_interval_seconds(interval: str) -> str:
    number, _, unit = interval.strip().partition(" ")
    scale = {"ms": 0.001, "s": 1.0, "": 1.0}[unit.strip()]
    return str(float(number) * scale)


def process_tree(root: int) -> set[int]:
    """`root` and its descendants."""
    return {root} | descendants({root})


def cpu_and_rss(pids: set[int]) -> dict[int, tuple[float, int]]:
    """Per process of `pids` still alive: CPU seconds (user + system) and RSS bytes."""
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            found[pid] = ((int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]))
        except (OSError, IndexError, ValueError):
            continue
    return {pid: (cpu, pages * PAGE_BYTES) for pid, (cpu, pages) in found.items()}


class Sampler(threading.Thread):
    """Once a second: the lag (produced - applied) and each process group's CPU and RSS."""

    def __init__(
        self,
        applied: Callable[[], int],
        producer: SteadyProducer,
        groups: dict[str, Callable[[], set[int]]],
        applied_before: int,
    ):
        super().__init__(daemon=True, name="stream-sampler")
        self.applied = applied
        self.producer = producer
        # name -> its processes' ids, looked up at every sample: sessions and workers come
        # and go, and a process's CPU counts from its first sample
        self.groups = groups
        self.applied_before = applied_before  # the warm-up's lines
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        previous: dict[int, float] = {}
        last = time.monotonic()
        while not self.stopped.wait(1.0):
            now = time.monotonic()
            sample: dict = {"t": round(time.time(), 3)}
            sample["applied"] = self.applied() - self.applied_before
            sample["produced"] = self.producer.produced.lines
            sample["lag"] = sample["produced"] - sample["applied"]
            first = not previous
            for name, pids in self.groups.items():
                found = cpu_and_rss(pids())
                if not first:
                    used = sum(cpu - previous.get(pid, 0.0) for pid, (cpu, _) in found.items())
                    sample[f"{name}_cpu"] = round(used / (now - last), 3)
                sample[f"{name}_rss_mb"] = round(sum(rss for _, rss in found.values()) / 2**20, 1)
                previous.update((pid, cpu) for pid, (cpu, _) in found.items())
            last = now
            self.samples.append(sample)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    summary = {f"p{share * 100:g}": round(percentile(ordered, share), 3) for share in PERCENTILES}
    summary["max"] = round(ordered[-1], 3)
    return summary


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def visible_latencies(
    db: Database, produced: Produced, strict: bool = True
) -> tuple[list[float], list[list]]:
    """Every steady event's latency, and per second of production its p50/p99 (the chart's
    series). `strict`: fails if an event is missing from the ledger."""
    latencies: list[float] = []
    per_second: dict[int, list[float]] = {}
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT event_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 "
            "FROM ledger WHERE event_id LIKE 's%'"
        )
        for event_id, committed in rows:
            chunk, number = event_id[1:].split("-")
            chunk_times = produced.times.get(int(chunk))
            if chunk_times is None or committed is None:
                continue  # the warm-up's events
            value = committed - chunk_times[int(number) - 1]
            latencies.append(value)
            per_second.setdefault(int(chunk), []).append(value)
    if strict and len(latencies) != produced.events:
        raise RuntimeError(
            f"{produced.events} events produced, {len(latencies)} in the ledger: the run is "
            "not exact, its latencies mean nothing"
        )
    series = [
        [chunk, round(percentile(sorted(v), 0.5), 3), round(percentile(sorted(v), 0.99), 3)]
        for chunk, v in sorted(per_second.items())
    ]
    return latencies, series


def partition_of(value: bytes, expected: bytes, sent: int) -> tuple[int, int]:
    """(partition, event number or 0) of a line: an event's lines go by its number, other
    lines round robin by how many lines were sent before (as `SteadyProducer` sends them)."""
    if value.startswith(expected):
        number = int(value[len(expected) : len(expected) + 8])
        return number % PARTITIONS, number
    return sent % PARTITIONS, 0


def produced_lines(topic: str, streams: list[tuple[str, int, int]]) -> list[SourceLine]:
    """Every line the producers of `streams` (prefix, rate, seconds; in order) put into the
    fresh `topic`, as the readers see it: `kafka:<topic>:<partition>`, its offset."""
    offsets = [0] * PARTITIONS
    found = []
    for prefix, rate, seconds in streams:
        sent = 0
        for chunk in range(1, seconds + 1):
            expected = f'{{"event_id": "{prefix}{chunk:05d}-'.encode()
            for line in chunk_lines(prefix, chunk, rate):
                value = line.rstrip(b"\n")
                partition, _ = partition_of(value, expected, sent)
                found.append(SourceLine(f"kafka:{topic}:{partition}", offsets[partition], value))
                offsets[partition] += 1
                sent += 1
    return found


def exactness(db: Database, lines: list[SourceLine]) -> dict:
    """The tables against what the pure rules make of `lines`: per table, rows expected and
    found; lines applied twice (rows over the expected count, balances counted twice) and lost
    (rows under it, ledger events missing)."""
    expected = process_lines(lines)
    with db.connect() as conn:
        ledger = {row[0] for row in conn.execute("SELECT event_id FROM ledger")}
        balances = dict(
            ((a, c), (b, n))
            for a, c, b, n in conn.execute(
                "SELECT account_id, currency, balance_minor, event_count FROM balances"
            )
        )
        duplicates = conn.execute("SELECT count(*) FROM duplicates").fetchone()[0]
        rejected = conn.execute("SELECT count(*) FROM rejected").fetchone()[0]
    want_ledger = {row.event_id for row in expected.ledger}
    want_balances = {
        (b.account_id, b.currency): (b.balance_minor, b.event_count) for b in expected.balances
    }
    counted = sum(n for _, n in balances.values()) - sum(n for _, n in want_balances.values())
    report = {
        "ledger": {
            "expected": len(want_ledger),
            "found": len(ledger),
            "missing": len(want_ledger - ledger),
            "unexpected": len(ledger - want_ledger),
        },
        "balances": {
            "expected": len(want_balances),
            "differing": sum(balances.get(key) != value for key, value in want_balances.items()),
            "events_counted_over": max(counted, 0),
            "events_counted_under": max(-counted, 0),
        },
        "duplicates": {"expected": expected.duplicates, "found": duplicates},
        "rejected": {"expected": len(expected.rejected), "found": rejected},
    }
    report["applied_twice"] = (
        max(duplicates - expected.duplicates, 0)
        + max(rejected - len(expected.rejected), 0)
        + max(counted, 0)
    )
    report["lost"] = (
        len(want_ledger - ledger)
        + max(expected.duplicates - duplicates, 0)
        + max(len(expected.rejected) - rejected, 0)
        + max(-counted, 0)
    )
    return report


# --------------------------------------------------------------------------- one run


def start(
    runner: Runner,
    db: Database,
    kafka: LocalKafka,
    topic: str,
    interval: str,
    work: Path,
    job_args: tuple[str, ...] = (),
):
    log = open(work / f"{runner.name}.log", "w")
    return subprocess.Popen(
        runner.command(db, kafka.bootstrap_servers, topic, interval, work, job_args),
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password, "PYTHONPATH": str(PROJECT_ROOT)}),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def commit_scope_of(job_args: tuple[str, ...]) -> str:
    """The --commit-scope a job's flags give (the job's default: checkpoint)."""
    scope = "checkpoint"
    for index, arg in enumerate(job_args):
        if arg == "--commit-scope" and index + 1 < len(job_args):
            scope = job_args[index + 1]
        elif arg.startswith("--commit-scope="):
            scope = arg.partition("=")[2]
    return scope


class ReaderExited(RuntimeError):
    """The reader stopped by itself: a refusal (a setting the sink does not take) or a crash.
    The message ends with the last lines of its log, which dies with the run's directory."""

    def __init__(self, runner: str, log: Path):
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        tail = " | ".join(line.strip() for line in lines[-3:])
        super().__init__(f"the {runner} exited: {tail}")


def job_checkpoints(log: Path) -> dict:
    """The running job's checkpoints as Flink's REST API counts them: how many completed, and
    their end-to-end durations (ms; trigger to the last acknowledgement, before the commit).
    The part of the latency that is the checkpoint itself. {} when the API cannot say."""
    import re
    import urllib.request

    found = re.search(r"job ([0-9a-f]{32}) running, Flink's REST API at (\S+)", log.read_text())
    if not found:
        return {}
    job_id, base = found.groups()
    try:
        with urllib.request.urlopen(f"{base}/jobs/{job_id}/checkpoints", timeout=10) as answer:
            stats = json.load(answer)
    except (OSError, ValueError):
        return {}
    durations = stats.get("summary", {}).get("end_to_end_duration", {})
    return {
        "completed": stats.get("counts", {}).get("completed"),
        "failed": stats.get("counts", {}).get("failed"),
        **{f"duration_ms_{k}": durations.get(k) for k in ("p50", "p99", "max") if k in durations},
    }


def run_stream(
    server: LocalPostgres,
    kafka: LocalKafka,
    work: Path,
    rate: int,
    seconds: int,
    interval: str = "1 s",
    runner: str = "job",
    drain_timeout: float = 300.0,
    kill_after: Optional[float] = None,
    variant: Variant = DEFAULT_VARIANT,
    warm_up_seconds: int = 0,
) -> dict:
    """One steady-rate run; see the module docstring. Returns its measurements.
    `warm_up_seconds`: first that long at `rate`, not measured, until applied. `kill_after`:
    that many seconds into the production, `kill -9` the reader (its whole process group) and
    start the same command again, without a checkpoint; then the tables are compared with what
    the rules make of every line produced (`exactness`). `variant`: extra flags for the job."""
    reader = RUNNERS[runner]
    name = f"stream-{runner}-{rate}-{interval.replace(' ', '')}-{time.time_ns() % 10**9}"
    run_dir = work / name
    run_dir.mkdir(parents=True)
    db = server.create_database(name.replace("-", "_"))
    topic = name
    create_topic(kafka.bootstrap_servers, topic, PARTITIONS)
    if runner == "quix":  # Quix writes into the job's tables; it creates none
        with db.connect() as conn:
            ensure_schema(conn)
    current = {"process": start(reader, db, kafka, topic, interval, run_dir, variant.job_args)}
    killed: dict[str, float] = {}

    # Subtask scope commits no source positions: count the lines in the tables instead.
    counts_rows = runner == "job" and commit_scope_of(variant.job_args) == "subtask"

    def applied() -> int:
        if counts_rows:
            with db.connect(connect_timeout=10) as conn:
                return PAYMENTS.lines_applied(conn)
        return reader.applied(db, kafka.bootstrap_servers, topic)

    def exited() -> bool:
        return current["process"].poll() is not None

    def kill_and_start_again(started: float) -> None:
        if producer.stopped.wait(max(0.0, started + (kill_after or 0) - time.time())):
            return
        before = applied()
        killed["at_seconds"] = round(time.time() - started, 2)
        kill_job(current["process"])
        killed_at = time.monotonic()
        current["process"] = start(reader, db, kafka, topic, interval, run_dir, variant.job_args)
        wait_for(lambda: applied() > before, 300, "a commit after the restart", interval=0.2)
        killed["first_commit_after_seconds"] = round(time.monotonic() - killed_at, 2)

    try:
        warm_up = SteadyProducer(kafka.bootstrap_servers, topic, 20, 1, prefix="w")
        warm_up.run()  # 1 s of 20 lines: the job is up once they are applied
        if warm_up.error:
            raise warm_up.error
        wait_for(
            lambda: exited() or applied() >= warm_up.produced.lines,
            300,
            "the job's first commit",
            interval=0.5,
        )
        if exited():
            raise ReaderExited(runner, run_dir / f"{runner}.log")
        warmed = warm_up.produced.lines
        streams = [("w", warm_up.rate, warm_up.seconds)]
        if warm_up_seconds:
            # The job's JVM spends its first minutes compiling: on 2 cores the JIT took a whole
            # core for over a minute (measured), which is start-up, not the steady state.
            ramp = SteadyProducer(kafka.bootstrap_servers, topic, rate, warm_up_seconds, prefix="r")
            ramp.run()
            if ramp.error:
                raise ramp.error
            warmed += ramp.produced.lines
            streams.append(("r", rate, warm_up_seconds))
            wait_for(lambda: exited() or applied() >= warmed, 300, "the warm-up", interval=0.5)
            if exited():
                raise ReaderExited(runner, run_dir / f"{runner}.log")
        producer = SteadyProducer(kafka.bootstrap_servers, topic, rate, seconds)
        # The job's JVM and Python workers (all started by now), PostgreSQL's postmaster and
        # its sessions, the broker; the producer is this process alone (the others are its
        # children).
        postmaster, broker = server.server_pid(), kafka.broker_pid()
        groups: dict[str, Callable[[], set[int]]] = {
            "reader": lambda: process_tree(current["process"].pid),
            "producer": lambda: {os.getpid()},
            "postgres": lambda: process_tree(postmaster) if postmaster else set(),
            "kafka": lambda: {broker} if broker else set(),
        }
        sampler = Sampler(applied, producer, groups, warmed)
        producer.start()
        sampler.start()
        killer = None
        if kill_after is not None:
            while not producer.produced.started and producer.is_alive():
                time.sleep(0.01)
            killer = threading.Thread(
                target=kill_and_start_again, args=(producer.produced.started,), daemon=True
            )
            killer.start()
        producer.join()
        if killer:
            killer.join()
        if producer.error:
            raise producer.error
        produced = producer.produced
        drained = time.monotonic()
        wait_for(
            lambda: (
                exited()
                or (
                    applied() - warmed >= produced.lines and reader.settled(kafka.bootstrap_servers)
                )
            ),
            drain_timeout,
            f"the job to apply all {produced.lines:,} lines",
            interval=0.2,
        )
        drain_seconds = time.monotonic() - drained
        sampler.stopped.set()
        sampler.join(timeout=10)
        if exited():
            raise ReaderExited(runner, run_dir / f"{runner}.log")
        result: dict = {}
        if runner == "job" and kill_after is None:
            result["checkpoints"] = job_checkpoints(run_dir / "job.log")
    finally:
        kill_job(current["process"])
    if kill_after is not None:
        streams.append(("s", rate, seconds))
        result["kill"] = {**killed, **exactness(db, produced_lines(topic, streams))}
    latencies, series = visible_latencies(db, produced, strict=kill_after is None)
    window = [
        (s["t"] - produced.started, s["lag"])
        for s in sampler.samples
        if s["t"] <= produced.finished and s["t"] - produced.started >= min(10, seconds / 3)
    ]
    cpu = {
        name: round(statistics.fmean(values), 2)
        for name in groups
        if (values := [s[f"{name}_cpu"] for s in sampler.samples if f"{name}_cpu" in s])
    }
    return {
        **result,
        "runner": runner,
        "variant": variant.name,
        "job_args": list(variant.job_args) if runner == "job" else [],
        "rate": rate,
        "checkpoint_interval": interval,
        "warm_up_seconds": warm_up_seconds,
        "seconds": seconds,
        "lines": produced.lines,
        "events": produced.events,
        "produced_per_second": round(produced.lines / (produced.finished - produced.started), 1),
        "producer_behind_seconds": round(produced.behind_seconds, 3),
        "latency_seconds": latency_summary(latencies),
        "lag_max": max((s["lag"] for s in sampler.samples), default=0),
        "lag_growth_per_second": round(slope(window), 1),
        "drain_seconds": round(drain_seconds, 2),
        "cpu": cpu,
        "per_second": series,
        "samples": sampler.samples,
    }


# --------------------------------------------------------------------------- sustainable rate

# A reader keeps up at a rate when its p99 stays within this (the bar for payments)...
P99_BOUND_SECONDS = 1.0
# ...its lag does not grow: a least-squares growth above 1 % of the rate (e.g. 10 lines/s at
# 1,000/s: 1,800 lines more at the end of 3 minutes) is a backlog building, not the sawtooth of
# the checkpoints, whose slope over a window of many checkpoints is near 0 (measured -3 to +4)...
LAG_GROWTH_SHARE = 0.01
# ...and the producer held the rate (a producer that fell behind measured a lower rate).
PRODUCED_SHARE = 0.98


def falls_behind(run: dict) -> bool:
    """Its lag grows, or the producer could not hold the rate: a higher rate would only pile
    up a bigger backlog."""
    return (
        run["lag_growth_per_second"] > LAG_GROWTH_SHARE * run["rate"]
        or run["produced_per_second"] < PRODUCED_SHARE * run["rate"]
    )


def verdict(run: dict) -> tuple[bool, str]:
    """Whether `run`'s reader kept up with its rate, and if not, why."""
    if "error" in run:
        return False, run["error"]
    lat = run.get("latency_seconds") or {}
    reasons = []
    if run["produced_per_second"] < PRODUCED_SHARE * run["rate"]:
        reasons.append(f"the producer made only {run['produced_per_second']:,}/s")
    if lat.get("p99") is None or lat["p99"] > P99_BOUND_SECONDS:
        reasons.append(f"p99 {lat.get('p99')} s > {P99_BOUND_SECONDS:g} s")
    if run["lag_growth_per_second"] > LAG_GROWTH_SHARE * run["rate"]:
        reasons.append(f"lag grows {run['lag_growth_per_second']}/s")
    return not reasons, "; ".join(reasons) or "keeps up"


def failed_run(
    runner: str, variant: Variant, rate: int, interval: str, seconds: int, error: str
) -> dict:
    """A run whose reader exited before the end: its error, and no figures."""
    return {
        "runner": runner,
        "variant": variant.name,
        "job_args": list(variant.job_args) if runner == "job" else [],
        "rate": rate,
        "checkpoint_interval": interval,
        "seconds": seconds,
        "error": error,
    }


def series_key(run: dict) -> tuple[str, str, str]:
    return run["runner"], run["checkpoint_interval"], run.get("variant", DEFAULT_VARIANT.name)


def highest_sustainable(runs: list[dict]) -> list[dict]:
    """Per reader, checkpoint interval and variant: the highest rate it kept up with (None if
    none), and the lowest it did not, with why."""
    found: dict[tuple, dict] = {}
    for run in sorted(runs, key=lambda r: r["rate"]):
        entry = found.setdefault(
            series_key(run), {"highest": None, "first_failed": None, "why": ""}
        )
        kept_up, why = verdict(run)
        if kept_up and entry["first_failed"] is None:
            entry["highest"] = run["rate"]
        elif not kept_up and entry["first_failed"] is None:
            entry["first_failed"], entry["why"] = run["rate"], why
    return [
        {"runner": r, "checkpoint_interval": i, "variant": v, **entry}
        for (r, i, v), entry in found.items()
    ]


def sweep(
    server: LocalPostgres,
    kafka: LocalKafka,
    work: Path,
    rates: list[int],
    seconds: int,
    intervals: list[str],
    runners: list[str],
    variants: tuple[Variant, ...] = (DEFAULT_VARIANT,),
    kill_after: Optional[float] = None,
    step: bool = False,
    report: Callable[[str], None] = print,
    on_run: Callable[[list[dict]], None] = lambda runs: None,
    warm_up_seconds: int = 0,
) -> list[dict]:
    """Every interval x variant x reader x rate, rates in ascending order. With `step`, a series
    stops at its first rate at which it falls behind (`falls_behind`): the rates above it would
    only pile up a backlog, at minutes each. (A p99 over the bound alone does not stop it: the
    table shows how the latency grows with the rate.)"""
    runs = []
    for interval, variant, runner in itertools.product(intervals, variants, runners):
        if runner != "job" and variant != variants[0]:
            continue  # the script and Quix take no variant: measured once per interval
        for rate in sorted(rates):
            label = "" if variant == DEFAULT_VARIANT else f" [{variant.name}]"
            report(f"{runner}{label}: {rate:,} lines/s, checkpoint every {interval}:")
            try:
                run = run_stream(
                    server,
                    kafka,
                    work,
                    rate,
                    seconds,
                    interval,
                    runner,
                    kill_after=kill_after,
                    variant=variant,
                    warm_up_seconds=warm_up_seconds,
                )
            except ReaderExited as exited:
                # A variant the job refuses is a result too. Its higher rates would be refused
                # alike: the sweep goes on with the next series.
                report(f"  {exited}")
                runs.append(failed_run(runner, variant, rate, interval, seconds, str(exited)))
                on_run(runs)
                break
            runs.append(run)
            on_run(runs)  # e.g. write what is measured so far: a long sweep stopped keeps it
            lat = run["latency_seconds"]
            kept_up, why = verdict(run)
            report(
                f"  p50 {lat.get('p50')} s, p99 {lat.get('p99')} s, max {lat.get('max')} s; lag "
                f"growth {run['lag_growth_per_second']}/s: {why}"
            )
            if step and falls_behind(run):
                break
    return runs


# --------------------------------------------------------------------------- report


def reader_label(run: dict) -> str:
    variant = run.get("variant", DEFAULT_VARIANT.name)
    return run["runner"] if variant == DEFAULT_VARIANT.name else f"{run['runner']} [{variant}]"


def markdown(runs: list[dict]) -> str:
    out = [
        "| reader | rate (lines/s) | checkpoint / commit every | produced/s | p50 s | p90 s "
        "| p99 s | p99.9 s | max s | lag max | lag growth /s "
        "| CPU reader / pg / kafka / producer | checkpoint p50 / p99 ms | keeps up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if "error" in run:
            cells = " | ".join(["-"] * 10)
            error = run["error"].replace("|", "/")
            out.append(
                f"| {reader_label(run)} | {run['rate']:,} | {run['checkpoint_interval']} "
                f"| {cells} | failed: {error} |"
            )
            continue
        lat = run["latency_seconds"]
        cpu = " / ".join(
            str(run["cpu"].get(n, "-")) for n in ("reader", "postgres", "kafka", "producer")
        )
        kept_up, why = verdict(run)
        checkpoints = run.get("checkpoints") or {}
        checkpoint = (
            f"{checkpoints['duration_ms_p50']:.0f} / {checkpoints['duration_ms_p99']:.0f}"
            if checkpoints.get("duration_ms_p99") is not None
            else "-"
        )
        out.append(
            f"| {reader_label(run)} | {run['rate']:,} | {run['checkpoint_interval']} "
            f"| {run['produced_per_second']:,} "
            f"| {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['p99.9']} | {lat['max']} "
            f"| {run['lag_max']:,} | {run['lag_growth_per_second']} "
            f"| {cpu} | {checkpoint} | {'yes' if kept_up else 'no: ' + why} |"
        )
    variants = {
        run["variant"]: " ".join(run["job_args"])
        for run in runs
        if run.get("job_args") and run.get("variant")
    }
    warm = sorted({run.get("warm_up_seconds") or 0 for run in runs} - {0})
    if warm:
        out += [
            "",
            f"Each run first produced {' or '.join(map(str, warm))} s at its rate, unmeasured, "
            "until applied: the figures are the steady state, past the JVM's compilation.",
        ]
    if variants:
        out += ["", "Variants (the job's extra flags):", ""]
        out += [f"- **{name}**: `{flags}`" for name, flags in variants.items()]
    out += [
        "",
        f"Highest rate kept up with (p99 <= {P99_BOUND_SECONDS:g} s, lag growth <= "
        f"{LAG_GROWTH_SHARE:.0%} of the rate, the producer at >= {PRODUCED_SHARE:.0%} of it), "
        "among the rates run:",
        "",
        "| reader | checkpoint / commit every | highest rate kept up with | first rate not | why |",
        "|---|---|---|---|---|",
    ]
    for entry in highest_sustainable(runs):
        label = reader_label(entry)
        highest = f"{entry['highest']:,}" if entry["highest"] else "none"
        failed = f"{entry['first_failed']:,}" if entry["first_failed"] else "-"
        out.append(
            f"| {label} | {entry['checkpoint_interval']} | {highest} | {failed} "
            f"| {entry['why'] or '-'} |"
        )
    killed = [run for run in runs if "kill" in run]
    if killed:
        out += [
            "",
            "| reader | killed at s | first commit after s | ledger expected / found / missing "
            "| duplicates rows expected / found | rejected rows expected / found "
            "| balances differing | lines applied twice | lines lost |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for run in killed:
            k = run["kill"]
            out.append(
                f"| {run['runner']} | {k.get('at_seconds', '-')} "
                f"| {k.get('first_commit_after_seconds', '-')} "
                f"| {k['ledger']['expected']:,} / {k['ledger']['found']:,} / "
                f"{k['ledger']['missing']:,} "
                f"| {k['duplicates']['expected']:,} / {k['duplicates']['found']:,} "
                f"| {k['rejected']['expected']:,} / {k['rejected']['found']:,} "
                f"| {k['balances']['differing']} | {k['applied_twice']:,} | {k['lost']:,} |"
            )
    return "\n".join(out) + "\n"


def svg_chart(runs: list[dict], width: int = 760, panel: int = 220) -> str:
    """Per run, p50 and p99 latency of each second's events over the run (plain SVG)."""
    height = panel * len(runs) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for index, run in enumerate(runs):
        top = 10 + index * panel
        series = run.get("per_second")
        if not series:
            continue
        high = max(max(p99 for _, _, p99 in series), 0.001) * 1.1
        last = max(chunk for chunk, _, _ in series)

        def x(chunk: float, last: int = last) -> float:
            return 60 + (width - 80) * (chunk - 1) / max(last - 1, 1)

        def y(value: float, top: int = top, high: float = high) -> float:
            return top + 30 + (panel - 60) * (1 - value / high)

        out.append(
            f'<text x="60" y="{top + 18}">{run["rate"]:,} lines/s, checkpoint every '
            f"{run['checkpoint_interval']} ({reader_label(run)}): latency of each second's events "
            f"(p50 blue, p99 red), 0 to {high:.2f} s</text>"
        )
        out.append(
            f'<line x1="60" y1="{y(0):.1f}" x2="{width - 20}" y2="{y(0):.1f}" stroke="#999"/>'
        )
        for column, colour in ((1, "#4a7ab5"), (2, "#c0392b")):
            points = " ".join(f"{x(p[0]):.1f},{y(p[column]):.1f}" for p in series)
            out.append(f'<polyline fill="none" stroke="{colour}" points="{points}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_rates(runs: list[dict], width: int = 760, height: int = 360) -> str:
    """p50, p99 and p99.9 against the rate, one line per reader, interval and variant, on a
    log scale of seconds (plain SVG): where each reader's latency runs away."""
    import math

    series: dict[tuple, list[tuple[int, dict]]] = {}
    for run in runs:
        if run.get("latency_seconds"):
            series.setdefault(series_key(run), []).append((run["rate"], run["latency_seconds"]))
    if not series:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\n'
    rates = sorted({rate for points in series.values() for rate, _ in points})
    values = [lat[p] for points in series.values() for _, lat in points for p in ("p50", "p99.9")]
    low = math.log10(max(min(values), 0.01))
    high = math.log10(max(max(values), 0.02)) + 0.05
    left, right, top, bottom = 60, width - 200, 30, height - 40

    def x(rate: int) -> float:
        return left + (right - left) * rates.index(rate) / max(len(rates) - 1, 1)

    def y(seconds: float) -> float:
        return bottom - (bottom - top) * (math.log10(max(seconds, 0.01)) - low) / (high - low)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16">Latency against rate: p50 (thin), p99 (thick), p99.9 '
        "(dashed); seconds, log scale</text>",
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
    ]
    for rate in rates:
        out.append(f'<text x="{x(rate) - 15:.1f}" y="{bottom + 16}">{rate:,}/s</text>')
    for seconds in (0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60):
        if low <= math.log10(seconds) <= high:
            out.append(f'<text x="8" y="{y(seconds) + 4:.1f}">{seconds:g} s</text>')
            out.append(
                f'<line x1="{left}" y1="{y(seconds):.1f}" x2="{right}" y2="{y(seconds):.1f}" '
                f'stroke="#eee"/>'
            )
    colours = ["#4a7ab5", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"]
    for index, (key, points) in enumerate(sorted(series.items())):
        colour = colours[index % len(colours)]
        points.sort(key=lambda point: point[0])
        for name, style in (
            ("p50", 'stroke-width="1"'),
            ("p99", 'stroke-width="2.5"'),
            ("p99.9", 'stroke-width="1" stroke-dasharray="4 3"'),
        ):
            line = " ".join(f"{x(rate):.1f},{y(lat[name]):.1f}" for rate, lat in points)
            out.append(f'<polyline fill="none" stroke="{colour}" {style} points="{line}"/>')
        runner, interval, variant = key
        label = runner if variant == DEFAULT_VARIANT.name else f"{runner} [{variant}]"
        out.append(
            f'<text x="{right + 10}" y="{top + 14 * index + 10}" fill="{colour}">'
            f"{label}, every {interval}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.steady_stream", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--rate", default="1000", help="lines per second, comma-separated (e.g. 1000,5000)"
    )
    parser.add_argument("--seconds", type=int, default=60, help="of steady production per run")
    parser.add_argument(
        "--warm-up-seconds",
        type=int,
        default=0,
        help="first produce this long at the run's rate, unmeasured, and wait until it is "
        "applied: the steady state, past the JVM's compilation (about a minute on 2 cores)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        default="1 s",
        help='comma-separated, e.g. "200 ms,1 s"',
    )
    parser.add_argument(
        "--runner",
        default="job",
        help="comma-separated: job (the payments job, as users start it), script (the "
        "single-process script, bench.baseline --source kafka)",
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        metavar="SECONDS",
        help="kill -9 the reader this long into the production, start the same command again, "
        "and count the lines applied twice and lost",
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=Variant.parse,
        default=[],
        metavar="NAME=FLAGS",
        help="repeatable: the job once more with these extra flags, e.g. "
        "'unaligned=-D execution.checkpointing.unaligned.enabled=true' (the job as it is always "
        "runs first, as 'default')",
    )
    parser.add_argument(
        "--step",
        action="store_true",
        help="per reader, interval and variant, stop at the first rate at which it falls "
        "behind (a growing lag): the way to find the highest sustainable rate",
    )
    parser.add_argument("--out", type=Path, help="directory for results.json, README.md, chart")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rate.split(",") if r]
    intervals = [i.strip() for i in args.checkpoint_interval.split(",") if i.strip()]
    runners = [r.strip() for r in args.runner.split(",") if r.strip()]
    unknown = set(runners) - set(RUNNERS)
    if unknown:
        parser.error(f"--runner: unknown {sorted(unknown)}; choose from {sorted(RUNNERS)}")
    variants = (DEFAULT_VARIANT, *args.variant)
    with (
        LocalPostgres(extra_settings=SERVER_SETTINGS) as server,
        LocalKafka() as kafka,
        tempfile.TemporaryDirectory(prefix="tpc-stream-") as work,
    ):
        runs = sweep(
            server,
            kafka,
            Path(work),
            rates,
            args.seconds,
            intervals,
            runners,
            variants,
            kill_after=args.kill_after,
            step=args.step,
            report=lambda text: print(text, flush=True),
            on_run=lambda runs: write_results(runs, args.out) if args.out else None,
            warm_up_seconds=args.warm_up_seconds,
        )
    print(markdown(runs))
    return 0


def write_results(runs: list[dict], out: Path) -> None:
    """results.json, README.md (the tables) and both charts, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(runs, indent=1) + "\n")
    (out / "README.md").write_text(
        markdown(runs) + "\n![latency over time](chart.svg)\n\n![latency against rate](rates.svg)\n"
    )
    (out / "chart.svg").write_text(svg_chart(runs))
    (out / "rates.svg").write_text(svg_rates(runs))


if __name__ == "__main__":
    sys.exit(main())
