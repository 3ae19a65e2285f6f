"""The README's first command, from a fresh clone of the committed tree: the demo runs (it
builds the sink jar into the clone's own var/) and its reconciliation says the books balance."""

import os
import subprocess
import sys

import pytest

from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT

pytestmark = [pytest.mark.minicluster]


def test_demo_from_a_fresh_clone_balances_the_books(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{PROJECT_ROOT}", str(clone)],
        check=True,
    )
    env = {
        k: v
        for k, v in child_process_environment().items()
        if not k.startswith(("TPC_", "FLINK_", "JVM_"))
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.payments", "--demo", "--events", "3000"],
        cwd=clone,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=400)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
    print(stdout[-4000:])
    assert process.returncode == 0, stderr[-4000:]
    assert "books balance: yes" in stdout
    assert "accounted for          yes" in stdout
    assert (clone / "var" / "jars" / "tpc-connectors.jar").is_file()


def test_demo_through_kafka_balances_the_books():
    """`--demo --source kafka`: the same files through a throwaway broker, the same books."""
    process = subprocess.run(
        [sys.executable, "-m", "jobs.payments", "--demo", "--source", "kafka", "--events", "3000"],
        cwd=PROJECT_ROOT,
        text=True,
        capture_output=True,
        env=child_process_environment(),
        timeout=400,
    )
    print(process.stdout[-4000:])
    assert process.returncode == 0, process.stderr[-4000:]
    assert "started Kafka at 127.0.0.1:" in process.stdout
    assert "books balance: yes" in process.stdout
