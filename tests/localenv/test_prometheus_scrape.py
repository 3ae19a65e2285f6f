"""A real scrape (issue 26): Debian's prometheus with monitoring/prometheus.yml (scrape interval
1 s) against the standalone cluster running the payments job, asked through its HTTP API.

1. The job (`--watch`) applies a first set of files; once every line is committed, what
   Prometheus says the sink committed, sum(tpcRowsCommitted) of the job, equals what the
   database says it committed: the sink's commit log, SUM(row_count) for the job's sink id (the
   rows the sink staged for ledger/duplicates, rejected and positions). No kill comes before
   this comparison: a counter lives in its TaskManager and starts over with a restarted task.
   The commit latency summary has samples, and the exporter's `tpc_source_positions_lines` is
   the number of lines committed.
2. A TaskManager is killed with kill -9 and a new one added: the job's restart count in
   Prometheus moves, the job takes a second set of files, every line of both is in the tables
   exactly once, and the counter again equals the database's commits since the restart.

Prometheus and the exporter are stopped by `localenv.prometheus.monitoring` on the way out, the
job is cancelled and the cluster stopped by its fixture, also when an assertion fails.
"""

import re
import time

import pytest

from localenv.cluster import ClusterError
from localenv.prometheus import LocalPrometheus, monitoring
from tests.jobs.support import database_outcome, expected_in_database_shape, expected_outcome
from tests.jobs.test_payments_faults import committed_lines
from tests.sinks.support import wait_for
from transforms import sample_data

pytestmark = pytest.mark.cluster

SINK_ID = "payments-books"  # the job's one sink in commit scope `checkpoint` (the default)
FIRST_LINES = 2_000
SECOND_LINES = 1_000
OPERATOR = "flink_taskmanager_job_task_operator_"  # the prefix of an operator's metrics


def series(name: str, job_id: str, **labels: str) -> str:
    """A selector of the job's series: `name{job_id="...",...}`."""
    matchers = ",".join(f'{key}="{value}"' for key, value in {"job_id": job_id, **labels}.items())
    return f"{name}{{{matchers}}}"


def commit_log_rows(db) -> int:
    """The rows the sink committed, as its commit log in the database records them."""
    with db.connect() as conn:
        return int(
            conn.execute(
                "SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log WHERE sink_id = %s",
                (SINK_ID,),
            ).fetchone()[0]
        )


def metric_names(prometheus: LocalPrometheus, job_id: str) -> list[str]:
    """The names of every series Prometheus holds for the job."""
    return sorted(prometheus.api("label/__name__/values", **{"match[]": f'{{job_id="{job_id}"}}'}))


def metric_type(prometheus: LocalPrometheus, name: str) -> str:
    """The TYPE the reporter declares for `name` (Prometheus's metadata API)."""
    found = prometheus.api("metadata", metric=name).get(name, [])
    return ",".join(sorted({entry["type"] for entry in found})) or "?"


def wait_until_equal(prometheus: LocalPrometheus, expr: str, expected, timeout: float) -> float:
    """Polls `expr` until it equals `expected()` (asked again each time); returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        want = expected()
        seen = prometheus.value(expr)
        if seen == want:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{expr} is {seen} after {timeout:.0f} s, the database says {want}; "
                f"targets: {target_health(prometheus)}"
            )
        time.sleep(0.5)


def target_health(prometheus: LocalPrometheus) -> str:
    return ", ".join(f"{t['labels'].get('instance')} {t['health']}" for t in prometheus.targets())


def settled(cluster, job: str, taskmanagers: int) -> bool:
    """The job runs, every task of it, and only the live TaskManagers are registered."""
    try:
        registered = len(cluster.rest("/taskmanagers")["taskmanagers"])
        vertices = cluster.rest(f"/jobs/{job}")["vertices"]
        state = cluster.job_state(job)
    except (OSError, ValueError, KeyError):
        return False
    return (
        registered == taskmanagers
        and state == "RUNNING"
        and all(vertex["status"] == "RUNNING" for vertex in vertices)
    )


def test_prometheus_scrapes_the_payments_job(cluster, database, tmp_path, adopt_process):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    first = sample_data.write_jsonl(
        str(input_dir / "1.jsonl"), FIRST_LINES, seed=61, id_prefix="p1"
    )
    with monitoring(database, scrape_interval="1s") as prometheus:
        job = cluster.submit_detached(
            [
                *("--input", str(input_dir), "--watch", "300 ms"),
                *("--db-url", database.jdbc_url, "--db-user", database.user),
                *("--password-file", str(database.password_file)),
                *("--checkpoint-interval", "500 ms"),
                *("--checkpoint-dir", str(tmp_path / "checkpoints")),
            ],
            "jobs.payments",
        )
        try:
            rows = f"sum({series(OPERATOR + 'tpcRowsCommitted', job)})"
            restarts = f"max({series('flink_jobmanager_job_numRestarts', job)})"
            lines_applied = f'max(tpc_source_positions_lines{{sink_id="{SINK_ID}"}})'
            latency_count = f"sum({series(OPERATOR + 'tpcCommitLatencyMillis_count', job)})"
            median_latency = (
                f"max({series(OPERATOR + 'tpcCommitLatencyMillis', job, quantile='0.5')})"
            )

            # -- 1: every line of the first file committed; Prometheus and the database agree
            wait_for(lambda: committed_lines(database) >= len(first.lines), 120, "the first file")
            in_prometheus = wait_until_equal(
                prometheus, rows, lambda: commit_log_rows(database), 30
            )
            in_database = commit_log_rows(database)
            lines = committed_lines(database)
            assert lines == len(first.lines)
            assert in_database >= lines  # also the positions rows staged with them
            # The exporter's view of the same database: the lines the books sink recorded.
            exported = prometheus.wait_for(lines_applied, lambda v: v == lines, 15)
            latency_samples = prometheus.wait_for(latency_count, lambda v: v > 0, 15)
            median = prometheus.value(median_latency)
            assert prometheus.wait_for(restarts, lambda v: v >= 0, 15) == 0
            names = metric_names(prometheus, job)
            print(
                f"\nphase 1: Prometheus sum(tpcRowsCommitted) = {in_prometheus:.0f}, database "
                f"commit log sum(row_count) = {in_database} ({lines} lines in ledger, duplicates "
                f"and rejected, the exporter's tpc_source_positions_lines {exported:.0f}); "
                f"tpcCommitLatencyMillis: {latency_samples:.0f} commits, "
                f"median {median} ms"
            )
            print("sink metrics as Prometheus names them (and their types):")
            for name in names:
                if re.search(r"_tpc[A-Z]", name):
                    print(f"  {name} {metric_type(prometheus, name)}")
            quantiles = prometheus.query(
                f"count by (quantile) ({series(OPERATOR + 'tpcCommitLatencyMillis', job)})"
            )
            print(f"  quantiles: {sorted(float(q['metric']['quantile']) for q in quantiles)}")

            # -- 2: kill -9 a TaskManager, add one; the restart count moves, nothing is lost
            before_kill = commit_log_rows(database)
            victim = cluster.kill_taskmanager()
            print(f"killed TaskManager {victim} with kill -9")
            survivors = cluster.taskmanagers()
            cluster.add_taskmanager()
            live = cluster.taskmanagers()
            for pid in live - survivors:
                adopt_process(pid)  # the cluster's now: its fixture stops it
            prometheus.wait_for(restarts, lambda v: v >= 1, 60)
            # Restarts stop once the dead TaskManager is declared lost (until then one may try
            # its slots): after that, the counters start over no more.
            wait_for(
                lambda: settled(cluster, job, len(live)),
                90,
                f"the job running on {len(live)} TaskManagers, the dead one forgotten",
            )
            time.sleep(2)  # two scrapes: Prometheus has the last restart too
            moved = prometheus.wait_for(restarts, lambda v: v >= 1, 15)
            second = sample_data.write_jsonl(
                str(tmp_path / "2.jsonl"), SECOND_LINES, seed=62, id_prefix="p2"
            )
            (tmp_path / "2.jsonl").rename(input_dir / "2.jsonl")
            total = len(first.lines) + len(second.lines)
            wait_for(lambda: committed_lines(database) >= total, 120, "the second file")
            after_restart = wait_until_equal(
                prometheus, rows, lambda: commit_log_rows(database) - before_kill, 30
            )
            assert prometheus.value(restarts) == moved, "the job restarted again meanwhile"
            exported = prometheus.wait_for(lines_applied, lambda v: v == total, 15)
            outcome = database_outcome(database)
            assert outcome == expected_in_database_shape(expected_outcome(input_dir))
            ledger, _, rejected, duplicates = outcome
            print(
                f"phase 2: numRestarts = {moved:.0f}; Prometheus sum(tpcRowsCommitted) since the "
                f"restart = {after_restart:.0f} = database {commit_log_rows(database)} - "
                f"{before_kill}; {total} lines (exporter: {exported:.0f}): ledger {len(ledger)}, "
                f"duplicates "
                f"{duplicates}, rejected {len(rejected)}"
            )
        finally:
            try:
                if cluster.job_state(job) not in ("CANCELED", "FAILED", "FINISHED"):
                    cluster.cancel_job(job)
            except (OSError, ValueError, ClusterError) as error:  # the fixture stops the cluster
                print(f"could not cancel job {job}: {error}")
