"""`python -m bench.steady_stream` on a short, slow stream: the payments job reads a steady
Kafka stream, every event's latency is measured from its production to its ledger row's commit,
and the report has every figure it promises (the run itself refuses to report latencies of a
run that lost or doubled an event)."""

import json
import subprocess
import sys

import pytest

from bench.baseline import OFFSETS_DDL, Chunk
from bench.steady_stream import (
    ReaderExited,
    Variant,
    commit_scope_of,
    exactness,
    failed_run,
    highest_sustainable,
    latency_summary,
    markdown,
    produced_lines,
    slope,
    svg_chart,
    svg_rates,
    verdict,
)
from jobs.payments_schema import ensure_schema
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from transforms.payments import parse_line


def test_percentiles_and_lag_growth():
    summary = latency_summary([i / 1000 for i in range(1, 1001)])
    assert summary == {"p50": 0.501, "p90": 0.901, "p99": 0.991, "p99.9": 1.0, "max": 1.0}
    assert slope([(t, 100 + 5 * t) for t in range(10)]) == pytest.approx(5.0)
    assert slope([(t, 100) for t in range(10)]) == 0.0


def a_run(rate, p99, growth=0.0, runner="job", produced=None, variant="default"):
    lat = {"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99, "p99.9": p99 * 1.2, "max": p99 * 1.5}
    return {
        "runner": runner,
        "variant": variant,
        "job_args": [],
        "rate": rate,
        "checkpoint_interval": "1 s",
        "produced_per_second": produced or float(rate),
        "latency_seconds": lat,
        "lag_max": 0,
        "lag_growth_per_second": growth,
        "cpu": {},
    }


def test_the_highest_sustainable_rate_is_the_last_one_kept_up_with():
    """Kept up: p99 <= 1 s, a lag that does not grow (<= 1 % of the rate per second) and a
    producer that held the rate; a rate above the first failure does not count."""
    assert verdict(a_run(1000, 0.6, growth=9.0)) == (True, "keeps up")
    assert verdict(a_run(1000, 1.2)) == (False, "p99 1.2 s > 1 s")
    assert verdict(a_run(1000, 0.6, growth=11.0)) == (False, "lag grows 11.0/s")
    assert not verdict(a_run(1000, 0.6, produced=900.0))[0]
    runs = [a_run(4000, 0.9), a_run(1000, 0.5), a_run(2000, 1.4), a_run(2000, 0.4, runner="script")]
    runs.append(a_run(500, 2.0, runner="job", variant="unaligned"))
    found = {(e["runner"], e["variant"]): e for e in highest_sustainable(runs)}
    assert (found["job", "default"]["highest"], found["job", "default"]["first_failed"]) == (
        1000,
        2000,
    )
    assert found["job", "default"]["why"] == "p99 1.4 s > 1 s"
    assert (found["script", "default"]["highest"], found["script", "default"]["first_failed"]) == (
        2000,
        None,
    )
    assert found["job", "unaligned"]["highest"] is None
    table = markdown(runs)
    assert "| job | 1 s | 1,000 | 2,000 | p99 1.4 s > 1 s |" in table
    assert "| job [unaligned] | 1 s | none | 500 |" in table
    chart = svg_rates(runs)
    assert chart.startswith("<svg") and chart.count("<polyline") == 3 * 3  # p50/p99/p99.9


def test_a_variant_the_job_refuses_is_reported_and_the_sweep_goes_on(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("starting\nerror: commit scope 'checkpoint' needs aligned checkpoint barriers\n")
    error = str(ReaderExited("job", log))
    assert error.endswith("needs aligned checkpoint barriers")
    refused = failed_run("job", Variant("unaligned", ("-D", "x=y")), 2000, "200 ms", 90, error)
    runs = [a_run(2000, 0.5), refused]
    table = markdown(runs)
    assert "| job [unaligned] | 2,000 | 200 ms | - |" in table
    assert "failed: the job exited: starting / error: commit scope" in table
    found = {e["variant"]: e for e in highest_sustainable(runs)}
    assert found["unaligned"]["highest"] is None and found["default"]["highest"] == 2000
    assert svg_rates(runs).count("<polyline") == 3 and svg_chart(runs).startswith("<svg")


def test_a_subtask_scope_variant_is_counted_by_its_rows():
    """It commits no source positions, which the job's lag is read from otherwise."""
    assert commit_scope_of(()) == "checkpoint"
    assert commit_scope_of(("--commit-scope", "subtask", "-D", "a=b")) == "subtask"
    assert commit_scope_of(("--commit-scope=subtask",)) == "subtask"


def test_a_variant_is_a_name_and_the_jobs_extra_flags():
    variant = Variant.parse("bundle=-D python.fn-execution.bundle.time=100 --mode thread")
    assert variant == Variant(
        "bundle", ("-D", "python.fn-execution.bundle.time=100", "--mode", "thread")
    )
    with pytest.raises(Exception, match="is not NAME=FLAGS"):
        Variant.parse("-D a=b")


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
            "--warm-up-seconds",
            "2",
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
    assert (out / "rates.svg").read_text().startswith("<svg")
    assert "Highest rate kept up with" in (out / "README.md").read_text()
    assert (
        run["warm_up_seconds"] == 2
        and "first produced 2 s at its rate" in (out / "README.md").read_text()
    )


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
