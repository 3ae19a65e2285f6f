"""The benchmark command runs end to end on a tiny input and writes a well-formed result.
It asserts nothing about speed: speed is measured by `python -m bench.suite`, never in tests."""

import json
import subprocess
import sys

import pytest

from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT

pytestmark = pytest.mark.minicluster


def test_throughput_section_on_a_tiny_input_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.suite",
            "--only",
            "throughput",
            "--lines",
            "2000",
            "--rounds",
            "1",
            # Two of the job's ten runs (each variant's flags have their own tests): the whole
            # table took 75 s of CI.
            "--variant",
            "job p2 process",
            "--variant",
            "job p2 process, discarding sinks",
            "--out",
            str(out),
        ],
        cwd=PROJECT_ROOT,
        env=child_process_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "results.json").read_text())
    assert report["machine"]["cores"] >= 1 and report["rounds"] == 1
    runs = report["throughput"]["results"]
    assert set(runs) == {
        "script (single process)",
        "job p2 process",
        "job p2 process, discarding sinks",
        "startup: job p2 process on 1,000 lines",
    }
    for name, run in runs.items():
        assert len(run["runs"]) == 1 and run["median"] > 0, name
    table = (out / "README.md").read_text()
    assert "| job p2 process |" in table and "vs script" in table


def bench_suite(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.suite", *args],
        cwd=PROJECT_ROOT,
        env=child_process_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def test_another_job_is_measured_through_its_own_command_and_sample_lines(tmp_path):
    """`--job orders`: its sample lines, its command, its line tables; no script to compare
    with (the script implements the payments rules)."""
    out = tmp_path / "results"
    result = bench_suite(
        *("--job", "orders", "--only", "throughput", "--lines", "2000", "--rounds", "1"),
        *("--variant", "job p2 process", "--out", str(out)),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "results.json").read_text())
    assert report["job"] == "orders"
    assert set(report["throughput"]["results"]) == {
        "job p2 process",
        "startup: job p2 process on 1,000 lines",
    }
    assert "| job p2 process |" in (out / "README.md").read_text()


def test_the_payments_comparisons_are_refused_for_another_job(tmp_path):
    result = bench_suite("--job", "orders", "--only", "throughput,sink", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "sections ['sink'] measure the payments job only" in result.stderr
