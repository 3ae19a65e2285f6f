"""A standalone Flink session cluster on loopback, and jobs submitted to it with `flink run`.

    python -m localenv.cluster start              # 1 JobManager + a TaskManager per workers line
    python -m localenv.cluster status             # TaskManagers, slots, jobs (from the REST API)
    python -m localenv.cluster submit --module tests.harness.sink_check -- \\
        --db-url jdbc:postgresql://127.0.0.1:5432/db --db-user app \\
        --password-file var/postgres/default/password --count 10000
    python -m localenv.cluster stop-job [JOB_ID] --savepoint-dir DIR  # stop a job with a savepoint
    python -m localenv.cluster kill-taskmanager [PID] / add-taskmanager / kill   # fault drills
    python -m localenv.cluster stop               # and make sure no process of it is left

Nothing is hidden between you and Flink: `start`/`stop` run pyflink's bundled
`bin/start-cluster.sh`/`bin/stop-cluster.sh` with FLINK_CONF_DIR=flink-conf, and `submit` runs
`bin/flink run -pym ...` and prints the command. What this module adds is the plumbing a shared
machine needs: logs, pid files and temp files under `var/flink-cluster/<name>/` instead of
site-packages and /tmp; ports that can be moved off 8081/6123 (`--rest-port`/`--rpc-port` or
TPC_FLINK_REST_PORT/TPC_FLINK_RPC_PORT, remembered until `stop`); waiting until all
TaskManagers registered; and a `stop` that checks nothing is left running.

Passwords never go on a command line or into the job graph: the sink reads its password where
it runs, on the TaskManagers, from a file (`--password-file`, e.g. `var/postgres/NAME/password`,
which this machine's TaskManagers can read) or from an environment variable the TaskManagers
were started with (`--password-env`); the `flink run` client reads it too, to check the database
before the job is built.
"""

import argparse
import json
import os
import re
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Union

from localenv.flink import FLINK_CONF_DIR, child_process_environment, read_config
from localenv.jars import hook_jars, kafka_connector_jars, sink_jar
from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.processes import alive, command_line, descendants, kill

# The packages setup.py installs; shipped to the Python workers with `-pyfs` as one zip.
PACKAGES = ("jobs", "transforms", "sinks", "localenv")
HOST = "127.0.0.1"  # only loopback may be used on our machines
DAEMON_CLASSES = (
    "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
    "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
)


class ClusterError(RuntimeError):
    """Something about the cluster is not as it should be; the message says what to do."""


# -- configuration ---------------------------------------------------------------------------
def pyflink_bin() -> Path:
    import pyflink  # cheap: pyflink/__init__ starts no JVM

    return Path(pyflink.__file__).resolve().parent / "bin"


def configured_ports(conf_dir: Path = FLINK_CONF_DIR) -> tuple[int, int]:
    config = read_config(conf_dir)
    return int(config.get("rest.port", 8081)), int(config.get("jobmanager.rpc.port", 6123))


def worker_count(conf_dir: Path = FLINK_CONF_DIR) -> int:
    lines = (conf_dir / "workers").read_text().splitlines()
    return sum(1 for line in lines if line.split("#", 1)[0].strip())


class Cluster:
    """One named cluster: its directories under var/flink-cluster/<name>/ and its ports."""

    def __init__(
        self,
        name: str = "default",
        rest_port: Optional[int] = None,
        rpc_port: Optional[int] = None,
        daemon_env: Optional[dict[str, str]] = None,
        settings: Optional[dict[str, str]] = None,
    ):
        """`daemon_env`: extra environment for the JobManager and TaskManagers started by this
        handle (e.g. a fault drill's settings). Never a secret: the daemons log it.
        `settings`: Flink settings over flink-conf/config.yaml's for this cluster's daemons
        (`start --set KEY=VALUE`), e.g. a drill's shorter `heartbeat.timeout`; kept with the
        cluster's ports, so TaskManagers added later get them too."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ClusterError(f"cluster name {name!r}: use letters, digits, '_', '.', '-'")
        self.name = name
        self.daemon_env = dict(daemon_env or {})
        self.home = sub_dir("flink-cluster", name)
        self.log_dir = sub_dir("flink-cluster", name, "log")
        self.pid_dir = sub_dir("flink-cluster", name, "pid")
        self.tmp_dir = sub_dir("flink-cluster", name, "tmp")
        self.state_file = self.home / "cluster.json"
        state = self._read_state()
        self.settings = dict(settings if settings is not None else state.get("settings", {}))
        default_rest, default_rpc = configured_ports()
        # flag > environment > what `start` recorded > flink-conf/config.yaml
        self.rest_port = int(
            rest_port
            or os.environ.get("TPC_FLINK_REST_PORT")
            or state.get("rest_port")
            or default_rest
        )
        self.rpc_port = int(
            rpc_port or os.environ.get("TPC_FLINK_RPC_PORT") or state.get("rpc_port") or default_rpc
        )

    @property
    def web_ui(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    def _read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    # -- environment of Flink's scripts ------------------------------------------------------
    def script_environment(
        self, tmp_dir: Optional[Path] = None, extra: Optional[dict[str, str]] = None
    ) -> dict[str, str]:
        """The environment for bin/*.sh and bin/flink: our config, logs, pids and temp dir.

        The daemons inherit it, and log it: nothing of it may be secret. The sink reads its
        password on the TaskManagers, so on this machine a job passes `--password-file`."""
        tmp_dir = tmp_dir or self.tmp_dir
        env = child_process_environment({**self.daemon_env, **(extra or {})})
        env.update(
            FLINK_CONF_DIR=str(FLINK_CONF_DIR),
            FLINK_LOG_DIR=str(self.log_dir),
            FLINK_PID_DIR=str(self.pid_dir),
            TMPDIR=str(tmp_dir),
        )
        # io.tmp.dirs defaults to java.io.tmpdir in a standalone cluster, so this one flag keeps
        # blobs, the file cache, Python worker dirs and flink-rpc-*.jar out of /tmp.
        jvm_args = re.sub(r"-Djava\.io\.tmpdir=\S+", "", env.get("JVM_ARGS", "")).split()
        env["JVM_ARGS"] = " ".join([*jvm_args, f"-Djava.io.tmpdir={tmp_dir}"])
        return env

    def _script(self, *command: Union[str, Path]) -> None:
        result = subprocess.run(
            [str(c) for c in command],
            env=self.script_environment(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            start_new_session=True,
        )  # the daemons outlive this process
        output = (result.stdout + result.stderr).strip()
        if output:
            print(output, flush=True)
        if result.returncode != 0:
            raise ClusterError(f"{Path(command[0]).name} failed ({result.returncode})")

    # -- REST ----------------------------------------------------------------------------------
    def rest(self, path: str, timeout: float = 5.0):
        with urllib.request.urlopen(self.web_ui + path, timeout=timeout) as response:
            return json.loads(response.read())

    def reachable(self) -> bool:
        try:
            self.rest("/overview", timeout=2.0)
            return True
        except (OSError, ValueError):
            return False

    # -- processes -----------------------------------------------------------------------------
    def processes(self) -> set[int]:
        """JobManager/TaskManager JVMs of this cluster: by pid file, and by a scan of /proc for
        Flink daemons whose log file is in this cluster's log dir (survives lost pid files)."""
        pids = {pid for pid in self._pid_file_pids() if self._is_ours(pid)}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name)):
                pids.add(int(entry.name))
        return pids

    def _pid_file_pids(self) -> set[int]:
        pids: set[int] = set()
        for pid_file in self.pid_dir.glob("*.pid"):
            pids.update(int(p) for p in pid_file.read_text().split() if p.isdigit())
        return pids

    def _is_ours(self, pid: int) -> bool:
        cmdline = command_line(pid)
        return (
            any(c in cmdline for c in DAEMON_CLASSES) and f"-Dlog.file={self.log_dir}/" in cmdline
        )

    # -- commands --------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        running = self.processes()
        if running:
            if self.reachable():
                print(f"cluster '{self.name}' is already running; web UI: {self.web_ui}")
                return
            raise ClusterError(
                f"processes of cluster '{self.name}' are still running (pids "
                f"{sorted(running)}) but {self.web_ui} does not answer; run "
                f"`python -m localenv.cluster stop` first"
            )
        for what, port, flag in (
            ("REST/web UI", self.rest_port, "--rest-port"),
            ("JobManager RPC", self.rpc_port, "--rpc-port"),
        ):
            if not port_free(port):
                raise ClusterError(
                    f"{HOST}:{port} ({what} port) is in use, by another Flink cluster or mini "
                    f"cluster perhaps; choose another with `start {flag} PORT` (or "
                    f"TPC_FLINK_{'REST' if flag == '--rest-port' else 'RPC'}_PORT)"
                )
        workers = worker_count()
        bin_dir = pyflink_bin()
        if (self.rest_port, self.rpc_port) == configured_ports() and not self.settings:
            self._script(bin_dir / "start-cluster.sh")
        else:
            # start-cluster.sh takes no arguments; for an all-loopback `workers` file it runs
            # exactly these, so run them ourselves with the ports as dynamic properties.
            print(f"Starting cluster (REST port {self.rest_port}, RPC port {self.rpc_port}).")
            self._script(
                bin_dir / "jobmanager.sh",
                "start",
                "-D",
                f"rest.port={self.rest_port}",
                *self._dynamic_properties(),
            )
            for _ in range(workers):
                self._script(bin_dir / "taskmanager.sh", "start", *self._dynamic_properties())
        self.state_file.write_text(
            json.dumps(
                {
                    "rest_port": self.rest_port,
                    "rpc_port": self.rpc_port,
                    "workers": workers,
                    "settings": self.settings,
                }
            )
        )
        try:
            self._wait_for_taskmanagers(workers, timeout)
            if not any(DAEMON_CLASSES[0] in command_line(pid) for pid in self.processes()):
                # Its REST port answered, but not for this cluster: another one holds the ports.
                raise ClusterError(
                    f"the JobManager of cluster '{self.name}' exited during start-up (its "
                    f"ports {self.rest_port}/{self.rpc_port} taken meanwhile?); see {self.log_dir}"
                )
        except BaseException:
            print(self.log_tails(), file=sys.stderr)
            self.stop()
            raise
        print(
            f"Flink cluster '{self.name}' is up: {workers} TaskManagers registered.\n"
            f"Web UI: {self.web_ui}\nLogs:   {self.log_dir}",
            flush=True,
        )

    def _dynamic_properties(self) -> list[str]:
        """`-D KEY=VALUE` for the daemon scripts: the RPC port, then this cluster's settings."""
        pairs = {"jobmanager.rpc.port": str(self.rpc_port), **self.settings}
        return [arg for key, value in pairs.items() for arg in ("-D", f"{key}={value}")]

    def _wait_for_taskmanagers(self, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        registered = 0
        while time.monotonic() < deadline:
            try:
                registered = len(self.rest("/taskmanagers", timeout=2.0)["taskmanagers"])
            except (OSError, ValueError, KeyError):
                registered = 0
            if registered >= expected:
                return
            if not self.processes():
                raise ClusterError("the cluster's JVMs exited during start-up (see logs above)")
            time.sleep(0.5)
        raise ClusterError(
            f"only {registered} of {expected} TaskManagers registered at "
            f"{self.web_ui} after {timeout:.0f} s"
        )

    def taskmanagers(self) -> set[int]:
        """Process ids of this cluster's TaskManager JVMs."""
        return {pid for pid in self.processes() if DAEMON_CLASSES[1] in command_line(pid)}

    def add_taskmanager(self, timeout: float = 120.0) -> None:
        """Start one more TaskManager (e.g. to replace a lost one) and wait until it
        registered with the JobManager."""
        known = {tm["id"] for tm in self.rest("/taskmanagers")["taskmanagers"]}
        self._script(pyflink_bin() / "taskmanager.sh", "start", *self._dynamic_properties())
        # A lost TaskManager stays registered until its heartbeats time out: wait for a new id.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ids = {tm["id"] for tm in self.rest("/taskmanagers", timeout=2.0)["taskmanagers"]}
            except (OSError, ValueError, KeyError):
                ids = known
            if ids - known:
                return
            time.sleep(0.5)
        raise ClusterError(f"the new TaskManager did not register within {timeout:.0f} s")

    def kill_taskmanager(self, pid: Optional[int] = None) -> int:
        """`kill -9` one TaskManager (the newest, unless `pid`) with its Python workers at the
        same instant, as a lost machine would go. Returns its pid."""
        running = self.taskmanagers()
        if not running:
            raise ClusterError(f"cluster '{self.name}' has no TaskManager running")
        victim = pid if pid is not None else max(running)
        if victim not in running:
            raise ClusterError(f"{victim} is no TaskManager of cluster '{self.name}'")
        kill({victim} | descendants({victim}))
        self._forget_pid(victim)
        return victim

    def _forget_pid(self, pid: int) -> None:
        """Drop a dead daemon's pid from the pid files. stop-cluster.sh stops one pid per
        `workers` line, the newest first: a dead one listed there would use up a turn, leaving
        a live TaskManager to `stop`'s timeout and kill -9."""
        for pid_file in self.pid_dir.glob("*.pid"):
            lines = pid_file.read_text().splitlines()
            kept = [line for line in lines if line.strip() != str(pid)]
            if kept != lines:
                pid_file.write_text("".join(f"{line}\n" for line in kept))

    def kill_all(self, timeout: float = 30.0) -> None:
        """`kill -9` every process of the cluster at once (JobManager, TaskManagers, Python
        workers): a power cut. `start` brings it back empty; jobs resume from retained
        checkpoints only if somebody resubmits them."""
        daemons = self.processes()
        doomed = daemons | descendants(daemons)
        kill(doomed)
        deadline = time.monotonic() + timeout
        while alive(doomed) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()
        self.state_file.unlink(missing_ok=True)
        for port in (self.rest_port, self.rpc_port):
            wait_port_free(port, 10.0)

    def stop(self, timeout: float = 30.0) -> None:
        daemons = self.processes()
        doomed = daemons | descendants(daemons)  # incl. Python workers the TaskManagers forked
        if daemons:
            self._script(pyflink_bin() / "stop-cluster.sh")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(doomed):
            time.sleep(0.2)
        for pid in alive(doomed):  # stop-cluster.sh gives up on a daemon it could not stop
            print(f"killing leftover process {pid}: {command_line(pid)[:120]}", file=sys.stderr)
            kill([pid])
        leftovers = self.processes()
        for pid in leftovers:
            kill([pid])
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()
        self.state_file.unlink(missing_ok=True)
        # Only this cluster's processes use its temp dir (blobs, caches, ~25 MB of rpc jar each).
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        if daemons:
            busy = [p for p in (self.rest_port, self.rpc_port) if not wait_port_free(p, 10.0)]
            if busy:
                raise ClusterError(f"cluster stopped, but ports {busy} are still in use")
        print(
            f"Flink cluster '{self.name}' stopped"
            if daemons
            else f"no Flink cluster '{self.name}' was running",
            flush=True,
        )

    def status(self, show_all: bool = False) -> int:
        if not self.reachable():
            pids = self.processes()
            print(
                f"no Flink cluster answers at {self.web_ui}"
                + (f" (but its processes {sorted(pids)} are running)" if pids else "")
            )
            return 1
        overview = self.rest("/overview")
        print(
            f"Flink {overview['flink-version']} cluster '{self.name}' at {self.web_ui}: "
            f"{overview['taskmanagers']} TaskManagers, "
            f"{overview['slots-available']}/{overview['slots-total']} slots free"
        )
        jobs = self.rest("/jobs/overview")["jobs"]
        running = [j for j in jobs if j["state"] not in ("FINISHED", "FAILED", "CANCELED")]
        print(f"running jobs: {len(running)}")
        for job in sorted(jobs, key=lambda j: j["start-time"]):
            if show_all or job in running:
                print(
                    f"  {job['jid']}  {job['state']:<10} {job['duration'] / 1000:7.1f} s  "
                    f"{job['name']}"
                )
        return 0

    def submit(
        self,
        job_args: list[str],
        module: Optional[str] = None,
        file: Optional[str] = None,
        detached: bool = False,
        extra_jars: Iterable[str] = (),
    ) -> int:
        """Run a Python job with `flink run`; attached, the exit status is the job's."""
        if not self.reachable():
            raise ClusterError(
                f"no Flink cluster answers at {self.web_ui}; start it with "
                f"`python -m localenv.cluster start`"
            )
        with self._ship_dir() as ship:
            command = self.submit_command(job_args, module, file, detached, extra_jars, ship)
            print("$ " + " ".join(command), flush=True)
            # cwd = project root: `python -m` puts it first on the client's sys.path, so the
            # client imports the project itself (with its var/ dir and built jar), while the
            # workers import the shipped copy. The client's temp files go with `ship`.
            return subprocess.run(
                command, env=self.script_environment(tmp_dir=ship), cwd=PROJECT_ROOT
            ).returncode

    @contextmanager
    def _ship_dir(self):
        """A fresh directory for what one `flink run` ships (and its client's temp files);
        removed afterwards, when it has been uploaded to the blob server."""
        ship = Path(
            tempfile.mkdtemp(prefix="submit-", dir=sub_dir("flink-cluster", self.name, "ship"))
        )
        try:
            yield ship
        finally:
            shutil.rmtree(ship, ignore_errors=True)

    def submit_command(self, job_args, module, file, detached, extra_jars, ship: Path):
        packages = zip_packages(ship / "job-packages.zip", shipped_packages(module))
        # Hooks (fault injection) named to the daemons or to this client travel with the job:
        # a TaskManager told to inject faults finds them only in the job's jar.
        hooks = dict.fromkeys([*hook_jars(self.daemon_env), *hook_jars()])
        extra_jars = [*job_jars(job_args), *hooks, *extra_jars]
        # The sink jar already holds the JDBC driver; merging would drop its manifest.
        jar = (
            merge_jars(ship / "job-dependencies.jar", [sink_jar(), *map(Path, extra_jars)])
            if extra_jars
            else sink_jar()
        )
        site_packages = [p for p in site.getsitepackages() if Path(p).is_dir()]
        command = [
            str(pyflink_bin() / "flink"),
            "run",
            "-m",
            f"{HOST}:{self.rest_port}",
            # Flink 2.3 takes ONE jar for a Python job (a second -j is ignored, and
            # -Dpipeline.jars is overwritten), so extra jars travel merged into it.
            "-j",
            str(jar),
            "-pyfs",
            str(packages),
            "-pyexec",
            sys.executable,  # python.executable: the workers
            "-pyclientexec",
            sys.executable,  # python.client.executable: this client
            "-pypath",
            os.pathsep.join(site_packages),
        ]  # python.pythonpath (thread mode)
        if detached:
            command.append("-d")
        command += ["-pym", module] if module else ["-py", str(Path(file).resolve())]
        return command + ["--", *job_args]

    def running_jobs(self) -> list[dict]:
        return [
            job
            for job in self.rest("/jobs/overview")["jobs"]
            if job["state"] not in ("FINISHED", "FAILED", "CANCELED")
        ]

    def submit_detached(
        self,
        job_args: list[str],
        module: str,
        client_env: Optional[dict[str, str]] = None,
        timeout: float = 300.0,
    ) -> str:
        """`flink run -d`: submit and return the job id. `client_env` reaches the `flink run`
        client only (where the job reads its password), never the daemons."""
        with self._ship_dir() as ship:
            command = self.submit_command(job_args, module, None, True, (), ship)
            result = subprocess.run(
                command,
                env=self.script_environment(tmp_dir=ship, extra=client_env),
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        found = re.search(r"Job has been submitted with JobID ([0-9a-f]{32})", result.stdout)
        if result.returncode != 0 or not found:
            output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
            raise ClusterError(f"flink run failed ({result.returncode}):\n{output}")
        return found.group(1)

    def job_state(self, job_id: str) -> str:
        """RUNNING, RESTARTING, FINISHED, FAILED, CANCELED, ... as the dispatcher knows it now
        (REST /jobs/<id>/status). Not /jobs/<id>: that view is cached for web.refresh-interval,
        so right after a job ends it can still say RUNNING."""
        return str(self.rest(f"/jobs/{job_id}/status")["status"])

    def cancel_job(self, job_id: str, timeout: float = 60.0) -> None:
        """Cancel without a savepoint (retained checkpoints stay) and wait until it is over."""
        request = urllib.request.Request(f"{self.web_ui}/jobs/{job_id}?mode=cancel", method="PATCH")
        urllib.request.urlopen(request, timeout=10).close()
        deadline = time.monotonic() + timeout
        while self.job_state(job_id) not in ("CANCELED", "FAILED", "FINISHED"):
            if time.monotonic() > deadline:
                raise ClusterError(f"job {job_id} still not cancelled after {timeout:.0f} s")
            time.sleep(0.2)

    def stop_job(self, job_id: Optional[str], savepoint_dir: str, timeout: float = 600.0) -> str:
        """`flink stop --savepointPath DIR JOB_ID`: a savepoint (canonical format), the sinks
        commit it, the job finishes. Without a job id, the one running job. Returns the path."""
        if not self.reachable():
            raise ClusterError(f"no Flink cluster answers at {self.web_ui}")
        if not job_id:
            running = self.running_jobs()
            if len(running) != 1:
                raise ClusterError(
                    f"{len(running)} jobs are running; name the one to stop (see "
                    f"`python -m localenv.cluster status`)"
                )
            job_id = running[0]["jid"]
        target = Path(savepoint_dir).resolve()
        target.mkdir(parents=True, exist_ok=True)
        command = [
            str(pyflink_bin() / "flink"),
            "stop",
            "-m",
            f"{HOST}:{self.rest_port}",
            "--savepointPath",
            target.as_uri(),
            "--type",
            "canonical",
            job_id,
        ]
        print("$ " + " ".join(command), flush=True)
        result = subprocess.run(
            command,
            env=self.script_environment(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        found = re.search(r"Savepoint completed\. Path: (\S+)", output)
        if result.returncode != 0 or not found:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise ClusterError(f"could not stop job {job_id} with a savepoint:\n{tail}")
        path = found.group(1)
        path = path[len("file:") :] if path.startswith("file:") else path
        print(
            f"job {job_id} stopped with savepoint {path}\n"
            f"start the next version with: submit ... -- ... --from-savepoint {path}",
            flush=True,
        )
        return path

    def log_tails(self, lines: int = 20) -> str:
        parts = []
        for log in sorted(self.log_dir.glob("flink-*-*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


# -- shipping ------------------------------------------------------------------------------
def job_jars(job_args: Iterable[str]) -> list[Path]:
    """Jars a job needs besides the sink jar, from its arguments: a job reading Kafka
    (`--source kafka`) needs Flink's Kafka connector and the Kafka client."""
    args = list(job_args)
    reads_kafka = "--source=kafka" in args or any(
        a == "--source" and b == "kafka" for a, b in zip(args, args[1:])
    )
    if not reads_kafka:
        return []
    return kafka_connector_jars()


def shipped_packages(module: Optional[str] = None) -> list[str]:
    """PACKAGES, plus the package of a job module that lives in none of them (the sink's
    acceptance job, `tests.harness.sink_check`): the workers unpickle its functions by module."""
    packages = list(PACKAGES)
    package = (module or "").rpartition(".")[0]
    if package and package.split(".")[0] not in PACKAGES:
        packages.append(package)
    return packages


def zip_packages(target: Path, packages: Iterable[str] = PACKAGES) -> Path:
    """The project's Python packages as one zip for `-pyfs`: Flink extracts a .zip and puts it
    on the PYTHONPATH of client and workers. (A directory given to -pyfs is itself put on the
    PYTHONPATH, so `-pyfs jobs/` would make `payments`, not `jobs.payments`, importable.)
    A dotted package (`tests.harness`) is shipped whole with only the `__init__.py` of the
    packages above it."""
    files: set[Path] = set()
    for package in packages:
        parts = package.split(".")
        for depth in range(1, len(parts)):
            init = PROJECT_ROOT.joinpath(*parts[:depth], "__init__.py")
            if init.is_file():
                files.add(init)
        files.update(
            path
            for path in PROJECT_ROOT.joinpath(*parts).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        )
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.write(path, path.relative_to(PROJECT_ROOT).as_posix())
    return target


def merge_jars(target: Path, jars: Iterable[Path]) -> Path:
    """One jar holding the classes of several (first one wins on duplicates; service files are
    concatenated; signatures dropped, as a merged jar cannot keep them). Multi-release stays
    on when a jar had it: the JDBC driver inside the sink jar has Java 11 variants."""
    jars = [Path(jar).resolve() for jar in jars]
    seen: set[str] = set()
    services: dict[str, bytes] = {}
    manifest = "Manifest-Version: 1.0\r\n"
    if any(_multi_release(jar) for jar in jars):
        manifest += "Multi-Release: true\r\n"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("META-INF/MANIFEST.MF", manifest + "\r\n")
        seen.add("META-INF/MANIFEST.MF")
        for jar in jars:
            with zipfile.ZipFile(jar) as source:
                for info in source.infolist():
                    name = info.filename
                    if name.startswith("META-INF/services/") and not info.is_dir():
                        services[name] = services.get(name, b"") + source.read(info) + b"\n"
                    elif re.fullmatch(r"META-INF/[^/]+\.(SF|RSA|DSA|EC)", name) or name in seen:
                        continue
                    else:
                        seen.add(name)
                        out.writestr(info, source.read(info))
        for name, content in services.items():
            out.writestr(name, content)
    return target


def _multi_release(jar: Path) -> bool:
    with zipfile.ZipFile(jar) as archive:
        try:
            manifest = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
        except KeyError:
            return False
    return re.search(r"^Multi-Release:\s*true\s*$", manifest, re.M | re.I) is not None


# -- processes and ports ---------------------------------------------------------------------
def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            return True
        except OSError:
            return False


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not port_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# -- command line ----------------------------------------------------------------------------
def setting(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE, e.g. heartbeat.timeout=20s")
    return key.strip(), value.strip()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m localenv.cluster",
        description="A standalone Flink session cluster on 127.0.0.1 (flink-conf/), and jobs "
        "submitted to it with `flink run`.",
    )
    parser.add_argument(
        "--name",
        default=os.environ.get("TPC_FLINK_CLUSTER_NAME", "default"),
        help="cluster name: its files live in var/flink-cluster/NAME/",
    )
    parser.add_argument(
        "--rest-port",
        type=int,
        help="REST/web UI port (default: TPC_FLINK_REST_PORT, the port `start` "
        "used, else rest.port of flink-conf/config.yaml)",
    )
    parser.add_argument(
        "--rpc-port",
        type=int,
        help="JobManager RPC port (default: TPC_FLINK_RPC_PORT, the port "
        "`start` used, else jobmanager.rpc.port)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the cluster and wait for its TaskManagers")
    start.add_argument("--timeout", type=float, default=120.0)
    start.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=setting,
        help="a Flink setting over flink-conf/config.yaml's for this cluster's daemons "
        "(e.g. heartbeat.timeout=20s); repeatable",
    )
    commands.add_parser("stop", help="stop the cluster; kill what stop-cluster.sh leaves behind")
    status = commands.add_parser("status", help="TaskManagers, slots and running jobs")
    status.add_argument("--all", action="store_true", help="list finished jobs too")
    submit = commands.add_parser(
        "submit",
        help="run a Python job on the cluster with `flink run`",
        description="Everything after `--` goes to the job, e.g. "
        "`submit --module tests.harness.sink_check -- --db-url ... --count 10000`.",
    )
    what = submit.add_mutually_exclusive_group(required=True)
    what.add_argument("--module", help="job module, e.g. jobs.payments (flink run -pym)")
    what.add_argument("--file", help="job script (flink run -py)")
    submit.add_argument(
        "--detached",
        action="store_true",
        help="return once submitted (flink run -d) instead of when it ends",
    )
    submit.add_argument(
        "--jar",
        action="append",
        default=[],
        help="another jar the job needs (merged with the sink jar)",
    )
    submit.add_argument("job_args", nargs=argparse.REMAINDER)
    commands.add_parser("add-taskmanager", help="start one more TaskManager (e.g. a replacement)")
    kill_tm = commands.add_parser(
        "kill-taskmanager",
        help="kill -9 a TaskManager and its Python workers (a drill: a lost machine)",
    )
    kill_tm.add_argument("pid", nargs="?", type=int, help="default: the newest TaskManager")
    commands.add_parser(
        "kill",
        help="kill -9 every process of the cluster (a drill: a power cut; `start` brings it "
        "back, jobs resume from their retained checkpoints only when resubmitted)",
    )
    stop_job = commands.add_parser(
        "stop-job",
        help="stop a job with a savepoint (flink stop), to upgrade it",
        description="Takes a savepoint, lets the sinks commit it, and finishes the job; prints "
        "the savepoint's path for the next version's --from-savepoint.",
    )
    stop_job.add_argument("job_id", nargs="?", help="default: the one running job")
    stop_job.add_argument("--savepoint-dir", required=True, metavar="DIR")
    stop_job.add_argument("--timeout", type=float, default=600.0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = dict(args.set) if args.command == "start" and args.set else None
        cluster = Cluster(args.name, args.rest_port, args.rpc_port, settings=settings)
        if args.command == "start":
            cluster.start(args.timeout)
        elif args.command == "stop":
            cluster.stop()
        elif args.command == "status":
            return cluster.status(args.all)
        elif args.command == "add-taskmanager":
            cluster.add_taskmanager()
            print(f"{len(cluster.taskmanagers())} TaskManagers running")
        elif args.command == "kill-taskmanager":
            print(f"killed TaskManager {cluster.kill_taskmanager(args.pid)} with kill -9")
        elif args.command == "kill":
            cluster.kill_all()
            print(f"killed every process of cluster '{cluster.name}' with kill -9")
        elif args.command == "stop-job":
            cluster.stop_job(args.job_id, args.savepoint_dir, args.timeout)
        elif args.command == "submit":
            job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
            return cluster.submit(job_args, args.module, args.file, args.detached, args.jar)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
