"""The warm worker pool (localenv/warm_workers.py): Flink's request for a Python worker becomes a
fork of a process that already imported the harness, with the request's arguments, environment,
working directory, standard streams and exit status; anything else, or no pool, runs cold. The
payments job's mini cluster tests run every local job's workers through it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from localenv import warm_workers
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from localenv.processes import alive, descendants

pytestmark = pytest.mark.minicluster

PROBE = "tests.harness.warm_probe"
HARNESS = ("pyflink.fn_execution.beam.beam_sdk_worker_main",)


@pytest.fixture
def pool():
    pool = warm_workers.Pool(sys.executable, boot_module=PROBE, preload=HARNESS)
    yield pool
    pool.close()


def probe_environment(**env) -> dict:
    return child_process_environment({"PYTHONPATH": str(PROJECT_ROOT), **env})


def launch(pool, *args, cwd=None, **env):
    return subprocess.run(
        [str(pool.executable), *args],
        cwd=cwd or PROJECT_ROOT,
        env=probe_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def sleeping_worker(pool, command=None, **popen):
    """Starts a probe worker that sleeps for two minutes, through the pool's launcher (or
    ``command``); returns the process started and the worker's pid."""
    process = subprocess.Popen(
        command or [str(pool.executable), "-m", PROBE, "0", "--sleep", "120"],
        env=probe_environment(),
        stdout=subprocess.PIPE,
        **popen,
    )
    return process, json.loads(process.stdout.readline())["pid"]


def wait_until_gone(pool, worker, seconds=10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker in _workers(pool):
        time.sleep(0.1)


def test_a_worker_is_a_fork_of_the_warm_pool_with_the_requests_environment(pool, tmp_path):
    result = launch(pool, "-m", PROBE, "3", "--id=7", cwd=tmp_path, WARM_PROBE_MARKER="mine")
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["parent"] == pool.process.pid  # forked by the pool, not started cold
    assert report["harness_preloaded"]
    assert report["marker"] == "mine"
    assert report["cwd"] == str(tmp_path)
    assert report["argv"] == ["3", "--id=7"]
    assert "to stderr" in result.stderr  # the launcher's own streams


def test_workers_run_side_by_side(pool):
    first = subprocess.Popen([str(pool.executable), "-m", PROBE, "0"], stdout=subprocess.PIPE)
    second = launch(pool, "-m", PROBE, "0")
    first_report = json.loads(first.communicate(timeout=60)[0])
    assert first.returncode == 0 and second.returncode == 0
    assert first_report["pid"] != json.loads(second.stdout)["pid"]


def test_other_commands_run_the_real_interpreter(pool):
    result = launch(pool, "-c", "import sys; print(sys.executable, sys.argv[1:])", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [sys.executable, "['x']"]


def test_without_the_pool_the_worker_starts_cold(pool):
    pool.process.kill()
    pool.process.wait(timeout=10)
    result = launch(pool, "-m", PROBE, "4")
    assert result.returncode == 4, result.stderr
    report = json.loads(result.stdout)
    assert report["parent"] != pool.process.pid and not report["harness_preloaded"]


def test_a_worker_whose_launcher_is_killed_is_killed_too(pool):
    launcher, worker = sleeping_worker(pool)
    assert _workers(pool) == {worker}
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=10)
    wait_until_gone(pool, worker)
    assert _workers(pool) == set()


def test_a_worker_whose_launcher_is_orphaned_is_killed(pool):
    # Flink stops a worker by killing the shell it started (pyflink-udf-runner.sh), whose
    # children, the launcher and a `tee`, then live on as orphans.
    shell, worker = sleeping_worker(
        pool, ["bash", "-c", f"'{pool.executable}' -m {PROBE} 0 --sleep 120 | cat"]
    )
    shell.send_signal(signal.SIGKILL)
    shell.wait(timeout=10)
    wait_until_gone(pool, worker)
    assert worker not in _workers(pool)


def test_ctrl_c_leaves_the_pool_and_its_workers_running(pool):
    # A terminal's Ctrl-C reaches every process of the job's group. The JVM, and the launchers
    # it starts, ignore it; the job's process decides (stop with a savepoint, say), which needs
    # the workers alive.
    launcher, worker = sleeping_worker(
        pool, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)
    )
    for pid in (pool.process.pid, launcher.pid, worker):
        os.kill(pid, signal.SIGINT)
    time.sleep(1)
    assert alive([pool.process.pid, launcher.pid, worker]) == {
        pool.process.pid,
        launcher.pid,
        worker,
    }
    launcher.kill()
    launcher.wait(timeout=10)


def test_the_pool_ends_with_its_job_process_and_takes_its_workers(pool):
    launcher, worker = sleeping_worker(pool)
    pool.process.stdin.close()  # as when the job's process exits, or is killed
    assert pool.process.wait(timeout=10) == 0
    assert launcher.wait(timeout=10) != 0
    assert alive([worker]) == set()
    assert not pool.directory.exists()  # its socket and launcher script


def _workers(pool) -> set:
    return alive(descendants({pool.process.pid}))


WORKER_PARENT_JOB = """
import os
from pyflink.common import Types
from localenv.flink import local_environment, use_python_worker_processes

use_python_worker_processes()
env = local_environment(parallelism=1)
parents = env.from_collection([1], type_info=Types.INT()).map(
    lambda _: open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\\0", b" ").decode(),
    output_type=Types.STRING(),
)
with parents.execute_and_collect() as results:
    print(list(results)[0])
"""


@pytest.mark.parametrize("setting", ["on", "off"])
def test_a_local_jobs_python_worker_is_forked_from_the_pool(setting):
    result = subprocess.run(
        [sys.executable, "-c", WORKER_PARENT_JOB],
        cwd=PROJECT_ROOT,
        env=child_process_environment({warm_workers.OPT_OUT_VARIABLE: setting}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parent = result.stdout.strip().splitlines()[-1]
    if setting == "on":
        assert "-m localenv.warm_workers" in parent
    else:  # Flink's own start: the runner script's shell
        assert "localenv.warm_workers" not in parent and "pyflink-udf-runner.sh" in parent
