"""The soak: the payments job on a standalone cluster, fed a steady Kafka stream for a long
time, and whether its memory, its checkpoints, its state and the sinks' commit log stay flat.

    python -m bench.soak --minutes 30 --rate 500 --out bench/results/DATE-soak \\
        [--dedupe-ttl "3 min"] [--commit-log-retention "2 min"] [--sample-seconds 60]

What runs: a local PostgreSQL and Kafka broker, a standalone cluster (`localenv.cluster`, a
JobManager and two TaskManagers), and the payments job submitted to it as users submit it
(`flink run -pym jobs.payments --source kafka ...`), a checkpoint every second, in subtask
commit scope: the dedupe and the balance sums live in the JVM's keyed state, which is what could
grow. Its dedupe forgets an event id `--dedupe-ttl` after its first sighting and its sinks trim
their commit log to `--commit-log-retention`: both short, so that state and commit log reach
their plateau early in the run. `bench.steady_stream.SteadyProducer` produces `--rate` lines a
second (the demo's mix of re-sends and bad lines) for `--minutes`.

Every `--sample-seconds` (a minute by default), from outside the job:

- **memory**: the RSS of the JobManager, of each TaskManager and of each Python worker process
  (the TaskManagers' Python descendants), from /proc;
- **checkpoints**: the last completed checkpoint's size and duration, and the counts of
  completed and failed ones (REST `/jobs/<id>/checkpoints`);
- **dedupe state**: the dedupe operator's share of that checkpoint (REST
  `/jobs/<id>/checkpoints/details/<n>`, its vertex). The job runs on the heap state backend
  (flink-conf's, the job's default), which has no key-count metric; its checkpoints are full
  snapshots of every entry it holds, so the dedupe vertex's checkpointed bytes measure its keys.
  Next to them, the keys the TTL should hold (the events first seen within the last TTL), and
  the bytes per such key: flat if the state holds what the TTL says and nothing more. (RocksDB's
  `estimate-num-keys` is no better a count: it includes expired entries until a compaction
  drops them, and this volume rarely compacts.)
- **the database**: `pg_total_relation_size` of every table of the job and of the sinks'
  commit log (`tpc_commit_log`), and the commit log's rows. The ledger grows by design: it is
  the data.
- lines produced, lines applied (rows of ledger, rejected and duplicates: every line ends in
  exactly one) and their difference, the lag.

At the end: the job drains, then the tables are compared with what the pure rules make of every
line produced (`bench.steady_stream.exactness`), and each series gets its verdict after the
warm-up (`--warm-up-minutes`): its least-squares slope, and the ratio of its maximum over the
run's last third to its maximum over the second third (`flatness`). Written to `results.json`,
`README.md` (a table per sample) and `chart.svg`.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from html import escape
from pathlib import Path
from typing import Optional

from bench.steady_stream import (
    PARTITIONS,
    SteadyProducer,
    cpu_and_rss,
    exactness,
    produced_lines,
    slope,
)
from jobs.kit.config import parse_duration_ms
from jobs.payments import JOB as PAYMENTS
from jobs.produce import create_topic
from localenv.cluster import DAEMON_CLASSES, Cluster, port_free
from localenv.kafka import LocalKafka
from localenv.postgres import Database, LocalPostgres, free_port
from localenv.processes import command_line, descendants
from tests.sinks.support import wait_for

JOB_TABLES = ("ledger", "balances", "rejected", "duplicates")
COMMIT_LOG = "tpc_commit_log"
DEDUPE_UID = "dedupe-by-event-id"
WARM_UP_RATE = 20  # lines, one second of them, before the steady stream: the job is up

#: The series the verdict judges (state, memory, checkpoints, commit log) and how they are
#: named in the table and chart. The ledger is reported, not judged: it is the data.
JUDGED = {
    "jobmanager_rss_mb": "JobManager RSS (MB)",
    "taskmanager_rss_mb": "TaskManagers' RSS, largest (MB)",
    "python_rss_mb": "Python workers' RSS, sum (MB)",
    "checkpoint_bytes": "checkpoint size (bytes)",
    "dedupe_state_bytes": "dedupe state (bytes)",
    "commit_log_rows": "commit-log rows",
    "commit_log_bytes": "commit-log size (bytes)",
}


# --------------------------------------------------------------------------- sampling


def mb(rss: int) -> float:
    return round(rss / 2**20, 1)


def memory(cluster: Cluster) -> dict:
    """RSS of each JVM of the cluster and of each Python worker (the TaskManagers' Python
    descendants; the shells that start them are left out)."""
    jvms = {pid: command_line(pid) for pid in cluster.processes()}
    jobmanagers = {pid for pid, cmd in jvms.items() if DAEMON_CLASSES[0] in cmd}
    taskmanagers = {pid for pid, cmd in jvms.items() if DAEMON_CLASSES[1] in cmd}
    workers = {pid for pid in descendants(taskmanagers) if "python" in command_line(pid)}
    found = cpu_and_rss(jobmanagers | taskmanagers | workers)
    rss = {pid: found[pid][1] for pid in found}
    return {
        "jobmanager_rss_mb": mb(sum(rss.get(pid, 0) for pid in jobmanagers)),
        "taskmanagers_rss_mb": {
            str(pid): mb(rss[pid]) for pid in sorted(taskmanagers & rss.keys())
        },
        "taskmanager_rss_mb": max((mb(rss[pid]) for pid in taskmanagers & rss.keys()), default=0),
        "python_workers_rss_mb": {str(pid): mb(rss[pid]) for pid in sorted(workers & rss.keys())},
        "python_rss_mb": mb(sum(rss.get(pid, 0) for pid in workers)),
        "cpu_seconds": round(sum(cpu for cpu, _ in found.values()), 1),
    }


def dedupe_vertex(cluster: Cluster, job_id: str) -> Optional[str]:
    """The id of the job graph's vertex that holds the dedupe (its name names the operator)."""
    for vertex in cluster.rest(f"/jobs/{job_id}")["vertices"]:
        if DEDUPE_UID in vertex["name"]:
            return str(vertex["id"])
    return None


def checkpoints(cluster: Cluster, job_id: str, vertex: Optional[str]) -> dict:
    """The last completed checkpoint: its size, its duration, the dedupe vertex's share."""
    stats = cluster.rest(f"/jobs/{job_id}/checkpoints", timeout=10)
    counts = stats.get("counts", {})
    latest = (stats.get("latest") or {}).get("completed") or {}
    found = {
        "checkpoints_completed": counts.get("completed", 0),
        "checkpoints_failed": counts.get("failed", 0),
        "checkpoint_id": latest.get("id"),
        "checkpoint_bytes": latest.get("state_size", 0),
        "checkpoint_duration_ms": latest.get("end_to_end_duration", 0),
        "dedupe_state_bytes": 0,
    }
    if latest and vertex:
        details = cluster.rest(f"/jobs/{job_id}/checkpoints/details/{latest['id']}", timeout=10)
        task = details.get("tasks", {}).get(vertex, {})
        found["dedupe_state_bytes"] = task.get("state_size", 0)
    return found


def database_sizes(db: Database) -> dict:
    """Every table's total size (with its indexes and TOAST), the commit log's rows, and the
    lines applied (rows of ledger, rejected and duplicates)."""
    with db.connect(connect_timeout=10) as conn:
        sizes = dict(
            conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
                "'information_schema') ORDER BY 1"
            ).fetchall()
        )
        rows = conn.execute(f"SELECT count(*) FROM {COMMIT_LOG}").fetchone()[0]
    return {
        "table_bytes": sizes,
        "ledger_bytes": sizes.get("ledger", 0),
        "commit_log_bytes": sizes.get(COMMIT_LOG, 0),
        "commit_log_rows": rows,
    }


def applied_lines(db: Database) -> int:
    """Lines in the database: each ends in exactly one of ledger, rejected and duplicates."""
    with db.connect(connect_timeout=10) as conn:
        return PAYMENTS.lines_applied(conn)


def keys_within(producer: SteadyProducer, ttl_seconds: float, now: float) -> int:
    """Events the producer first sent within the last `ttl_seconds` before `now` (the keys the
    dedupe's TTL should hold, give or take the pipeline's delay)."""
    produced = producer.produced
    start = produced.started
    if not start:
        return 0
    # Chunk c (1-based) was produced from start + c - 1 to start + c.
    first = int((now - ttl_seconds) - start) + 1
    return sum(len(times) for chunk, times in list(produced.times.items()) if chunk >= first)


# --------------------------------------------------------------------------- the verdict


def flatness(samples: list[dict], key: str, warm_up_seconds: float) -> dict:
    """A series after the warm-up: its least-squares slope per minute, its mean, the slope as
    a share of the mean per 10 minutes, and its maximum over the last third of the run against
    its maximum over the second third (`ratio`: 1 is flat; a steady leak of the whole run's
    growth g gives about 1 + g/3 of it). Maxima, not means: a sawtooth (the commit log between
    trims, the heap between collections) has the same peak in every third once it is flat."""
    points = [(s["t"], s[key]) for s in samples if s["t"] >= warm_up_seconds and key in s]
    values = [v for _, v in points]
    end = max((s["t"] for s in samples), default=0.0)
    second = [s[key] for s in samples if end / 3 <= s["t"] < 2 * end / 3 and key in s]
    last = [s[key] for s in samples if s["t"] >= 2 * end / 3 and key in s]
    per_minute = slope(points) * 60
    mean = statistics.fmean(values) if values else 0.0
    return {
        "slope_per_minute": round(per_minute, 3),
        "mean_after_warm_up": round(mean, 1),
        "share_of_mean_per_10_minutes": round(per_minute * 10 / mean, 4) if mean else 0.0,
        "max_second_third": max(second, default=0),
        "max_last_third": max(last, default=0),
        "ratio": round(max(last) / max(second), 3) if second and last and max(second) else None,
    }


def verdict(samples: list[dict], warm_up_seconds: float) -> dict:
    return {key: flatness(samples, key, warm_up_seconds) for key in JUDGED}


# --------------------------------------------------------------------------- one soak


def job_arguments(
    db: Database, bootstrap: str, topic: str, work: Path, ttl: str, retention: str
) -> list[str]:
    return [
        *("--source", "kafka", "--bootstrap-servers", bootstrap, "--topic", topic),
        *("--db-url", db.jdbc_url, "--db-user", db.user, "--password-file", str(db.password_file)),
        *("--checkpoint-interval", "1 s", "--checkpoint-dir", str(work / "checkpoints")),
        *("--commit-scope", "subtask", "--dedupe-ttl", ttl, "--commit-log-retention", retention),
    ]


def run_soak(
    cluster: Cluster,
    server: LocalPostgres,
    kafka: LocalKafka,
    work: Path,
    minutes: float,
    rate: int,
    sample_seconds: float = 60.0,
    dedupe_ttl: str = "3 min",
    commit_log_retention: str = "2 min",
    warm_up_minutes: float = 5.0,
    drain_timeout: float = 600.0,
    log=lambda text: print(text, flush=True),
) -> dict:
    """One soak on `cluster` (running); see the module docstring. Returns its measurements."""
    name = f"soak_{rate}_{time.time_ns() % 10**9}"
    db = server.create_database(name)
    topic = name.replace("_", "-")
    create_topic(kafka.bootstrap_servers, topic, PARTITIONS)
    seconds = round(minutes * 60)
    job_id = cluster.submit_detached(
        job_arguments(db, kafka.bootstrap_servers, topic, work, dedupe_ttl, commit_log_retention),
        "jobs.payments",
    )
    log(f"job {job_id} submitted; web UI {cluster.web_ui}")
    ttl_seconds = parse_duration_ms(dedupe_ttl) / 1000

    def running() -> bool:
        state = cluster.job_state(job_id)
        if state in ("FAILED", "CANCELED", "FINISHED"):
            raise RuntimeError(f"the job is {state}; see {cluster.log_dir}")
        return state == "RUNNING"

    samples: list[dict] = []
    try:
        warm_up = SteadyProducer(kafka.bootstrap_servers, topic, WARM_UP_RATE, 1, prefix="w")
        warm_up.run()
        if warm_up.error:
            raise warm_up.error
        warmed = warm_up.produced.lines
        wait_for(
            lambda: running() and applied_lines(db) >= warmed, 300, "the job's first commit", 1.0
        )
        vertex = dedupe_vertex(cluster, job_id)
        producer = SteadyProducer(kafka.bootstrap_servers, topic, rate, seconds)
        producer.start()
        wait_for(lambda: producer.produced.started > 0, 120, "the producer", interval=0.05)
        started = producer.produced.started

        def sample() -> dict:
            now = time.time()
            applied = applied_lines(db) - warmed
            found = {
                "t": round(now - started, 1),
                "produced": producer.produced.lines,
                "applied": applied,
                "lag": producer.produced.lines - applied,
                **memory(cluster),
                **checkpoints(cluster, job_id, vertex),
                **database_sizes(db),
                "dedupe_keys_expected": keys_within(producer, ttl_seconds, now),
            }
            keys = found["dedupe_keys_expected"]
            found["dedupe_bytes_per_key"] = (
                round(found["dedupe_state_bytes"] / keys, 1) if keys else None
            )
            running()
            return found

        due = started
        while producer.is_alive():
            due += sample_seconds
            producer.join(timeout=max(0.0, due - time.time()))
            if time.time() >= due - 0.5:
                samples.append(sample())
                s = samples[-1]
                log(
                    f"  {s['t'] / 60:5.1f} min: lag {s['lag']:,}, JM {s['jobmanager_rss_mb']} MB, "
                    f"TM {s['taskmanager_rss_mb']} MB, Python {s['python_rss_mb']} MB, "
                    f"checkpoint {s['checkpoint_bytes']:,} B "
                    f"({s['checkpoint_duration_ms']} ms), dedupe {s['dedupe_state_bytes']:,} B "
                    f"~{s['dedupe_keys_expected']:,} keys, commit log {s['commit_log_rows']:,} "
                    f"rows {s['commit_log_bytes']:,} B, ledger {s['ledger_bytes']:,} B"
                )
        if producer.error:
            raise producer.error
        produced = producer.produced
        drained = time.monotonic()
        wait_for(
            lambda: running() and applied_lines(db) - warmed >= produced.lines,
            drain_timeout,
            f"the job to apply all {produced.lines:,} lines",
            1.0,
        )
        drain_seconds = round(time.monotonic() - drained, 1)
    finally:
        if cluster.job_state(job_id) not in ("CANCELED", "FAILED", "FINISHED"):
            cluster.cancel_job(job_id)
    lines = produced_lines(
        topic, [("w", WARM_UP_RATE, 1), ("s", rate, seconds)]
    )  # what the job read, in its order
    exact = exactness(db, lines)
    final = database_sizes(db)
    return {
        "minutes": minutes,
        "rate": rate,
        "checkpoint_interval": "1 s",
        "commit_scope": "subtask",
        "dedupe_ttl": dedupe_ttl,
        "commit_log_retention": commit_log_retention,
        "sample_seconds": sample_seconds,
        "warm_up_minutes": warm_up_minutes,
        "lines": produced.lines,
        "events": produced.events,
        "produced_per_second": round(produced.lines / (produced.finished - produced.started), 1),
        "producer_behind_seconds": round(produced.behind_seconds, 3),
        "drain_seconds": drain_seconds,
        "lag_max": max((s["lag"] for s in samples), default=0),
        "exactness": exact,
        "final_table_bytes": final["table_bytes"],
        "verdict": verdict(samples, warm_up_minutes * 60),
        "samples": samples,
    }


# --------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    v = result["verdict"]
    exact = result["exactness"]
    out = [
        f"The payments job (subtask scope, checkpoint every 1 s, dedupe TTL "
        f"{result['dedupe_ttl']}, commit-log retention {result['commit_log_retention']}) on a "
        f"standalone cluster, {result['rate']:,} lines/s for {result['minutes']:g} minutes "
        f"({result['lines']:,} lines, {result['events']:,} events; produced "
        f"{result['produced_per_second']:,}/s; drained {result['drain_seconds']} s after the "
        f"stream ended; lag at most {result['lag_max']:,} lines).",
        "",
        f"Exactness at the end: ledger {exact['ledger']['found']:,} of "
        f"{exact['ledger']['expected']:,} expected, {exact['applied_twice']} lines applied "
        f"twice, {exact['lost']} lost, {exact['balances']['differing']} balances differing.",
        "",
        "| min | JM RSS MB | TM RSS MB (each) | Python RSS MB (sum / workers) | checkpoint B "
        "| checkpoint ms | dedupe state B | keys in TTL | B/key | commit log rows | commit log B "
        "| ledger B | lag |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["samples"]:
        tms = " / ".join(str(v) for v in s["taskmanagers_rss_mb"].values())
        out.append(
            f"| {s['t'] / 60:.1f} | {s['jobmanager_rss_mb']} | {tms} "
            f"| {s['python_rss_mb']} / {len(s['python_workers_rss_mb'])} "
            f"| {s['checkpoint_bytes']:,} | {s['checkpoint_duration_ms']} "
            f"| {s['dedupe_state_bytes']:,} | {s['dedupe_keys_expected']:,} "
            f"| {s['dedupe_bytes_per_key']} | {s['commit_log_rows']:,} "
            f"| {s['commit_log_bytes']:,} | {s['ledger_bytes']:,} | {s['lag']:,} |"
        )
    out += [
        "",
        f"Verdict after the warm-up ({result['warm_up_minutes']:g} min): slope per minute, and "
        "the maximum over the last third of the run against the second third (1 = flat).",
        "",
        "| series | mean | slope /min | slope per 10 min, share of mean | max 2nd third "
        "| max last third | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in JUDGED.items():
        f = v[key]
        out.append(
            f"| {label} | {f['mean_after_warm_up']:,} | {f['slope_per_minute']:,} "
            f"| {f['share_of_mean_per_10_minutes']:.2%} | {f['max_second_third']:,} "
            f"| {f['max_last_third']:,} | {f['ratio']} |"
        )
    return "\n".join(out) + "\n"


PANELS = (
    (
        "memory (MB)",
        (
            ("jobmanager_rss_mb", "JobManager RSS"),
            ("taskmanager_rss_mb", "largest TaskManager RSS"),
            ("python_rss_mb", "Python workers' RSS (sum)"),
        ),
    ),
    (
        "state (bytes)",
        (("checkpoint_bytes", "checkpoint size"), ("dedupe_state_bytes", "dedupe state")),
    ),
    (
        "commit log",
        (("commit_log_rows", "rows"), ("commit_log_kb", "size (kB)")),
    ),
    ("the data (grows by design)", (("ledger_mb", "ledger size (MB)"),)),
)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c")
WIDTH, PANEL_HEIGHT, LEFT, RIGHT, TOP, GAP = 760, 150, 80, 20, 40, 45


def svg_chart(result: dict) -> str:
    """One panel per group of series over the run's minutes (plain SVG)."""
    samples = [
        {
            **s,
            "commit_log_kb": round(s["commit_log_bytes"] / 1024, 1),
            "ledger_mb": round(s["ledger_bytes"] / 2**20, 1),
        }
        for s in result["samples"]
    ]
    height = TOP + len(PANELS) * (PANEL_HEIGHT + GAP)
    end = max((s["t"] for s in samples), default=1.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="20" font-size="13">Soak: {result["rate"]:,} lines/s for '
        f"{result['minutes']:g} min, checkpoint every 1 s, dedupe TTL "
        f"{escape(result['dedupe_ttl'])}, commit-log retention "
        f"{escape(result['commit_log_retention'])}</text>",
    ]

    def x(t: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * t / end

    for index, (title, series) in enumerate(PANELS):
        top = TOP + index * (PANEL_HEIGHT + GAP)
        bottom = top + PANEL_HEIGHT
        high = max([s[key] for s in samples for key, _ in series] + [1]) * 1.1

        def y(value: float, bottom: float = bottom, high: float = high) -> float:
            return bottom - PANEL_HEIGHT * value / high

        out.append(f'<text x="{LEFT}" y="{top - 6}" font-weight="bold">{escape(title)}</text>')
        out.append(
            f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#999"/>'
        )
        out.append(f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#999"/>')
        out.append(f'<text x="{LEFT - 4}" y="{top + 10}" text-anchor="end">{high:,.0f}</text>')
        out.append(f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end">0</text>')
        warm = result["warm_up_minutes"] * 60
        if warm < end:
            out.append(
                f'<line x1="{x(warm):.1f}" y1="{top}" x2="{x(warm):.1f}" y2="{bottom}" '
                'stroke="#bbb" stroke-dasharray="3,3"/>'
            )
        for number, (key, label) in enumerate(series):
            colour = COLOURS[number % len(COLOURS)]
            points = " ".join(f"{x(s['t']):.1f},{y(s[key]):.1f}" for s in samples)
            out.append(f'<polyline fill="none" stroke="{colour}" points="{points}"/>')
            out.append(
                f'<text x="{LEFT + 230 + 160 * number}" y="{top - 6}" fill="{colour}">'
                f"{escape(label)}</text>"
            )
        out.append(
            f'<text x="{WIDTH - RIGHT}" y="{bottom + 14}" text-anchor="end">'
            f"{end / 60:.0f} min</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_results(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "README.md").write_text("# Soak\n\n" + markdown(result) + "\n![soak](chart.svg)\n")
    (out / "chart.svg").write_text(svg_chart(result))


def soak_on_a_cluster_of_its_own(
    server: LocalPostgres,
    kafka: LocalKafka,
    work: Path,
    minutes: float,
    rate: int,
    sample_seconds: float = 60.0,
    dedupe_ttl: str = "3 min",
    commit_log_retention: str = "2 min",
    warm_up_minutes: Optional[float] = None,
) -> dict:
    """`run_soak` on a standalone cluster started for it (Flink's default ports if free) and
    stopped after; the warm-up defaults to 5 minutes, or a sixth of a shorter run."""
    if warm_up_minutes is None:
        warm_up_minutes = min(5.0, minutes / 6)
    rest_port = 8081 if port_free(8081) else free_port()
    rpc_port = 6123 if port_free(6123) else free_port()
    cluster = Cluster("soak", rest_port, rpc_port)
    cluster.start()
    try:
        return run_soak(
            cluster,
            server,
            kafka,
            work,
            minutes,
            rate,
            sample_seconds,
            dedupe_ttl,
            commit_log_retention,
            warm_up_minutes,
        )
    finally:
        cluster.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=500, help="lines per second")
    parser.add_argument("--sample-seconds", type=float, default=60)
    parser.add_argument("--dedupe-ttl", default="3 min")
    parser.add_argument("--commit-log-retention", default="2 min")
    parser.add_argument(
        "--warm-up-minutes", type=float, help="not judged (default: 5, or a sixth of the run)"
    )
    parser.add_argument("--out", type=Path, help="directory for results.json, README.md, chart")
    args = parser.parse_args(argv)
    with (
        LocalPostgres(max_prepared_transactions=64) as server,
        LocalKafka() as kafka,
        tempfile.TemporaryDirectory(prefix="tpc-soak-") as work,
    ):
        result = soak_on_a_cluster_of_its_own(
            server,
            kafka,
            Path(work),
            args.minutes,
            args.rate,
            args.sample_seconds,
            args.dedupe_ttl,
            args.commit_log_retention,
            args.warm_up_minutes,
        )
    print(markdown(result))
    if args.out:
        write_results(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
