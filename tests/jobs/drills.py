"""Fault drills for any job built from the kit, as its tests run them
(tests/jobs/test_orders_job.py, and the tests `python -m jobs.new NAME` writes). A job module
gives what the kit's jobs have: ``JOB`` (its `DeclaredJob`), ``FILES_UID``,
``prepare_database(config)`` and ``build_pipeline(env, lines, sink, config)``.

* `kill_9_mid_stream`: the job's command watching a directory that files arrive in, its sink
  paused right after a checkpoint's rows became durable, and the whole job killed there (the
  test then runs the same command again: it must apply the rest and nothing twice);
* `run_with_a_sink_failure`: the job in this process's mini cluster through one failure of its
  sink at the same seam, then a restore from the last checkpoint;
* `NaiveTables` (`tests.harness.naive_sink`): the control's sink, the job's line tables
  written by plain INSERTs at least once, as a job without the kit's statements and positions
  would; `lines_written_twice` counts what its replays wrote twice.
"""

import os
import subprocess
from pathlib import Path
from types import ModuleType

from jobs.kit import line_sources
from jobs.kit.config import JobConfig
from jobs.kit.environment import create_environment
from localenv.paths import PROJECT_ROOT
from sinks.control_tables import dead_letter_counts
from tests.harness.faults import FailOnce
from tests.harness.naive_sink import NaiveTables
from tests.jobs.support import PASSWORD_ENV, SPARE_TASKMANAGERS, job_command
from tests.sinks.support import (
    job_environment,
    kill_job,
    replayed_rows,
    sink_fault,
    sink_fault_in_this_jvm,
    sink_fault_report,
    wait_for,
)

__all__ = [
    "FAILOVER_SETTINGS",
    "NaiveTables",
    "checkpoint_flags",
    "kill_9_mid_stream",
    "lines_written_twice",
    "run_with_a_sink_failure",
]

#: Flink settings of an in-process drill: a quick first restart, and the tests' two spare
#: TaskManagers (`tests.jobs.support.SPARE_TASKMANAGERS` says why).
FAILOVER_SETTINGS = {
    "restart-strategy.exponential-delay.initial-backoff": "500 ms",
    **SPARE_TASKMANAGERS,
}


def checkpoint_flags(directory: Path) -> tuple[str, ...]:
    """A drill command's checkpointing: often (every 300 ms), so that a short input spans
    several checkpoints, into `directory`."""
    return ("--checkpoint-interval", "300 ms", "--checkpoint-dir", str(directory))


def kill_9_mid_stream(
    module: str, job, db, input_dir: Path, incoming: Path, tmp_path: Path, *flags: str
) -> int:
    """`python -m <module> --watch 200 ms` on `input_dir`, moving the files of `incoming` in
    one at a time, each once the one before is committed (a non-empty checkpoint each); its
    sink pauses after the 3rd non-empty checkpoint's rows became durable, and the whole job
    (its process group) is killed there with SIGKILL. Then the rest of `incoming` is moved in.
    `job`: the module's `DeclaredJob`; `flags`: the command's own (checkpointing). Returns how
    many lines the killed run had applied."""
    committed = lambda: _lines_applied(job, db)  # noqa: E731
    pause = tmp_path / "pause"
    log_path = tmp_path / "killed-run.log"
    input_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            job_command(module, db, input_dir, *flags, "--watch", "200 ms"),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=job_environment(
                db, {PASSWORD_ENV: db.password, **sink_fault(pause, "pause", nth=3)}
            ),
        )
        try:
            for path in sorted(incoming.iterdir()):
                if sink_fault_report(pause) or process.poll() is not None:
                    break
                before = committed()
                os.replace(path, input_dir / path.name)
                wait_for(
                    lambda before=before: (
                        committed() > before
                        or sink_fault_report(pause)
                        or process.poll() is not None
                    ),
                    120,
                    f"{path.name} to be committed",
                )
            wait_for(
                lambda: sink_fault_report(pause) or process.poll() is not None,
                60,
                "the sink to pause after a durable checkpoint (more files in `incoming`?)",
            )
            assert process.poll() is None, log_path.read_text()[-3000:]
        finally:
            kill_job(process)
    for path in incoming.iterdir():
        os.replace(path, input_dir / path.name)
    return committed()


def _lines_applied(job, db) -> int:
    with db.connect() as conn:
        return job.lines_applied(conn)


def run_with_a_sink_failure(
    job_module: ModuleType, config: JobConfig, tmp_path: Path, make_sink, faulted_sink_id: str
) -> int:
    """The job in this process, its source slowed down so that it spans several checkpoints,
    through one failure of its sink (`make_sink(config)`) right after its 2nd non-empty
    checkpoint's rows became durable; returns how many rows the restore replays."""
    job_module.prepare_database(config)
    fault_dir = tmp_path / "sink-fault"
    # The environment is made in the block: it ships the fault-injection jar the settings name.
    with sink_fault_in_this_jvm(sink_fault(fault_dir, "fail", nth=2, sink_id=faulted_sink_id)):
        env = create_environment(config)
        lines = line_sources.file_lines(env, config, job_module.FILES_UID).map(
            FailOnce(None, throttle_every=4, throttle_ms=3), output_type=line_sources.LINE_TYPE
        )
        job_module.build_pipeline(env, lines, make_sink(config), config)
        env.execute(f"{job_module.JOB.name}-sink-failure")
    return replayed_rows(fault_dir)


def lines_written_twice(db, job, lines: int, sink_id: str) -> int:
    """What a control wrote beyond the `lines` of its input: lines in two of the job's line
    tables, or twice in one, and replays a key refused (the sink's dead letters)."""
    with db.connect() as conn:
        refused = dead_letter_counts(conn, "public", sink_id).get(sink_id, 0)
        return job.lines_applied(conn) + refused - lines
