"""The benchmark suite: a job (default: payments) as users run it, measured side by side with
the alternatives in one run, on one machine, against one throwaway PostgreSQL.

    python -m bench.suite [--job payments|orders|MODULE] [--lines 200000] [--rounds 3] [--quick]
                          [--only throughput,...] [--out bench/results/NAME]

`--job` takes any job that declares itself (`jobs.kit.declared.DeclaredJob` with
`sample_lines`): its input is the job's own sample lines, its runs are its own command
(`python -m jobs.<name>`), its progress is its line tables. Throughput, scaling, latency and
recovery run for any job; the comparisons with the single-process script, the at-least-once
and discarding sinks, the sink alone, the Kafka stream and the soak are the payments job's
(the script and Quix implement the payments rules).

Sections (each a list of measurements, repeated `--rounds` times in interleaved order so that
the shared machine's noise falls on every variant alike):

* throughput: the payments job (`bench.payments_job`, the real graph on the real file source)
  at parallelism 1 and 2 in process and thread mode, the same job with at-least-once sinks and
  with discarding sinks, and the single-process exactly-once script (`bench.baseline`).
* scaling: job and script at 50k, 200k and 1M lines.
* sink: the sink alone fed from the JVM (`bench.sink_alone`), per mode, next to a raw COPY.
* latency: a `--watch` job fed files at a steady rate; from a line being written to its row
  being visible, p50/p99, at checkpoint intervals of 200 ms, 1 s and 5 s.
* recovery: `kill -9` of a running job, then a restore from its newest retained checkpoint;
  time to the first new commit, and how much work the restore replayed.
* streaming: the job reading a Kafka topic fed at a steady rate (`bench.steady_stream`); from
  an event's production to its ledger row's commit, p50/p90/p99/p99.9/max, the lag's growth and
  each process's CPU, per rate and checkpoint interval (200 ms, 1 s), and the same for the
  single-process script reading the topic (`bench.baseline --source kafka`, committing at most
  that long after a chunk's first line); `--rates` picks the rates, stepped up per reader and
  interval until it no longer keeps up, and the highest it kept up with is reported.
* soak (only with `--only soak`: it takes `--soak-minutes`, 30 by default): the job on a
  standalone cluster on a steady stream (`bench.soak`), memory, checkpoints, dedupe state and
  commit log sampled every minute, and whether they stay flat.

Wall times include everything a user waits for (JVM and Python worker start, job deployment).
`startup` is the same job on 1,000 lines; "net" rates subtract it. Results go to
`<out>/results.json` and `<out>/README.md` (and `chart.png` when matplotlib is installed).
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from bench import steady_stream
from jobs.kit.audit import row_key
from jobs.kit.declared import DeclaredJob, job_module, load_job
from localenv.flink import child_process_environment
from localenv.kafka import LocalKafka
from localenv.paths import PROJECT_ROOT
from localenv.postgres import LocalPostgres
from tests.sinks.support import kill_job, newest_complete_checkpoint, wait_for

PASSWORD_ENV = "TPC_BENCH_PASSWORD"
SECTIONS = ("throughput", "scaling", "sink", "latency", "recovery", "streaming", "soak")
# What runs without --only: all but the soak, which is half an hour on its own.
DEFAULT_SECTIONS = SECTIONS[:-1]
#: The job whose script, Quix version and JVM row generator the comparisons run.
PAYMENTS = "payments"
PAYMENTS_ONLY_SECTIONS = ("sink", "streaming", "soak")
STREAM_RATES = "1000,5000,10000,20000"
TIMEOUT_SECONDS = 1800


# --------------------------------------------------------------------------- inputs


def write_input(
    directory: Path, lines: int, job: DeclaredJob, files: int = 8, seed: int = 5
) -> int:
    """About `lines` of the job's sample lines (duplicates, conflicts and bad lines mixed in, as
    in the demo) split into `files` files, as a directory of daily files would be. Returns the
    count."""
    assert job.sample_lines is not None, "checked by main"
    directory.mkdir(parents=True, exist_ok=True)
    generated = job.sample_lines(round(lines / 1.08), seed=seed, id_prefix="b")
    per_file = -(-len(generated) // files)
    for index in range(files):
        chunk = generated[index * per_file : (index + 1) * per_file]
        (directory / f"part-{index:03d}.jsonl").write_bytes(b"".join(chunk))
    return len(generated)


# --------------------------------------------------------------------------- running


class Bench:
    def __init__(self, server: LocalPostgres, work: Path, job: str = PAYMENTS):
        self.server = server
        self.work = work
        self.databases = 0
        self.declared = load_job(job)
        self.module = job_module(job)
        #: The payments job runs through `bench.payments_job` (its sinks can be swapped).
        self.payments = self.declared.name == PAYMENTS
        self.first_table = self.declared.line_tables[0]

    def database(self):
        self.databases += 1
        return self.server.create_database(f"bench_{self.databases}")

    def env(self, db, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
        return child_process_environment({PASSWORD_ENV: db.password, **(extra or {})})

    def db_args(self, db) -> list[str]:
        return ["--db-url", db.jdbc_url, "--db-user", db.user, "--password-env", PASSWORD_ENV]

    def run(self, module: str, db, *args: str, env: Optional[dict[str, str]] = None) -> float:
        """Runs `python -m module` to its end; returns its wall time in seconds."""
        command = [sys.executable, "-m", module, *self.db_args(db), *args]
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env=self.env(db, env),
            text=True,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
        )
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return elapsed

    def job(
        self,
        input_dir: Path,
        lines: int,
        parallelism: int,
        mode: str,
        sinks: str = "exactly-once",
        env: Optional[dict[str, str]] = None,
        extra: tuple[str, ...] = (),
    ) -> float:
        db = self.database()
        if self.payments:
            module, how = "bench.payments_job", ["--sinks", sinks]
        elif sinks == "exactly-once":  # the job's own command, as users run it
            module, how = self.module, ["--sink-id-prefix", "bench"]
        else:
            raise ValueError(f"{sinks} sinks: the payments job's bench runner only")
        seconds = self.run(
            module,
            db,
            "--input",
            str(input_dir),
            *how,
            "--parallelism",
            str(parallelism),
            "--mode",
            mode,
            *extra,
            env=env,
        )
        if sinks != "discard":
            self.assert_accounted(db, lines, exactly=sinks.startswith("exactly-once"))
        return seconds

    def baseline(self, input_dir: Path, lines: int) -> float:
        db = self.database()
        seconds = self.run("bench.baseline", db, "--input", str(input_dir))
        self.assert_accounted(db, lines, exactly=True)
        return seconds

    def assert_accounted(self, db, lines: int, exactly: bool) -> None:
        assert_accounted(db, lines, exactly, self.declared)

    def first_table_rows(self, db) -> int:
        """Rows in the job's first line table (payments: the ledger); 0 before the job has
        created its tables."""
        with db.connect() as conn:
            return self.declared.rows_in(conn, [self.first_table])


def assert_accounted(db, lines: int, exactly: bool, job: DeclaredJob) -> None:
    """Every line ended in one of the job's line tables (at least once for at-least-once
    sinks)."""
    with db.connect() as conn:
        found = job.lines_applied(conn)
    if (found != lines) if exactly else (found < lines):
        raise RuntimeError(f"expected {lines} lines accounted for, found {found}")


def summary(values: list[float]) -> dict:
    return {
        "runs": [round(v, 3) for v in values],
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def interleaved(rounds: int, variants: dict[str, Callable[[], float]]) -> dict[str, dict]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(rounds):
        for name, measure in variants.items():
            seconds = measure()
            times[name].append(seconds)
            print(f"  round {round_number + 1}: {name}: {seconds:.1f} s", flush=True)
    return {name: summary(values) for name, values in times.items()}


# --------------------------------------------------------------------------- sections


THROUGHPUT_STARTUP = "startup: job p2 process on 1,000 lines"
SCRIPT = "script (single process)"


def throughput(bench: Bench, args) -> dict:
    input_dir, tiny = bench.work / "throughput", bench.work / "tiny"
    lines = write_input(input_dir, args.lines, bench.declared)
    tiny_lines = write_input(tiny, 1000, bench.declared, seed=6)
    variants: dict[str, Callable[[], float]] = {}
    if bench.payments:
        variants[SCRIPT] = lambda: bench.baseline(input_dir, lines)
    for parallelism in (1, 2):
        for mode in ("process", "thread"):
            variants[f"job p{parallelism} {mode}"] = functools.partial(
                bench.job, input_dir, lines, parallelism, mode
            )
    if bench.payments:
        # The job's default is checkpoint scope (one transaction per checkpoint for all
        # tables); subtask scope spreads the commits over the subtasks of four sinks.
        variants["job p2 process, subtask-scope sinks"] = lambda: bench.job(
            input_dir, lines, 2, "process", "exactly-once-subtask"
        )
        variants["job p2 process, at-least-once sinks"] = lambda: bench.job(
            input_dir, lines, 2, "process", "at-least-once"
        )
        variants["job p2 process, discarding sinks"] = lambda: bench.job(
            input_dir, lines, 2, "process", "discard"
        )
    variants[THROUGHPUT_STARTUP] = lambda: bench.job(tiny, tiny_lines, 2, "process")
    # What the CDS archive of Flink's classes (localenv/jvm_archive.py) buys at every start.
    variants["startup without the JVM archive"] = lambda: bench.job(
        tiny, tiny_lines, 2, "process", env={"TPC_JVM_ARCHIVE": "off"}
    )
    # What serving metrics to Prometheus (`--metrics-port`, off by default) costs at a start.
    variants["startup with the Prometheus reporter"] = lambda: bench.job(
        tiny, tiny_lines, 2, "process", extra=("--metrics-port", "9260-9299")
    )
    if args.variant:
        chosen = set(args.variant)
        # The script is every ratio's reference, and the start-up run every net rate's.
        chosen |= {SCRIPT, THROUGHPUT_STARTUP} & set(variants)
        unknown = chosen - set(variants)
        if unknown:
            raise SystemExit(f"bench.suite: unknown throughput variants {sorted(unknown)}")
        variants = {name: run for name, run in variants.items() if name in chosen}
    results = interleaved(args.rounds, variants)
    startup = results[THROUGHPUT_STARTUP]["median"]
    for name, result in results.items():
        if not name.startswith("startup"):
            result["lines_per_second"] = round(lines / result["median"])
            if name.startswith("job"):
                result["net_lines_per_second"] = round(
                    lines / max(result["median"] - startup, 0.001)
                )
    return {"lines": lines, "startup_seconds": startup, "results": results}


def scaling(bench: Bench, args) -> dict:
    sizes = [20_000, 50_000] if args.quick else [50_000, 200_000, 1_000_000]
    tiny = bench.work / "tiny"
    tiny_lines = write_input(tiny, 1000, bench.declared, seed=6)
    rows = []
    for size in sizes:
        input_dir = bench.work / f"scaling-{size}"
        lines = write_input(input_dir, size, bench.declared)
        variants: dict[str, Callable[[], float]] = {
            "job p2 process": functools.partial(bench.job, input_dir, lines, 2, "process"),
            "startup": lambda: bench.job(tiny, tiny_lines, 2, "process"),
        }
        if bench.payments:
            variants["script"] = functools.partial(bench.baseline, input_dir, lines)
        results = interleaved(args.rounds, variants)
        startup = results.pop("startup")["median"]
        row = {
            "lines": lines,
            "startup_seconds": startup,
            **{
                name: {**r, "lines_per_second": round(lines / r["median"])}
                for name, r in results.items()
            },
        }
        # The per-line cost: is it the same at every size? (start-up is a fixed cost)
        row["job p2 process"]["net_lines_per_second"] = round(
            lines / max(row["job p2 process"]["median"] - startup, 0.001)
        )
        rows.append(row)
    return {"sizes": rows}


def raw_copy(db, count: int) -> float:
    """COPY of the same rows the JVM generator makes, from this process, one transaction."""
    with db.connect() as conn:
        started = time.monotonic()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY ledger (event_id, account_id, type, amount_minor, currency, occurred_at) "
                "FROM STDIN"
            ) as copy,
        ):
            for n in range(count):
                copy.write_row(
                    (
                        f"e-{n}",
                        f"acc-{n % 1000}",
                        "charge",
                        n,
                        "USD",
                        "2024-01-01T00:00:00.000000+00:00",
                    )
                )
        conn.commit()
        return time.monotonic() - started


def sink(bench: Bench, args) -> dict:
    from jobs.payments_schema import ensure_schema

    count = 100_000 if args.quick else 1_000_000

    def fresh():
        db = bench.database()
        with db.connect() as conn:
            ensure_schema(conn)
        return db

    def alone(mode, rows_wanted=count, scope="subtask", on_row_error="fail"):
        db = fresh()
        seconds = bench.run(
            "bench.sink_alone",
            db,
            "--count",
            str(rows_wanted),
            "--mode",
            mode,
            "--scope",
            scope,
            "--on-row-error",
            on_row_error,
        )
        with db.connect() as conn:
            rows = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        if rows != rows_wanted:
            raise RuntimeError(f"sink alone ({mode}): {rows} rows for {rows_wanted}")
        return seconds

    variants: dict[str, Callable[[], float]] = {
        f"sink {mode}": functools.partial(alone, mode)
        for mode in ("prepared", "staged", "at_least_once")
    }
    # Checkpoint scope: the same staged batches, applied by one committer per checkpoint. It
    # never tries batches at pre-commit (the fail policy's trial), so it is compared with
    # subtask scope both with the trial (plain "sink staged") and without (dead_letter).
    variants["sink staged, checkpoint scope"] = functools.partial(
        alone, "staged", count, "checkpoint"
    )
    variants["sink staged, subtask scope, no trial (dead_letter)"] = functools.partial(
        alone, "staged", count, "subtask", "dead_letter"
    )
    variants["raw COPY"] = lambda: raw_copy(fresh(), count)
    # The raw COPY runs in an open connection; the sink's runs include a job start, measured
    # here on 1,000 rows and taken off for the net rate.
    variants["startup: sink prepared on 1,000 rows"] = lambda: alone("prepared", 1000)
    results = interleaved(args.rounds, variants)
    startup = results.pop("startup: sink prepared on 1,000 rows")["median"]
    for name, result in results.items():
        result["rows_per_second"] = round(count / result["median"])
        net = result["median"] - (0 if name == "raw COPY" else startup)
        result["net_rows_per_second"] = round(count / max(net, 0.001))
    return {"rows": count, "startup_seconds": startup, "results": results}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_job(bench: Bench, db, input_dir: Path, *extra: str) -> subprocess.Popen:
    log = open(bench.work / f"job-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            bench.module,
            "--input",
            str(input_dir),
            *bench.db_args(db),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        env=bench.env(db),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def latency_at(
    bench: Bench, interval: str, seconds: float, rate: int, scope: str = "checkpoint"
) -> dict:
    """Files of `rate / 10` lines every 100 ms into a watched directory; each row's latency is
    from its file's rename into place to the poll that first sees it committed."""
    db = bench.database()
    input_dir = bench.work / f"latency-{interval.replace(' ', '')}-{scope}"
    input_dir.mkdir()
    job = start_job(
        bench,
        db,
        input_dir,
        "--watch",
        "100 ms",
        "--commit-scope",
        scope,
        "--checkpoint-interval",
        interval,
        "--checkpoint-dir",
        str(bench.work / f"latency-checkpoints-{time.time_ns()}"),
    )
    from psycopg import sql

    # The file a row came from, by its key: records are named lat-<file>-<n> (`write_file`).
    per_file_query = sql.SQL(
        "SELECT split_part({key}, '-', 2)::int, count(*) FROM {table} GROUP BY 1"
    ).format(
        key=sql.Identifier(row_key(bench.first_table)[0]),
        table=sql.Identifier(bench.first_table.name),
    )
    written: dict[int, float] = {}
    latencies: list[float] = []
    seen: dict[int, int] = {}
    try:

        def write_file(number: int, lines: int) -> None:
            assert bench.declared.sample_lines is not None
            data = bench.declared.sample_lines(
                lines,
                seed=number,
                id_prefix=f"lat-{number:05d}",
                duplicate_share=0,
                conflict_share=0,
                bad_share=0,
            )
            hidden = input_dir / f".part-{number:05d}"
            hidden.write_bytes(b"".join(data))
            written[number] = time.monotonic()
            hidden.rename(input_dir / f"part-{number:05d}.jsonl")

        def poll() -> None:
            now = time.monotonic()
            if not bench.first_table_rows(db):
                return
            with db.connect() as conn:
                counts = conn.execute(per_file_query).fetchall()
            for number, count in counts:
                new = count - seen.get(number, 0)
                if new > 0 and number > 0:
                    latencies.extend([now - written[number]] * new)
                    seen[number] = count

        write_file(0, 10)  # warm-up: the job is up once this file is committed
        wait_for(lambda: bench.first_table_rows(db) >= 10, 240, "the latency job to start")
        per_file = max(1, rate // 10)
        files = int(seconds * 10)
        stop = threading.Event()

        def feed():
            for number in range(1, files + 1):
                write_file(number, per_file)
                if stop.wait(0.1):
                    return

        feeder = threading.Thread(target=feed)
        feeder.start()
        deadline = time.monotonic() + seconds + 60
        while time.monotonic() < deadline:
            poll()
            if not feeder.is_alive() and sum(seen.values()) >= files * per_file:
                break
            time.sleep(0.05)
        stop.set()
        feeder.join()
    finally:
        kill_job(job)
    if not latencies:
        raise RuntimeError(f"no rows became visible at checkpoint interval {interval}")
    return {
        "rows": len(latencies),
        "p50_seconds": round(percentile(latencies, 0.5), 3),
        "p99_seconds": round(percentile(latencies, 0.99), 3),
        "max_seconds": round(max(latencies), 3),
    }


def latency(bench: Bench, args) -> dict:
    """Per checkpoint interval, in the job's default checkpoint scope (one committer applies
    each checkpoint) and in subtask scope (each subtask of four sinks commits its own)."""
    seconds = 6 if args.quick else 20
    scopes = ("checkpoint", "subtask") if bench.payments else ("checkpoint",)
    return {
        f"{interval}, {scope} scope": latency_at(bench, interval, seconds, 1000, scope)
        for interval in ("200 ms", "1 s", "5 s")
        for scope in scopes
    }


def recovery(bench: Bench, args) -> dict:
    """kill -9 mid-run; restore from the newest retained checkpoint; measure."""
    lines = 400_000  # the job must still be running 1 s after its first commit
    input_dir = bench.work / "recovery"
    write_input(input_dir, lines, bench.declared)
    results = []
    for attempt in range(args.rounds):
        db = bench.database()
        checkpoints = bench.work / f"recovery-checkpoints-{attempt}"
        job = start_job(bench, db, input_dir, "--checkpoint-dir", str(checkpoints))
        try:
            wait_for(lambda db=db: bench.first_table_rows(db) > 0, 240, "the first commit")
            time.sleep(1)
            finished = job.poll() is not None
        finally:
            kill_job(job)
        killed_at = time.time()
        committed = bench.first_table_rows(db)
        checkpoint = newest_complete_checkpoint(checkpoints)
        if finished or checkpoint is None:
            raise RuntimeError(
                "the recovery job finished (or retained no checkpoint) before "
                "the kill: give it more lines"
            )
        replayed_seconds = killed_at - (checkpoint / "_metadata").stat().st_mtime
        restarted = time.monotonic()
        job = start_job(
            bench,
            db,
            input_dir,
            "--checkpoint-dir",
            str(checkpoints) + "-restored",
            "--from-checkpoint",
            str(checkpoint),
        )
        try:
            wait_for(
                lambda db=db, n=committed: bench.first_table_rows(db) > n,
                240,
                "the first commit after restore",
            )
            first_commit = time.monotonic() - restarted
        finally:
            kill_job(job)
        results.append(
            {
                "seconds_to_first_new_commit": round(first_commit, 2),
                "replayed_seconds_of_work": round(replayed_seconds, 2),
                "rows_committed_before_kill": committed,
            }
        )
        print(
            f"  recovery {attempt + 1}: first new commit after {first_commit:.1f} s; "
            f"replayed the last {replayed_seconds:.1f} s of work",
            flush=True,
        )
    return {
        "lines": lines,
        "runs": results,
        "median_seconds_to_first_new_commit": statistics.median(
            r["seconds_to_first_new_commit"] for r in results
        ),
    }


# --------------------------------------------------------------------------- report


def streaming(bench: Bench, args) -> dict:
    """Per checkpoint interval and rate, one steady run of `bench.steady_stream`."""
    seconds = 10 if args.quick else 60
    rates = [int(rate) for rate in args.rates.split(",") if rate]
    with LocalKafka() as kafka:
        runs = steady_stream.sweep(
            bench.server,
            kafka,
            bench.work,
            rates,
            seconds,
            ["200 ms", "1 s"],
            ["job", "script"],
            step=True,
            report=lambda text: print("  " + text, flush=True),
            # Past the JVM's compilation: the steady state (bench/results/2026-12-07-stream-rates)
            warm_up_seconds=0 if args.quick else 60,
        )
    return {"seconds": seconds, "runs": runs}


def soak(bench: Bench, args) -> dict:
    """`bench.soak` on a cluster of its own: `--soak-minutes` (3 with --quick) at 500 lines/s,
    the 30-minute soak's TTL and retention."""
    from bench.soak import soak_on_a_cluster_of_its_own

    minutes = 3 if args.quick else args.soak_minutes
    with LocalKafka() as kafka:
        return soak_on_a_cluster_of_its_own(
            bench.server,
            kafka,
            bench.work,
            minutes,
            rate=500,
            sample_seconds=10 if args.quick else 60,
            dedupe_ttl="10 s" if args.quick else "3 min",
            commit_log_retention="1 min" if args.quick else "2 min",
        )


def machine() -> dict:
    import pyflink

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pyflink": getattr(pyflink, "__version__", "2.3.0"),
        "java": java.splitlines()[0] if java else "?",
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
    }


def markdown(report: dict) -> str:
    out = [
        f"# Benchmark results ({report['date']})",
        "",
        f"Machine: {report['machine']}",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    if "streaming" in report:
        out += [
            f"## Streaming: a steady Kafka rate, {report['streaming']['seconds']} s per run",
            "",
            "Latency: from an event's production to its ledger row's commit "
            "(`pg_xact_commit_timestamp`). Lag growth: least-squares slope of produced - applied "
            "lines over the run; near 0 when the job keeps up. CPU: cores in use, on average.",
            "",
            steady_stream.markdown(report["streaming"]["runs"]),
            "![streaming latency](streaming.svg)",
            "",
            "![streaming latency against rate](streaming-rates.svg)",
            "",
        ]
    if "soak" in report:
        from bench.soak import markdown as soak_markdown

        out += [
            f"## Soak: {report['soak']['minutes']:g} minutes at {report['soak']['rate']:,} "
            "lines/s on a standalone cluster",
            "",
            soak_markdown(report["soak"]),
            "![soak](soak.svg)",
            "",
        ]
    if "throughput" in report:
        t = report["throughput"]
        script = t["results"].get(SCRIPT, {}).get("median")
        out += [
            f"## Throughput: {t['lines']:,} lines, median of {report['rounds']} rounds",
            "",
            f"Job start-up (the same job on 1,000 lines): {t['startup_seconds']:.1f} s.",
            "",
            "| run | wall s (median, min-max) | lines/s | net of start-up | vs script |",
            "|---|---|---|---|---|",
        ]
        for name, r in t["results"].items():
            out.append(
                f"| {name} | {r['median']:.1f} ({r['min']:.1f}-{r['max']:.1f}) | "
                f"{r.get('lines_per_second', 0):,} | "
                f"{r.get('net_lines_per_second', 0):,} | "
                + (f"{script / r['median']:.2f}x |" if script else "- |")
            )
        out.append("")
    if "scaling" in report:
        out += [
            "## Scaling",
            "",
            "Net: the job's time less its start-up (the same job on 1,000 "
            "lines, measured in the same rounds).",
            "",
            "| lines | job p2 lines/s | job p2 net lines/s | script lines/s |",
            "|---|---|---|---|",
        ]
        for row in report["scaling"]["sizes"]:
            job = row["job p2 process"]
            out.append(
                f"| {row['lines']:,} | {job['lines_per_second']:,} | "
                f"{job.get('net_lines_per_second', 0):,} | "
                + (f"{row['script']['lines_per_second']:,} |" if "script" in row else "- |")
            )
        out.append("")
    if "sink" in report:
        s = report["sink"]
        copy_rate = s["results"]["raw COPY"]["rows_per_second"]
        out += [
            f"## Sink alone ({s['rows']:,} ledger rows from the JVM) vs raw COPY",
            "",
            f"Job start-up (the same sink job on 1,000 rows): {s.get('startup_seconds', 0)} s; "
            "the net rate takes it off (the raw COPY runs in an open connection).",
            "",
            "| run | wall s | rows/s | net rows/s | net vs raw COPY |",
            "|---|---|---|---|---|",
        ]
        for name, r in s["results"].items():
            net = r.get("net_rows_per_second", r["rows_per_second"])
            out.append(
                f"| {name} | {r['median']:.1f} | {r['rows_per_second']:,} | {net:,} | "
                f"{net / copy_rate:.2f}x |"
            )
        out.append("")
    if "latency" in report:
        out += [
            "## Commit latency (line written to row visible)",
            "",
            "| checkpoint interval, commit scope | rows | p50 s | p99 s | max s |",
            "|---|---|---|---|---|",
        ]
        for interval, r in report["latency"].items():
            out.append(
                f"| {interval} | {r['rows']:,} | {r['p50_seconds']} | {r['p99_seconds']} "
                f"| {r['max_seconds']} |"
            )
        out.append("")
    if "recovery" in report:
        out += [
            "## Recovery after kill -9",
            "",
            "| run | s to first new commit | s of work replayed | rows committed before |",
            "|---|---|---|---|",
        ]
        for index, r in enumerate(report["recovery"]["runs"], 1):
            out.append(
                f"| {index} | {r['seconds_to_first_new_commit']} | "
                f"{r['replayed_seconds_of_work']} | {r['rows_committed_before_kill']:,} |"
            )
        out.append("")
    return "\n".join(out)


def chart(report: dict, path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    results = report.get("throughput", {}).get("results")
    if not results:
        return None
    names = [n for n in results if not n.startswith("startup")]
    values = [results[n]["lines_per_second"] for n in names]
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.barh(names[::-1], values[::-1], color="#4a7ab5")
    axis.set_xlabel(
        f"lines/s, wall time ({report['throughput']['lines']:,} lines, "
        f"{report['machine']['cores']} cores)"
    )
    job = report.get("job", PAYMENTS)
    axis.set_title(
        "Payments: the job and the single-process script, side by side"
        if job == PAYMENTS
        else f"The {job} job"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def write_report(report: dict, out: Path) -> str:
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    if "streaming" in report:
        (out / "streaming.svg").write_text(steady_stream.svg_chart(report["streaming"]["runs"]))
        (out / "streaming-rates.svg").write_text(
            steady_stream.svg_rates(report["streaming"]["runs"])
        )
    if "soak" in report:
        from bench.soak import svg_chart as soak_chart

        (out / "soak.svg").write_text(soak_chart(report["soak"]))
    text = markdown(report)
    if chart(report, out / "chart.png"):
        text += "\n![throughput](chart.png)\n"
    (out / "README.md").write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--job",
        default=PAYMENTS,
        help="the job: payments, orders, or a module declaring JOB = DeclaredJob(...) with "
        f"sample_lines ({', '.join(PAYMENTS_ONLY_SECTIONS)}: payments only)",
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small inputs, short latency runs (checks the suite works)",
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated sections of {','.join(SECTIONS)} (default: all but soak)",
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=30,
        help="soak: how long the steady stream runs (default 30)",
    )
    parser.add_argument(
        "--rates",
        default=STREAM_RATES,
        help="streaming: lines per second, comma-separated",
    )
    parser.add_argument(
        "--variant",
        action="append",
        help="throughput: only this run, named as in the results table (repeat it for more; "
        "the script and the start-up run are always measured: the ratios need them)",
    )
    parser.add_argument("--out", help="result directory (default var/bench/<timestamp>)")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    declared = load_job(args.job)
    if declared.sample_lines is None:
        parser.error(
            f"--job {args.job}: the job declares no sample_lines, which make the benchmark's "
            "input (DeclaredJob(sample_lines=...), NEW_JOB.md)"
        )
    if declared.name != PAYMENTS:
        if args.only == ",".join(DEFAULT_SECTIONS):
            sections = [s for s in sections if s not in PAYMENTS_ONLY_SECTIONS]
        refused = set(sections) & set(PAYMENTS_ONLY_SECTIONS)
        if refused:
            parser.error(
                f"sections {sorted(refused)} measure the payments job only (its script, its "
                "Quix version, its JVM row generator): drop them for --job " + args.job
            )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out = Path(args.out) if args.out else PROJECT_ROOT / "var" / "bench" / stamp
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": stamp,
        "job": declared.name,
        "machine": machine(),
        "rounds": args.rounds,
        "command": "python -m bench.suite " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    measure = {
        "throughput": throughput,
        "scaling": scaling,
        "sink": sink,
        "latency": latency,
        "recovery": recovery,
        "streaming": streaming,
        "soak": soak,
    }
    with (
        LocalPostgres(
            max_prepared_transactions=64, extra_settings=steady_stream.SERVER_SETTINGS
        ) as server,
        tempfile.TemporaryDirectory(prefix="tpc-bench-") as work,
    ):
        bench = Bench(server, Path(work), args.job)
        for section in sections:
            print(f"{section}:", flush=True)
            report[section] = measure[section](bench, args)
            text = write_report(report, out)  # after each section: a late failure loses none
    print(text)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
