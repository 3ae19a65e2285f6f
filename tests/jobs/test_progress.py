"""The job's command says what the job is doing (issue 24): progress lines while it runs (plain
lines in a log, one line rewritten in place on a terminal), every restart as it happens with its
cause, and a last line with the committed counts, or, when the job fails for good, why and how
to go on. `jobs/progress.py` does it for any job; the payments job passes its counts.

The formatting and the reading of Flink's REST answers are checked without a JVM; the rest runs
the job's command on the mini cluster, as a user does (a pipe, a pseudo-terminal), or its `main`
in this process where a failover needs a spare TaskManager. The run with one injected restart
has its control: the same run without the fault prints no restart line."""

import dataclasses
import io
import os
import pty
import re
import select
import subprocess
import time
from typing import Any

import pytest

import jobs.payments as payments
from jobs.flink_config import job_defaults
from jobs.progress import (
    NO_LIMIT,
    Cause,
    JobMonitor,
    RestartLog,
    RestartPolicy,
    Snapshot,
    checkpoint_age,
    describe_error,
    format_end,
    format_progress,
    format_restart,
    restart_policy,
    root_cause,
    source_metric_ids,
)
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from tests.jobs.support import (
    PASSWORD_ENV,
    SPARE_TASKMANAGERS,
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_command,
    write_inputs,
)
from tests.sinks.support import sink_fault, sink_fault_in_this_jvm

# ---------------------------------------------------------------------------------------------
# Without a JVM: root causes, restart lines, progress lines, the REST answers
# ---------------------------------------------------------------------------------------------

SINK_TRACE = """\
org.apache.flink.runtime.client.JobExecutionException: Job execution failed.
\tat org.apache.flink.runtime.jobmaster.JobResult.toJobExecutionResult(JobResult.java:144)
Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoff
\tat org.apache.flink.runtime.executiongraph.failover.FailureHandler.handle(Handler.java:219)
\t... 4 more
Caused by: java.io.IOException: Could not perform checkpoint 1 for operator books-sink: Writer
\tat org.apache.flink.streaming.runtime.tasks.StreamTask.triggerCheckpoint(StreamTask.java:1450)
\tSuppressed: java.lang.IllegalStateException: cleanup failed
\t\tat dev.tpc.sink.PgWriter.close(PgWriter.java:1)
\tCaused by: java.lang.RuntimeException: nested in the suppressed one
\t\t... 3 more
Caused by: java.io.IOException: injected sink failure: sink 'payments-books' subtask 0, 119 rows
\tat dev.tpc.sink.faults.FaultInjection.at(FaultInjection.java:170)
\t... 21 more
"""

PYTHON_TRACE = """\
java.lang.RuntimeException: Failed to close remote bundle
\tat org.apache.flink.streaming.api.runners.python.beam.BeamRunner.finishBundle(BeamRunner.java:423)
Caused by: java.lang.RuntimeException: Error received from SDK harness for instruction 4: \
Traceback (most recent call last):
  File "/venv/apache_beam/runners/worker/sdk_worker.py", line 311, in _execute
    response = task()
ValueError: first

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/work/main/tests/harness/faults.py", line 58, in map
    raise InjectedFailure(f"injected failure after {self.seen} records")
tests.harness.faults.InjectedFailure: injected failure after 5000 records

\tat org.apache.beam.runners.fnexecution.control.Client.onNext(Client.java:180)
"""


def test_the_root_cause_is_the_innermost_caused_by_of_the_trace():
    assert root_cause(SINK_TRACE) == Cause(
        "IOException", "injected sink failure: sink 'payments-books' subtask 0, 119 rows"
    )
    # No "Caused by": the trace's own exception. A py4j error's text starts with ": ".
    assert root_cause(
        "An error occurred while calling o7.get.\n: java.io.FileNotFoundException: File "
        "file:/in/x.jsonl does not exist\n\tat org.apache.flink.core.fs.local.X.y(X.java:1)\n"
    ) == Cause("FileNotFoundException", "File file:/in/x.jsonl does not exist")
    assert root_cause("no exception here") is None


def test_a_python_failure_in_an_operator_is_named_by_its_python_exception():
    assert root_cause(PYTHON_TRACE) == Cause(
        "InjectedFailure", "injected failure after 5000 records"
    )


def test_a_cause_is_one_line_of_at_most_200_characters():
    cause = root_cause(
        "Caused by: org.postgresql.util.PSQLException: " + "x" * 500 + "\n  Detail: more\n"
    )
    assert cause is not None and cause.name == "PSQLException"
    assert len(cause.message) == 200 and cause.message.endswith("…")
    assert "\n" not in str(cause)
    assert describe_error(ValueError("bad input\nsecond line")) == "ValueError: bad input"

    class JavaError(Exception):
        def __str__(self):
            return "An error occurred while calling o12.get.\n: " + SINK_TRACE

    assert describe_error(JavaError()).startswith("IOException: injected sink failure: ")


def test_the_restart_limit_comes_from_the_effective_settings():
    assert restart_policy(job_defaults()) == RestartPolicy(limit=70, reset_after=600.0)
    assert restart_policy(
        {
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.attempts-before-reset-backoff": "5",
            "restart-strategy.exponential-delay.reset-backoff-threshold": "90 s",
        }
    ) == RestartPolicy(5, 90.0)
    fixed = {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "3"}
    assert restart_policy(fixed) == NO_LIMIT
    assert format_restart(3, 70, "IOException: gone") == "restart 3/70 after IOException: gone"
    assert format_restart(3, None, "IOException: gone") == "restart 3 after IOException: gone"
    assert format_restart(1, 70, None) == "restart 1/70"


def history(*entries: tuple[int, str]) -> dict[str, Any]:
    """An exception history as `/jobs/<id>/exceptions` answers it (newest first)."""
    return {
        "exceptionHistory": {
            "entries": [
                {
                    "timestamp": timestamp,
                    "exceptionName": "java.io.IOException",
                    "stacktrace": f"java.io.IOException: {message}\n\tat a.B.c(B.java:1)\n",
                    "taskName": "books-sink: Writer (1/2)",
                }
                for timestamp, message in sorted(entries, reverse=True)
            ]
        }
    }


def test_each_failure_is_one_restart_line_once_and_the_last_failure_none():
    log = RestartLog(RestartPolicy(70, 600.0))
    assert log.update(history(), "RUNNING") == []
    assert log.update(history((1_000, "first")), "RESTARTING") == [
        "restart 1/70 after IOException: first"
    ]
    # Seen again in the next polls: nothing new.
    assert log.update(history((1_000, "first")), "RUNNING") == []
    two_more = history((1_000, "first"), (5_000, "second"), (9_000, "third"))
    assert log.update(two_more, "RUNNING") == [
        "restart 2/70 after IOException: second",
        "restart 3/70 after IOException: third",
    ]
    # A failure after the reset threshold starts the strategy's count again.
    assert log.update(history((9_000, "third"), (700_000, "later")), "RUNNING") == [
        "restart 1/70 after IOException: later"
    ]
    assert log.restarts == 4
    # The failure that ends the job is no restart.
    assert log.update(history((800_000, "for good")), "FAILED") == []
    assert log.restarts == 4 and log.final == "IOException: for good"


def test_progress_lines_for_a_log_and_for_a_terminal():
    snapshot = Snapshot(
        elapsed=12.4,
        read=20_119,
        committed={"committed": 18_000, "rejected": 120, "duplicates": 1_003},
        restarts=1,
        checkpoint_age=1.2,
        backlog=4_321,
    )
    assert format_progress(snapshot) == (
        "progress 12 s: read 20,119, committed 18,000, rejected 120, duplicates 1,003, "
        "restarts 1, last checkpoint 1 s ago, lag 4,321"
    )
    assert format_progress(snapshot, terminal=True) == (
        "   12 s  read 20,119  committed 18,000  rejected 120  duplicates 1,003  restarts 1  "
        "last checkpoint 1 s ago  lag 4,321"
    )
    # Unknown fields are left out; the last line leaves out what only a running job has.
    assert format_progress(Snapshot(elapsed=3)) == "progress 3 s: running"
    assert format_end("finished", snapshot, "ab12") == (
        "job ab12 finished after 12 s: committed 18,000, rejected 120, duplicates 1,003, restarts 1"
    )


def test_what_the_rest_api_answers_is_read_as_lines_lag_and_checkpoint_age():
    listed = [
        "numRecordsOut",
        "Source__payment-files.numRecordsOut",
        "Source__payment-files.numRecordsOutPerSecond",
        "skip-applied-lines.numRecordsOut",
        "Source__payment-records.pendingRecords",
    ]
    assert source_metric_ids(listed) == (
        ["Source__payment-files.numRecordsOut"],
        ["Source__payment-records.pendingRecords"],
    )
    latest = {"latest": {"completed": {"latest_ack_timestamp": 10_000}}}
    assert checkpoint_age(latest, now_ms=13_500) == 3.5
    assert checkpoint_age({"latest": {"completed": None}}, now_ms=13_500) is None


class FakeClient:
    def get_job_id(self):
        return "f00d"


class FakeRestApi:
    """Answers the monitor's requests like the REST API of a job that failed once."""

    def __init__(self):
        self.failures = history()
        self.restarts = 0

    def __call__(self, path: str) -> Any:
        if path.startswith("/jobs/f00d/exceptions"):
            return self.failures
        if path == "/jobs/f00d":
            vertices = [{"id": "v1", "name": "Source: payment-files -> parse"}]
            return {"state": "RUNNING", "now": 20_000, "vertices": vertices}
        if path.startswith("/jobs/f00d/metrics"):
            return [{"id": "numRestarts", "value": str(self.restarts)}]
        if path == "/jobs/f00d/checkpoints":
            return {"latest": {"completed": {"latest_ack_timestamp": 18_000}}}
        if path == "/jobs/f00d/vertices/v1/subtasks/metrics":
            return [{"id": "Source__payment-files.numRecordsOut"}, {"id": "numRecordsOut"}]
        if path.startswith("/jobs/f00d/vertices/v1/subtasks/metrics?get="):
            return [{"id": "Source__payment-files.numRecordsOut", "sum": 1234.0}]
        raise OSError(f"unexpected {path}")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("out", [io.StringIO(), Terminal()], ids=["log", "terminal"])
def test_the_monitor_prints_a_restart_once_and_ends_with_one_line(out):
    api = FakeRestApi()
    monitor = JobMonitor(
        committed=lambda: {"committed": 7}, policy=RestartPolicy(70), out=out, fetch=api
    )
    assert monitor.interval == (2.0 if isinstance(out, Terminal) else 10.0)
    monitor.start(FakeClient(), background=False)  # this test polls by itself
    monitor.poll()
    monitor.show_progress()
    api.failures, api.restarts = history((15_000, "injected")), 1
    monitor.poll()
    monitor.poll()
    monitor.show_progress()
    monitor.finish("finished")
    text = out.getvalue()
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines()]
    assert [line for line in lines if line.startswith("restart")] == [
        "restart 1/70 after IOException: injected"
    ]
    assert lines[-1] == "job f00d finished after 0 s: committed 7, restarts 1"
    if isinstance(out, Terminal):
        # The progress line is rewritten in place; lines of their own replace it.
        assert text.startswith("\r    0 s  read 1,234  committed 7  restarts 0  last checkpoint")
        assert "\rrestart 1/70 after IOException: injected" in text
    else:
        assert "\r" not in text
        assert lines[0] == (
            "progress 0 s: read 1,234, committed 7, restarts 0, last checkpoint 2 s ago"
        )


def test_the_monitor_shows_the_counts_it_has_when_the_rest_api_does_not_answer():
    def down(path: str) -> Any:
        raise OSError("connection refused")

    def no_database():
        raise OSError("database down")

    out = io.StringIO()
    monitor = JobMonitor(committed=no_database, out=out, fetch=down)
    monitor.start(FakeClient(), background=False)
    monitor.poll()
    monitor.show_progress()
    monitor.finish("failed")
    assert out.getvalue().splitlines() == ["progress 0 s: running", "job f00d failed after 0 s"]


# ---------------------------------------------------------------------------------------------
# The job's command on the mini cluster
# ---------------------------------------------------------------------------------------------

JOB_ID = r"[0-9a-f]{32}"
END = re.compile(
    rf"job {JOB_ID} finished after \d+ s: committed ([\d,]+), rejected ([\d,]+), "
    r"duplicates ([\d,]+), restarts (\d+)"
)


def command(db, input_dir, tmp_path, *extra: str) -> list[str]:
    checkpoints = str(tmp_path / "checkpoints")
    return payments_command(
        db, input_dir, "--checkpoint-dir", checkpoints, "--checkpoint-interval", "1 s", *extra
    )


def run(cmd: list[str], db, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password, **extra_env}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def database_counts(db) -> tuple[int, int, int]:
    """What the last line must say: lines applied (the books sink's positions), rejected and
    duplicate rows."""
    with db.connect() as conn:
        lines, rejected, duplicates = conn.execute(
            "SELECT (SELECT sum(lines) FROM tpc_source_positions WHERE sink_id = "
            "'payments-books'), (SELECT count(*) FROM rejected), (SELECT count(*) FROM duplicates)"
        ).fetchone()
    return int(lines), int(rejected), int(duplicates)


def end_counts(stdout: str) -> tuple[tuple[int, int, int], int]:
    last = stdout.rstrip("\n").replace("\r", "\n").splitlines()[-1]
    found = END.fullmatch(last.strip())
    assert found, f"the last line is not the job's end: {last!r}"
    counts = tuple(int(group.replace(",", "")) for group in found.groups())
    return (counts[0], counts[1], counts[2]), counts[3]


@pytest.mark.minicluster
def test_a_run_in_a_log_prints_progress_lines_and_ends_with_the_databases_counts(
    database, tmp_path
):
    """Also the control of the restart test below: a run without failures prints no restart."""
    input_dir = write_inputs(tmp_path / "input", events=20_000)
    done = run(command(database, input_dir, tmp_path, "--progress-interval", "1"), database)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "\r" not in done.stdout
    assert re.fullmatch(
        rf"job {JOB_ID} running, Flink's REST API at http://[\w.-]+:\d+", lines[0]
    ), lines[0]
    progress = [line for line in lines if line.startswith("progress ")]
    assert progress, done.stdout
    assert all(
        re.fullmatch(
            r"progress \d+ s: read [\d,]+, committed [\d,]+, rejected [\d,]+, "
            r"duplicates [\d,]+, restarts 0(, last checkpoint \d+ s ago)?",
            line,
        )
        for line in progress
    ), progress
    assert not [line for line in lines if line.startswith("restart")]
    counts, restarts = end_counts(done.stdout)
    assert counts == database_counts(database) and restarts == 0
    assert counts[0] == expected_outcome(input_dir).lines
    assert database.password not in done.stdout + done.stderr


@pytest.mark.minicluster
def test_on_a_terminal_the_progress_line_is_rewritten_in_place(database, tmp_path):
    """A pseudo-terminal, the default interval (2 s): ``\\r`` lines, then the last line."""
    input_dir = write_inputs(tmp_path / "input", events=60_000)
    output = run_in_terminal(command(database, input_dir, tmp_path), database)
    rewritten = re.findall(
        r"\r +\d+ s  read [\d,]+  committed [\d,]+  rejected [\d,]+  duplicates [\d,]+  "
        r"restarts 0",
        output,
    )
    assert len(rewritten) >= 2, output
    assert "progress " not in output  # no log lines on a terminal
    counts, restarts = end_counts(output)
    assert counts == database_counts(database) and restarts == 0


def run_in_terminal(cmd: list[str], db, timeout: float = 300) -> str:
    """`cmd`'s output with its stdout and stderr on a pseudo-terminal; asserts exit 0."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password}),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every holder of the terminal has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
        os.close(controller)
    # A terminal turns "\n" into "\r\n"; the rewritten line is what "\r" alone starts.
    output = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    assert returncode == 0, output[-4000:]
    return output


@pytest.mark.minicluster
@pytest.mark.chaos
@pytest.mark.parametrize("injected", [True, False], ids=["one-sink-failure", "control"])
def test_a_restart_is_printed_once_with_its_cause_and_the_run_stays_exactly_once(
    database, tmp_path, monkeypatch, capsys, injected
):
    """The books sink fails once, right after its first checkpoint's rows became durable and
    before that checkpoint completed (the sink's fault seam); the control runs without it.

    The command's `main` runs in this process, as the other failover tests run their jobs: its
    mini cluster then has spare TaskManagers (`SPARE_TASKMANAGERS`, tests/jobs/support.py),
    which a command in a process of its own cannot be given."""
    input_dir = write_inputs(tmp_path / "input", events=60_000)
    fault_dir = tmp_path / "sink-fault"
    fault = sink_fault(fault_dir, "fail", nth=1) if injected else {}
    status, out, err = run_main(database, input_dir, tmp_path, monkeypatch, capsys, fault)
    assert status == 0, out[-2000:] + err[-3000:]
    assert (fault_dir / "fired").exists() == injected
    restart_lines = [line for line in out.splitlines() if line.startswith("restart")]
    if injected:
        assert len(restart_lines) == 1, out
        assert re.fullmatch(
            r"restart 1/70 after IOException: injected sink failure: sink 'payments-books' "
            r"subtask \d after making \d+ rows of a checkpoint durable \(.*\), before it "
            r"completed",
            restart_lines[0],
        ), restart_lines
    else:
        assert restart_lines == [], out
    counts, restarts = end_counts(out)
    assert restarts == (1 if injected else 0)
    assert counts == database_counts(database)
    expected = expected_outcome(input_dir)
    assert database_outcome(database) == expected_in_database_shape(expected)
    assert counts[0] == expected.lines


def run_main(database, input_dir, tmp_path, monkeypatch, capsys, fault, **settings: str):
    """The job's command (`jobs.payments.main`) in this process, with `fault` armed in this
    process's JVM and Flink `settings` added to spare TaskManagers: (status, stdout, stderr)."""
    arguments = payments.config_from_args
    extra = {**SPARE_TASKMANAGERS, **settings}
    monkeypatch.setattr(
        payments,
        "config_from_args",
        lambda args: dataclasses.replace(arguments(args), extra_settings=extra),
    )
    argv = command(database, input_dir, tmp_path, "--progress-interval", "1")[3:]
    # In this process's JVM, which started before this password existed: read from a file.
    at = argv.index("--password-env")
    argv[at : at + 2] = ["--password-file", str(database.password_file)]
    with sink_fault_in_this_jvm(fault):
        status = payments.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.minicluster
@pytest.mark.chaos
def test_a_job_that_fails_for_good_ends_with_why_and_how_to_go_on(
    database, tmp_path, monkeypatch, capsys
):
    """No restarts allowed, and the books sink fails: the command's last line is the root
    cause and what to run next, after the whole trace; exit status 1."""
    input_dir = write_inputs(tmp_path / "input", events=20_000)
    fault = sink_fault(tmp_path / "sink-fault", "fail", nth=1)
    no_restarts = {"restart-strategy.type": "none"}
    status, out, err = run_main(
        database, input_dir, tmp_path, monkeypatch, capsys, fault, **no_restarts
    )
    assert status == 1
    assert "Caused by: java.io.IOException: injected sink failure" in err  # the trace
    last = err.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(
        r"error: the job failed: IOException: injected sink failure: sink 'payments-books' "
        r"subtask \d after making \d+ rows of a checkpoint durable \(.*\), before it "
        r"completed\. To go on, run the same command again \(it goes on where the database "
        r"says\)(, or resume from the newest retained checkpoint: --from-checkpoint \S+)?\.",
        last,
    ), last
    assert re.search(rf"^job {JOB_ID} failed after \d+ s: committed ", out, re.MULTILINE), out
    assert not [line for line in out.splitlines() if line.startswith("restart")], out
