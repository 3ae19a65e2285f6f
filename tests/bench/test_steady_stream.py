"""`python -m bench.steady_stream` on a short, slow stream: the payments job reads a steady
Kafka stream, every event's latency is measured from its production to its ledger row's commit,
and the report has every figure it promises (the run itself refuses to report latencies of a
run that lost or doubled an event)."""

import json
import subprocess
import sys

import pytest

from bench.baseline import OFFSETS_DDL, Chunk
from bench.steady_stream import exactness, latency_summary, produced_lines, slope
from jobs.payments_schema import ensure_schema
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from transforms.payments import parse_line


def test_percentiles_and_lag_growth():
    summary = latency_summary([i / 1000 for i in range(1, 1001)])
    assert summary == {"p50": 0.501, "p90": 0.901, "p99": 0.991, "p99.9": 1.0, "max": 1.0}
    assert slope([(t, 100 + 5 * t) for t in range(10)]) == pytest.approx(5.0)
    assert slope([(t, 100) for t in range(10)]) == 0.0


@pytest.mark.minicluster
def test_a_short_steady_stream_is_measured_end_to_end(tmp_path):
    out = tmp_path / "stream"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.steady_stream",
            "--rate",
            "200",
            "--seconds",
            "6",
            "--checkpoint-interval",
            "500 ms",
            "--out",
            str(out),
        ],
        cwd=PROJECT_ROOT,
        env=child_process_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    (run,) = json.loads((out / "results.json").read_text())
    assert run["lines"] >= 6 * 190 and run["events"] > 0.9 * run["lines"]
    latency = run["latency_seconds"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"] <= latency["max"]
    assert [second for second, _, _ in run["per_second"]] == list(range(1, 7))
    assert {"reader", "postgres", "kafka", "producer"} <= set(run["cpu"])
    assert run["samples"] and all("lag" in s and "reader_rss_mb" in s for s in run["samples"])
    assert "| 200 | 500 ms |" in (out / "README.md").read_text()
    assert (out / "chart.svg").read_text().startswith("<svg")


def apply_once(conn, lines, ledger: bool = True) -> None:
    """`lines` into the payments tables as the single-process script applies them (without
    their ledger rows: as a replay whose ledger upserts change nothing)."""
    chunk, seen = Chunk(), {}
    for line in lines:
        chunk.add(parse_line(line.line, None, line.source, line.line_number), seen)
    if not ledger:
        chunk.ledger = []
    chunk.commit(conn)


def test_exactness_counts_what_a_replay_applied_twice_and_what_was_lost(database):
    lines = produced_lines("t", [("w", 20, 1), ("s", 150, 3)])
    assert {line.source for line in lines} == {"kafka:t:0", "kafka:t:1"}
    with database.connect() as conn:
        ensure_schema(conn)
        conn.execute(OFFSETS_DDL)
        apply_once(conn, lines)
    exact = exactness(database, lines)
    assert (exact["applied_twice"], exact["lost"]) == (0, 0), exact
    assert exact["duplicates"]["expected"] > 0 and exact["rejected"]["expected"] > 0

    # The control: the last 100 lines again, as an at-least-once replay applies them (its
    # dedupe state lost: they count again), and one ledger row gone.
    with database.connect() as conn:
        apply_once(conn, lines[-100:], ledger=False)
        conn.execute("DELETE FROM ledger WHERE event_id = (SELECT min(event_id) FROM ledger)")
    replayed = exactness(database, lines)
    assert replayed["applied_twice"] > 0 and replayed["lost"] == 1, replayed
