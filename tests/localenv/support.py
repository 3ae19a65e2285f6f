"""Helpers for the tests that run a real standalone cluster (`python -m localenv.cluster`),
in tests/localenv, tests/jobs and tests/sinks. The `cluster` fixture is in tests/conftest.py."""

import subprocess
import sys

from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT

PASSWORD_ENV = "TPC_TEST_DB_PASSWORD"


def cluster_command(name, *args, env=None, timeout=240) -> subprocess.CompletedProcess:
    if env is None:  # the daemons never get the password: they log their workers' environment
        env = child_process_environment()
        env.pop(PASSWORD_ENV, None)
    result = subprocess.run(
        [sys.executable, "-m", "localenv.cluster", "--name", name, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    sys.stdout.write(result.stdout[-6000:])
    sys.stderr.write(result.stderr[-6000:])
    return result


def job_id(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("Job has been submitted with JobID "):
            return line.rsplit(" ", 1)[1]
    raise AssertionError("no job id in the output of flink run")
