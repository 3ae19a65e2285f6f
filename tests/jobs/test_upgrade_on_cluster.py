"""The upgrade runbook on the standalone cluster, through `python -m localenv.cluster`: a `--watch`
payments job (version A) stopped with `stop-job --savepoint-dir`, version B (a currency added)
submitted with `--from-savepoint` while files keep arriving; then the stale savepoint refused.
See tests/jobs/test_upgrades.py for the same flow on the mini cluster."""

import json
import re
import threading
import time

import pytest

from localenv.flink import child_process_environment
from tests.jobs.support import database_outcome
from tests.jobs.test_payments_faults import committed_lines
from tests.jobs.test_upgrades import (
    dead_letters,
    expectation,
    repeated_valid_lines,
    write_lines,
    zzz_lines,
)
from tests.localenv.support import cluster_command, job_id
from tests.sinks.support import wait_for
from transforms import sample_data
from transforms.currencies import DEFAULT_CURRENCIES

# Campaign only, to save CI time (80 s): tests/jobs/test_upgrades.py runs the same upgrades on
# the mini cluster in CI, and tests/localenv/test_standalone_cluster.py `flink run` on a cluster.
pytestmark = [pytest.mark.cluster, pytest.mark.campaign]


def submit_payments(flink, db, tmp_path, input_dir, *extra, detached=True):
    # The sink reads the password where it runs, the TaskManagers: from a file they can read.
    env = child_process_environment()
    result = cluster_command(
        flink.name,
        "submit",
        *(["--detached"] if detached else []),
        "--module",
        "jobs.payments",
        "--",
        "--input",
        str(input_dir),
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-file",
        str(db.password_file),
        "--watch",
        "300 ms",
        "--checkpoint-interval",
        "500 ms",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        *extra,
        env=env,
    )
    assert db.password not in result.stdout + result.stderr
    return result


def stop_job(flink, jid, savepoints) -> str:
    result = cluster_command(flink.name, "stop-job", jid, "--savepoint-dir", str(savepoints))
    assert result.returncode == 0, result.stderr[-3000:]
    return re.search(r"stopped with savepoint (\S+)", result.stdout).group(1)


def test_watch_job_upgraded_on_the_cluster(cluster, database, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    savepoints = tmp_path / "savepoints"
    table_b = {**DEFAULT_CURRENCIES, "ZZZ": 2}
    currencies_b = tmp_path / "currencies-b.json"
    currencies_b.write_text(json.dumps(table_b))

    first = sample_data.write_jsonl(str(input_dir / "1-a.jsonl"), 3_000, seed=51, id_prefix="a")
    write_lines(input_dir / "1-a-zzz.jsonl", zzz_lines("zzz-a", 20))
    result = submit_payments(cluster, database, tmp_path, input_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    version_a = job_id(result.stdout)
    wait_for(lambda: committed_lines(database) >= len(first.lines) + 20, 240, "version A")

    written = []

    def keep_writing():
        for n in range(1, 9):
            staged = tmp_path / f".s{n}"
            sample_data.write_jsonl(str(staged), 500, seed=200 + n, id_prefix=f"s{n}")
            staged.rename(input_dir / f"2-stream-{n:03d}.jsonl")
            written.append(n)
            time.sleep(1.0)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        wait_for(lambda: len(written) >= 2, 60, "files written while A runs")
        savepoint = stop_job(cluster, version_a, savepoints)
        assert cluster.job_state(version_a) == "FINISHED"
        stopped_at = committed_lines(database)

        result = submit_payments(
            cluster,
            database,
            tmp_path,
            input_dir,
            "--currencies",
            str(currencies_b),
            "--from-savepoint",
            savepoint,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        version_b = job_id(result.stdout)
        write_lines(
            input_dir / "3-b.jsonl", zzz_lines("zzz-b", 15) + repeated_valid_lines(first.lines, 30)
        )
    finally:
        writer.join(timeout=60)
    expected, moved = expectation(input_dir, input_dir / "1-a-zzz.jsonl", table_b)
    total = len(expected[0]) + len(expected[2]) + expected[3]
    assert 0 < stopped_at < total, "not stopped mid-stream"
    wait_for(lambda: committed_lines(database) >= total, 240, "every line to commit")
    time.sleep(2)
    newest = stop_job(cluster, version_b, savepoints)
    assert newest != savepoint
    assert database_outcome(database) == expected
    assert dead_letters(database) == 0

    # Version A's savepoint is stale now: B committed later checkpoints. Refused, clearly.
    before = database_outcome(database)
    result = submit_payments(
        cluster, database, tmp_path, input_dir, "--from-savepoint", savepoint, detached=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr  # flink run passes the client's stderr to stdout
    assert re.search(r"error: sink 'payments-[a-z]+' refuses to restore checkpoint", output)
    assert "Restore the savepoint the job was last stopped with" in output
    assert database_outcome(database) == before
