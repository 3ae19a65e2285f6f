"""What a running job is doing, on the terminal: any job's progress, restarts and end.

    monitor = JobMonitor(committed=counts, policy=restart_policy(settings))
    result = watch(job_client, monitor)  # the job's result, or its failure raised

While the job runs, a thread asks Flink's REST API of the cluster that runs it (the address
comes from the job client, `localenv.job_control.rest_url`) and prints:

- a progress line: seconds since the start, records read (the sources' `numRecordsOut`), what
  the job's `committed()` says the database holds (label -> count, e.g. committed, rejected,
  duplicates), restarts so far, seconds since the last completed checkpoint, and the sources'
  backlog where they report one (`pendingRecords`: a Kafka source's lag). On a terminal every
  2 s, rewritten in place (``\\r``); otherwise a plain line every 10 s.
- every restart as it happens, on a line of its own, with the failure's root cause in one line
  and the restart strategy's attempt: ``restart 3/70 after IOException: ...``
  (`restart_policy`: exponential-delay counts to its attempts-before-reset-backoff);
- at the end, one line: how the job ended, its committed counts (asked again then), restarts.

`describe_error(error)` is a failed job's root cause in one line, for the job's last line.

Nothing here can break or slow the job: every request has a 2 s timeout and any error skips
that poll; the thread never touches the JVM (the REST address is read once, before it starts).
The counts of records read and restarts are Flink metrics, as fresh as the cluster's
`metrics.fetcher.update-interval` (the local mini cluster: 1 s, `localenv.flink`).
"""

import json
import os
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple, Optional, TextIO

from localenv.job_control import rest_url

__all__ = [
    "Cause",
    "JobMonitor",
    "RestartPolicy",
    "describe_error",
    "format_progress",
    "format_restart",
    "restart_policy",
    "root_cause",
    "watch",
]

POLL_SECONDS = 1.0  # how often the REST API is asked
TERMINAL_INTERVAL = 2.0  # a progress line on a terminal, rewritten in place
PLAIN_INTERVAL = 10.0  # a progress line in a log
REQUEST_TIMEOUT = 2.0
MAX_CAUSE_CHARS = 200
# Job states in which a new failure is the job's end, not a restart.
ENDING_STATES = {"FAILING", "FAILED", "CANCELLING", "CANCELED"}

Committed = Callable[[], Mapping[str, object]]


# ---------------------------------------------------------------------------------------------
# A failure's root cause in one line
# ---------------------------------------------------------------------------------------------


class Cause(NamedTuple):
    name: str  # the exception class's simple name
    message: str  # the first line of its message, at most MAX_CAUSE_CHARS

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


_JAVA_EXCEPTION = re.compile(r"([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+)(?:: ?(.*))?")
_PYTHON_EXCEPTION = re.compile(r"([A-Za-z_][\w.]*): ?(.*)")
_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more)")


def shorten(text: str, limit: int = MAX_CAUSE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def root_cause(trace: str) -> Optional[Cause]:
    """The innermost cause of a Java stack trace as text (the last top-level ``Caused by:``, or
    the trace's first exception line if it has none): its class's simple name and the first
    line of its message. A Python error inside a PyFlink operator reaches Java as a message
    holding the Python traceback: its cause is then the traceback's last exception line.
    None if `trace` holds no exception line."""
    lines = trace.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Caused by: ")]
    if starts:
        first, head = starts[-1], lines[starts[-1]][len("Caused by: ") :]
    else:
        found = next(
            (
                (i, line.lstrip(": "))
                for i, line in enumerate(lines)
                if _JAVA_EXCEPTION.fullmatch(line.lstrip(": "))
            ),
            None,
        )
        if found is None:
            return None
        first, head = found
    matched = _JAVA_EXCEPTION.fullmatch(head)
    if not matched:
        return None
    name, message = matched.group(1), matched.group(2) or ""
    # The message goes on until the first stack frame.
    body = [message]
    for line in lines[first + 1 :]:
        if _FRAME.match(line) or line.startswith(("Caused by: ", "\tSuppressed: ")):
            break
        body.append(line)
    python = python_cause(body)
    if python:
        return python
    return Cause(name.rsplit(".", 1)[-1], shorten(message))


def python_cause(lines: list[str]) -> Optional[Cause]:
    """The last exception of a Python traceback within `lines`, if they hold one."""
    start = next((i for i, line in enumerate(lines) if "Traceback (most recent call" in line), None)
    if start is None:
        return None
    last = None
    for line in lines[start + 1 :]:
        if line[:1].isspace() or not line or line.startswith("Traceback"):
            continue
        matched = _PYTHON_EXCEPTION.fullmatch(line)
        if matched and not line.startswith(("During handling", "The above exception")):
            last = matched
    if last is None:
        return None
    return Cause(last.group(1).rsplit(".", 1)[-1], shorten(last.group(2)))


def describe_error(error: BaseException) -> str:
    """`error`'s root cause in one line: from the Java stack trace its text carries (a failed
    job's error, raised through py4j), else the Python exception's own name and first line."""
    try:
        text = str(error)
    except Exception:  # a py4j error asks the JVM for its text, which may be gone
        text = ""
    cause = root_cause(text) if ("\tat " in text or "Caused by: " in text) else None
    if cause is None:
        first = text.strip().splitlines()[0] if text.strip() else ""
        cause = Cause(type(error).__name__, shorten(first))
    return str(cause)


# ---------------------------------------------------------------------------------------------
# Restarts
# ---------------------------------------------------------------------------------------------


class RestartPolicy(NamedTuple):
    """What the job's restart strategy allows: `limit` attempts (None: not counted here, only
    exponential-delay's attempts-before-reset-backoff is), counted again from 1 after
    `reset_after` seconds without a failure (None: never)."""

    limit: Optional[int] = None
    reset_after: Optional[float] = None


NO_LIMIT = RestartPolicy()

DURATION_UNITS = {
    "ms": 0.001,
    "milli": 0.001,
    "millis": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "m": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}


def duration_seconds(text: str) -> Optional[float]:
    """A Flink duration ("10 min", "500 ms", "2s"; a bare number is milliseconds) in
    seconds, or None if it is none of those."""
    matched = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if not matched or matched.group(2) not in {"", *DURATION_UNITS}:
        return None
    return float(matched.group(1)) * DURATION_UNITS.get(matched.group(2), 0.001)


def restart_policy(settings: Mapping[str, str]) -> RestartPolicy:
    """The restart strategy of a job's effective Flink settings (e.g. flink-conf/config.yaml's
    job defaults and the job's flags)."""
    kind = settings.get("restart-strategy.type", "").strip().lower().replace("_", "-")
    if kind not in ("exponential-delay", "exponentialdelay"):
        return NO_LIMIT
    prefix = "restart-strategy.exponential-delay."
    attempts = settings.get(prefix + "attempts-before-reset-backoff", "").strip()
    reset = settings.get(prefix + "reset-backoff-threshold", "")
    return RestartPolicy(
        int(attempts) if attempts.isdigit() else None, duration_seconds(reset) if reset else None
    )


def format_restart(attempt: int, limit: Optional[int], cause: Optional[str]) -> str:
    counted = f"{attempt}/{limit}" if limit else str(attempt)
    return f"restart {counted} after {cause}" if cause else f"restart {counted}"


class RestartLog:
    """The failures of the job's exception history (`/jobs/<id>/exceptions`), turned into one
    line per restart, each once. A failure seen while the job is failing or cancelled ends it:
    no restart."""

    def __init__(self, policy: RestartPolicy = NO_LIMIT):
        self.policy = policy
        self.restarts = 0  # every restart of this run
        self.attempt = 0  # the restart strategy's count (reset after policy.reset_after)
        self.seen: set[tuple] = set()
        self.last_failure_ms: Optional[int] = None
        self.final: Optional[str] = None  # the failure that ended the job, if seen

    def update(self, history: Mapping[str, Any], job_state: Optional[str]) -> list[str]:
        """The restart lines for the failures of `history` not seen before."""
        entries = history.get("exceptionHistory", {}).get("entries", []) or []
        new = []
        for entry in entries:
            key = (entry.get("timestamp"), entry.get("exceptionName"), entry.get("taskName"))
            if key not in self.seen:
                self.seen.add(key)
                new.append(entry)
        new.sort(key=lambda entry: entry.get("timestamp") or 0)
        lines = []
        for index, entry in enumerate(new):
            cause = entry_cause(entry)
            if job_state in ENDING_STATES and index == len(new) - 1:
                self.final = cause
                continue
            timestamp = entry.get("timestamp") or 0
            reset = self.policy.reset_after
            if (
                reset is not None
                and self.last_failure_ms is not None
                and timestamp - self.last_failure_ms >= reset * 1000
            ):
                self.attempt = 0
            self.last_failure_ms = timestamp
            self.restarts += 1
            self.attempt += 1
            lines.append(format_restart(self.attempt, self.policy.limit, cause))
        return lines


def entry_cause(entry: Mapping[str, Any]) -> Optional[str]:
    cause = root_cause(entry.get("stacktrace") or "")
    if cause is None and entry.get("exceptionName"):
        cause = Cause(str(entry["exceptionName"]).rsplit(".", 1)[-1], "")
    return str(cause) if cause else None


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------


class Snapshot(NamedTuple):
    """What a progress line says; None: not known (yet)."""

    elapsed: float
    read: Optional[int] = None
    committed: Optional[Mapping[str, object]] = None
    restarts: Optional[int] = None
    checkpoint_age: Optional[float] = None
    backlog: Optional[int] = None


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def progress_parts(snapshot: Snapshot) -> list[str]:
    parts = []
    if snapshot.read is not None:
        parts.append(f"read {snapshot.read:,}")
    parts.extend(f"{label} {_count(value)}" for label, value in (snapshot.committed or {}).items())
    if snapshot.restarts is not None:
        parts.append(f"restarts {snapshot.restarts}")
    if snapshot.checkpoint_age is not None:
        parts.append(f"last checkpoint {snapshot.checkpoint_age:.0f} s ago")
    if snapshot.backlog is not None:
        parts.append(f"lag {snapshot.backlog:,}")
    return parts


def format_progress(snapshot: Snapshot, terminal: bool = False) -> str:
    """A progress line: ``progress 12 s: read 20,119, committed 18,000, ...`` for a log;
    ``12 s  read 20,119  committed 18,000  ...`` on a terminal (without the ``\\r``)."""
    parts = progress_parts(snapshot)
    if terminal:
        return "  ".join([f"{snapshot.elapsed:5.0f} s", *parts])
    return f"progress {snapshot.elapsed:.0f} s: " + (", ".join(parts) or "running")


def format_end(outcome: str, snapshot: Snapshot, job_id: Optional[str] = None) -> str:
    """The last line: ``job <id> finished after 12 s: committed 20,119, ..., restarts 1``. Not
    the records read: the last poll's count may be short of the end."""
    parts = progress_parts(snapshot._replace(read=None, checkpoint_age=None, backlog=None))
    job = f"job {job_id} " if job_id else ""
    ended = f"{job}{outcome} after {snapshot.elapsed:.0f} s"
    return ended + (": " + ", ".join(parts) if parts else "")


def source_metric_ids(available: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of a source vertex's metric ids (`/jobs/<id>/vertices/<vid>/subtasks/metrics`): the
    source operator's records out (``Source__<name>.numRecordsOut``), and its backlog
    (``...pendingRecords``, which e.g. the Kafka source reports)."""
    ids = list(available)
    read = [i for i in ids if re.fullmatch(r"Source__[^.]*\.numRecordsOut", i)]
    backlog = [i for i in ids if i == "pendingRecords" or i.endswith(".pendingRecords")]
    return read, backlog


def checkpoint_age(checkpoints: Mapping[str, Any], now_ms: float) -> Optional[float]:
    """Seconds since the newest completed checkpoint (`/jobs/<id>/checkpoints`), or None."""
    completed = (checkpoints.get("latest") or {}).get("completed") or {}
    acknowledged = completed.get("latest_ack_timestamp")
    if not acknowledged or acknowledged <= 0:
        return None
    return max(0.0, (now_ms - acknowledged) / 1000.0)


def rest_fetcher(base_url: str) -> Callable[[str], Any]:
    """GET `base_url` + path as JSON, 2 s at most, past any HTTP proxy (the cluster is ours)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch(path: str) -> Any:
        with opener.open(base_url + path, timeout=REQUEST_TIMEOUT) as response:
            return json.loads(response.read())

    return fetch


class JobMonitor:
    """Prints a job's progress, restarts and end (see the module's docstring).

    committed: the job's counts from its database (label -> int or text), asked once per
    progress line and at the end; an error leaves them out of that line. policy: the job's
    restart strategy (`restart_policy`). interval: seconds between progress lines (default 2
    on a terminal, 10 otherwise). announce: print the job id and REST address at the start."""

    def __init__(
        self,
        committed: Optional[Committed] = None,
        policy: RestartPolicy = NO_LIMIT,
        interval: Optional[float] = None,
        out: Optional[TextIO] = None,
        announce: bool = False,
        fetch: Optional[Callable[[str], Any]] = None,
    ):
        self.committed = committed
        self.out = out or sys.stdout
        try:
            self.terminal = bool(self.out.isatty())
        except Exception:
            self.terminal = False
        self.interval = interval or (TERMINAL_INTERVAL if self.terminal else PLAIN_INTERVAL)
        self.announce = announce
        self.fetch = fetch
        self.restarts = RestartLog(policy)
        self.job_id: Optional[str] = None
        self.started = time.monotonic()
        self.read: Optional[int] = None
        self.backlog: Optional[int] = None
        self.checkpoint_age: Optional[float] = None
        self.metric_restarts = 0
        self.metric_ids: dict[str, tuple[list[str], list[str]]] = {}
        self.metrics_listed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._shown = 0  # length of the progress line on the terminal (0: none)
        self._answered = False  # whether the REST API ever answered
        self._finished = False

    # -- the caller's side

    def start(self, job_client, background: bool = True) -> "JobMonitor":
        """Start watching `job_client`'s job (a PyFlink JobClient): a thread polls and prints
        (not with `background=False`: then the caller calls `poll` and `show_progress`)."""
        self.started = time.monotonic()
        self.job_id = str(job_client.get_job_id())
        if self.fetch is None:
            base = rest_url(job_client)
            self.fetch = rest_fetcher(base) if base else None
            if self.announce:
                where = f", Flink's REST API at {base}" if base else ""
                self.say(f"job {self.job_id} running{where}")
        if background:
            self._thread = threading.Thread(target=self._run, name="job-progress", daemon=True)
            self._thread.start()
        return self

    def say(self, line: str) -> None:
        """Print `line` on a line of its own (the progress line, if shown, is replaced)."""
        with self._lock:
            self._write_line(line)

    def finish(self, outcome: str) -> None:
        """Stop watching and print the last line: `outcome` (finished, failed, ...), the
        committed counts as the database holds them now, and the restarts seen."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * REQUEST_TIMEOUT + 1)
        with self._lock:
            if self._finished:
                return
            self._finished = True
        snapshot = self.snapshot()
        with self._lock:
            self._write_line(format_end(outcome, snapshot, self.job_id))

    def snapshot(self) -> Snapshot:
        committed = None
        if self.committed is not None:
            try:
                committed = self.committed()
            except Exception:
                committed = None
        return Snapshot(
            elapsed=time.monotonic() - self.started,
            read=self.read,
            committed=committed,
            restarts=max(self.restarts.restarts, self.metric_restarts) if self._answered else None,
            checkpoint_age=self.checkpoint_age,
            backlog=self.backlog,
        )

    # -- the thread's side

    def _run(self) -> None:
        next_line = self.started + self.interval
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.poll()
            except Exception:
                pass  # the next poll tries again
            if time.monotonic() >= next_line and not self._stop.is_set():
                next_line = max(next_line + self.interval, time.monotonic() + self.interval / 2)
                try:
                    self.show_progress()
                except Exception:
                    pass

    def poll(self) -> None:
        """Ask the REST API once: the job's failures (each new restart printed at once), its
        state, restarts, newest checkpoint and what its sources read."""
        if self.fetch is None or self.job_id is None:
            return
        job_path = f"/jobs/{self.job_id}"
        # The history before the state: a failure in it that ends the job is then seen with
        # the job's ending state, and never taken for a restart.
        history = self._get(job_path + "/exceptions?maxExceptions=20")
        job = self._get(job_path)
        if history is not None and job is not None:
            for line in self.restarts.update(history, job.get("state")):
                self.say(line)
        metrics = self._get(job_path + "/metrics?get=numRestarts")
        for metric in metrics or []:
            if metric.get("id") == "numRestarts":
                self.metric_restarts = int(float(metric.get("value", 0)))
        checkpoints = self._get(job_path + "/checkpoints")
        if checkpoints is not None:
            now_ms = (job or {}).get("now") or time.time() * 1000
            self.checkpoint_age = checkpoint_age(checkpoints, now_ms)
        if job is not None:
            self._poll_sources(job_path, job)

    def _poll_sources(self, job_path: str, job: Mapping[str, Any]) -> None:
        read = backlog = None
        for vertex in job.get("vertices", []):
            if not str(vertex.get("name", "")).startswith("Source:"):
                continue
            metrics_path = f"{job_path}/vertices/{vertex['id']}/subtasks/metrics"
            ids = self.metric_ids.get(vertex["id"])
            # Until they are registered, list them again: the records out at every poll, a
            # backlog (which a source may register late, or never) every 3 s.
            listed_at = self.metrics_listed.get(vertex["id"], 0.0)
            if not ids or not ids[0] or (not ids[1] and time.monotonic() - listed_at > 3):
                listed = self._get(metrics_path) or []
                ids = source_metric_ids(m.get("id", "") for m in listed)
                self.metric_ids[vertex["id"]] = ids
                self.metrics_listed[vertex["id"]] = time.monotonic()
            wanted = ids[0] + ids[1]
            if not wanted:
                continue
            values = self._get(f"{metrics_path}?get={','.join(wanted)}&agg=sum") or []
            for metric in values:
                total = int(metric.get("sum", 0))
                if metric.get("id") in ids[0]:
                    read = (read or 0) + total
                elif metric.get("id") in ids[1]:
                    backlog = (backlog or 0) + total
        if read is not None:
            self.read = read
        self.backlog = backlog

    def _get(self, path: str) -> Any:
        if self._stop.is_set() or self.fetch is None:
            return None
        try:
            answer = self.fetch(path)
        except Exception:
            return None
        self._answered = True
        return answer

    def show_progress(self) -> None:
        """Print a progress line (on a terminal: rewrite it) with what the last poll saw."""
        snapshot = self.snapshot()
        with self._lock:
            if self._finished:
                return
            if self.terminal:
                line = format_progress(snapshot, terminal=True)
                width = _terminal_width(self.out)
                line = line[: width - 1] if width else line
                self.out.write("\r" + line.ljust(self._shown))
                self._shown = len(line)
            else:
                self.out.write(format_progress(snapshot) + "\n")
            self.out.flush()

    # -- output (under self._lock)

    def _write_line(self, line: str) -> None:
        if self.terminal and self._shown:
            self.out.write("\r" + line.ljust(self._shown) + "\n")
            self._shown = 0
        else:
            self.out.write(line + "\n")
        self.out.flush()


def _terminal_width(out: TextIO) -> Optional[int]:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except Exception:
        return None


def watch(job_client, monitor: JobMonitor):
    """Wait for `job_client`'s job to end while `monitor` prints what it does; returns the
    job's execution result, or raises its failure, the monitor's last line printed first."""
    result = job_client.get_job_execution_result()
    monitor.start(job_client)
    try:
        while not result.done():
            time.sleep(0.25)
        value = result.result()  # raises if the job failed
    except KeyboardInterrupt:
        monitor.finish("interrupted")
        raise
    except BaseException:
        monitor.finish("failed")
        raise
    monitor.finish("finished")
    return value
