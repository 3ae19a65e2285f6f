"""`python -m bench.steady_stream` on a short, slow stream: the payments job reads a steady
Kafka stream, every event's latency is measured from its production to its ledger row's commit,
and the report has every figure it promises (the run itself refuses to report latencies of a
run that lost or doubled an event)."""

import json
import subprocess
import sys

import pytest

from bench.steady_stream import latency_summary, slope
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT

pytestmark = [pytest.mark.minicluster]


def test_percentiles_and_lag_growth():
    summary = latency_summary([i / 1000 for i in range(1, 1001)])
    assert summary == {"p50": 0.501, "p90": 0.901, "p99": 0.991, "p99.9": 1.0, "max": 1.0}
    assert slope([(t, 100 + 5 * t) for t in range(10)]) == pytest.approx(5.0)
    assert slope([(t, 100) for t in range(10)]) == 0.0


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
    assert {"job", "postgres", "kafka", "producer"} <= set(run["cpu"])
    assert run["samples"] and all("lag" in s and "job_rss_mb" in s for s in run["samples"])
    assert "| 200 | 500 ms |" in (out / "README.md").read_text()
    assert (out / "chart.svg").read_text().startswith("<svg")
