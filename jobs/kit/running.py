"""Running a job from its command: the checks before anything is built, where the database says
the sources stand, the run itself (watched, or stopped with a savepoint on SIGTERM/Ctrl-C), the
command's exit status and last line.

A job's `submit` reads top-down with these (see jobs/payments.py):

    check_input(config)
    start = prepare_database(config, ensure_schema, positions_sink_id, exactly_once_sink_ids)
    if nothing_new(config, start): return NothingNew(start.describe())
    config = with_resume_offsets(config, start)
    env = create_environment(config)
    ...the job's graph...
    return execute(env, name, config, committed, wait)
"""

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, TypeVar

from jobs.kit.config import JobConfig
from jobs.kit.environment import flink_settings
from jobs.kit.refusals import explain_refusal, failure_verdict, resume_hint
from jobs.progress import Committed, JobMonitor, restart_policy, watch
from localenv.job_control import runs_detached, stop_with_savepoint
from sinks.positions import StartPositions
from transforms.inputs import UnreadableInput, input_faults

__all__ = [
    "NothingNew",
    "Stopped",
    "check_input",
    "check_password",
    "execute",
    "exit_with",
    "job_monitor",
    "nothing_new",
    "prepare_database",
    "run_command",
    "run_until_stopped",
    "submit_job",
    "with_resume_offsets",
]

Config = TypeVar("Config", bound=JobConfig)


def check_input(config: JobConfig) -> None:
    """Before the database or Flink: a files source is a directory whose every file can be
    read (`UnreadableInput` names those that cannot), and a checkpoint to start from exists."""
    if config.source == "files" and not os.path.isdir(config.input or ""):
        raise SystemExit(f"--input {config.input} is not a directory")
    if config.source == "files":
        faults = input_faults(config.input or "")
        if faults:
            raise UnreadableInput(faults)
    if config.from_checkpoint and not os.path.exists(config.from_checkpoint):
        raise SystemExit(
            f"--from-savepoint/--from-checkpoint {config.from_checkpoint}: "
            "no such checkpoint or savepoint"
        )
    check_password(config)


def check_password(config: JobConfig) -> None:
    """The password's source works here, in the client (which checks the database before the
    job is built); the sink reads it again where it runs, so a cluster's TaskManagers need the
    same variable or file."""
    from sinks.database import read_password

    try:
        password = read_password(config.password_env, config.password_file)
    except ValueError as error:
        raise SystemExit(f"--password-file: {error}") from None
    if password is None:
        raise SystemExit(
            f"environment variable {config.password_env} (the database password, "
            "--password-env) is not set: set it, or give --password-file"
        )


def prepare_database(
    config: JobConfig,
    ensure_schema: Callable[[Any], object],
    positions_sink_id: Optional[str],
    exactly_once_sink_ids: Sequence[str],
) -> Optional[StartPositions]:
    """The job's tables (`ensure_schema(conn)`), then, before anything is built or read: with
    a `positions_sink_id` (the sink that commits source positions with its rows), where the
    database says the sources stand (`sinks.positions`; a file changed since it was applied is
    refused); without one, a start that restores no checkpoint is refused if any of
    `exactly_once_sink_ids` already applied input (`sinks.fresh_start`)."""
    from sinks.database import connect
    from sinks.fresh_start import refuse_fresh_start
    from sinks.positions import ensure_positions_table, start_positions
    from transforms.inputs import input_files

    with connect(
        config.db_url, config.db_user, config.password_env, config.password_file, connect_timeout=10
    ) as conn:
        ensure_schema(conn)
        if positions_sink_id is not None:
            ensure_positions_table(conn)
            conn.commit()
            files = []
            if config.source == "files" and config.input:
                files = [os.path.abspath(path) for path in input_files(config.input)]
            return start_positions(conn, positions_sink_id, files)
        if not config.from_checkpoint:
            refuse_fresh_start(conn, exactly_once_sink_ids, lambda: resume_hint(config))
    return None


class NothingNew(NamedTuple):
    """The run found every line of its input applied already, and started no job."""

    message: str

    def get_job_id(self):
        return None


def nothing_new(config: JobConfig, start: Optional[StartPositions]) -> bool:
    """Every line of the input is applied already, and the run neither watches for more nor
    restores a checkpoint: there is no job to start."""
    return start is not None and start.nothing_new and not (config.watch or config.from_checkpoint)


def with_resume_offsets(config: Config, start: Optional[StartPositions]) -> Config:
    """A Kafka source without a checkpoint reads each partition on from where the database says
    its lines are applied."""
    if start is None or config.source != "kafka":
        return config
    return dataclasses.replace(config, resume_offsets=start.next_offsets(config.topic or ""))


def job_monitor(config: JobConfig, committed: Optional[Committed]) -> JobMonitor:
    """The monitor a run waits with: its `committed` counts, and the restart strategy of its
    effective settings (restart lines say ``restart 3/70``)."""
    return JobMonitor(
        committed=committed,
        policy=restart_policy(flink_settings(config)),
        interval=config.progress_interval,
        announce=True,
    )


def execute(
    env,
    name: str,
    config: JobConfig,
    committed: Callable[[], Optional[Committed]],
    wait: bool = True,
):
    """Run the job built in `env`: to the end when `wait`, else return its JobClient.

    Waiting with ``config.savepoint_dir`` set, SIGTERM and SIGINT (Ctrl-C) stop the job with a
    savepoint there instead of killing it; the result is then a `Stopped`. `committed()` makes
    the counts the progress lines show (e.g. a `CommittedLines`): they start from what the
    database holds before the job is submitted."""
    if not wait:
        return env.execute_async(name)
    if runs_detached(env) and not config.savepoint_dir:
        return env.execute(name)  # `flink run -d`: returns once the job is submitted
    # What the job does, on the terminal while it runs (jobs/progress.py).
    monitor = job_monitor(config, committed())
    try:
        client = env.execute_async(name)
        if not config.savepoint_dir:
            return watch(client, monitor)
        return run_until_stopped(client, config.savepoint_dir, monitor)
    finally:
        close = getattr(monitor.committed, "close", None)
        if close:
            close()


class Stopped(NamedTuple):
    job_id: str
    savepoint: Optional[str]  # None: the job ended by itself (bounded input)

    def get_job_id(self):
        return self.job_id


def run_until_stopped(
    job_client, savepoint_dir: str, monitor: Optional[JobMonitor] = None
) -> Stopped:
    """Wait for the job; on SIGTERM/SIGINT stop it with a savepoint and print the path. With a
    `monitor`, its progress lines meanwhile and its last line at the end."""
    import signal
    import threading

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    job_id = str(job_client.get_job_id())
    print(
        f"job {job_id} running; SIGTERM or Ctrl-C stops it with a savepoint in {savepoint_dir}",
        flush=True,
    )
    say = monitor.say if monitor else lambda line: print(line, flush=True)
    try:
        result = job_client.get_job_execution_result()
        if monitor:
            monitor.start(job_client)
        while not stop.wait(0.5):
            if result.done():
                try:
                    result.result()  # raises if the job failed
                except BaseException:
                    if monitor:
                        monitor.finish("failed")
                    raise
                if monitor:
                    monitor.finish("finished")
                return Stopped(job_id, None)
        say(f"stopping job {job_id} with a savepoint ...")
        try:
            path = stop_with_savepoint(job_client, savepoint_dir)
        except BaseException:
            if monitor:
                monitor.finish("failed to stop with a savepoint")
            raise
        if monitor:
            monitor.finish("stopped")
        print(
            f"job {job_id} stopped with savepoint {path}\n"
            f"start the next version with --from-savepoint {path}",
            flush=True,
        )
        return Stopped(job_id, path)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def submit_job(
    config: Config,
    prepare: Callable[[Config], Optional[StartPositions]],
    build: Callable[[Any, Config, Optional[StartPositions]], None],
    name: str,
    committed: Callable[[Config], Optional[Committed]],
    wait: bool = True,
):
    """A job's `submit` in the order above: `check_input`, `prepare(config)` (the job's
    `prepare_database`), `nothing_new`, `with_resume_offsets`, `create_environment`,
    `build(env, config, start)` (the job's graph), then `execute` with `committed(config)`."""
    from jobs.kit.environment import create_environment

    check_input(config)
    start = prepare(config)
    if start is not None and nothing_new(config, start):
        return NothingNew(start.describe())
    config = with_resume_offsets(config, start)
    env = create_environment(config)
    build(env, config, start)
    return execute(env, name, config, lambda: committed(config), wait)


def run_command(
    submit: Callable[[Config], Any], config: Config, stateful_uids: Sequence[str] = ()
) -> int:
    """`submit(config)` as a command: 0 when it ran (or found nothing new, said so); 1 when it
    was refused (why and what to do, `explain_refusal` with the job's `stateful_uids`) or
    failed (the whole trace, then the verdict as the last line)."""
    try:
        result = submit(config)
    except Exception as error:
        reason = explain_refusal(error, stateful_uids)
        if reason is None:
            # The whole trace for whoever digs, then the verdict as the last line.
            import traceback

            sys.stdout.flush()
            traceback.print_exception(type(error), error, error.__traceback__)
            print(f"error: {failure_verdict(config, error)}", file=sys.stderr, flush=True)
            return 1
        print(f"error: {reason}", file=sys.stderr)
        return 1
    if isinstance(result, NothingNew):
        print(result.message)
    # Otherwise the job's progress monitor said last how it ended (jobs/progress.py).
    return 0


def exit_with(status: int) -> None:
    """The end of a job's command: exit with `status`, without the interpreter's final garbage
    collection (py-spy showed 0.4 s of it after the job had returned)."""
    from localenv.flink import skip_final_garbage_collection

    skip_final_garbage_collection()
    sys.exit(status)
