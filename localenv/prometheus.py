"""A throwaway Prometheus with monitoring/prometheus.yml, and the PostgreSQL exporter beside it.

    with monitoring(db, scrape_interval="1s") as prometheus:   # both stopped on the way out
        prometheus.wait_for("sum(flink_jobmanager_job_numRestarts)", lambda v: v >= 1, 60)

Debian's binaries (`prometheus`, `prometheus-postgres-exporter`; `.ci/setup` installs them),
each on a free port of 127.0.0.1, with a temporary directory for Prometheus's data, the
config and the logs, removed when they stop. The config is ours, as written, but for the
exporter's address (the one started here) and, if asked, the scrape interval and the Flink
targets. The exporter reads its password from its environment, never its command line.
"""

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from localenv.child_env import child_process_environment
from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.postgres import Database, free_port

MONITORING_DIR = PROJECT_ROOT / "monitoring"
HOST = "127.0.0.1"


class PrometheusError(RuntimeError):
    """Prometheus or the exporter is missing, did not start, or did not answer."""


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PrometheusError(
            f"{name} not found: install Debian's `{name}` package (`bash .ci/setup` does)"
        )
    return found


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


class _Process:
    """A server process of ours: its log in `log`, stopped with SIGTERM, then SIGKILL."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]):
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent
            )

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise PrometheusError(f"{what} exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise PrometheusError(f"{what} not ready after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _answers(url: str) -> bool:
    try:
        http_get(url, timeout=2.0)
        return True
    except (OSError, urllib.error.URLError):
        return False


class PostgresExporter:
    """prometheus-postgres-exporter on `db` with monitoring/postgres-exporter-queries.yaml."""

    def __init__(self, db: Database, work_dir: Path):
        self.db = db
        self.work_dir = work_dir
        self.port = free_port()
        self._process: Optional[_Process] = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> "PostgresExporter":
        env = child_process_environment(
            {
                "DATA_SOURCE_URI": f"{self.db.host}:{self.db.port}/{self.db.name}?sslmode=disable",
                "DATA_SOURCE_USER": self.db.user,
                "DATA_SOURCE_PASS": self.db.password,
            }
        )
        self._process = _Process(
            [
                binary("prometheus-postgres-exporter"),
                f"--web.listen-address={self.address}",
                f"--extend.query-path={MONITORING_DIR / 'postgres-exporter-queries.yaml'}",
            ],
            self.work_dir / "postgres-exporter.log",
            env,
        )
        self._process.wait_until(
            lambda: _answers(f"http://{self.address}/metrics"), timeout, "the exporter"
        )
        return self

    def metrics(self) -> str:
        return http_get(f"http://{self.address}/metrics").decode()

    def stop(self) -> None:
        if self._process:
            self._process.stop()


class LocalPrometheus:
    """Prometheus with monitoring/prometheus.yml (and alerts.yml) on a free port."""

    def __init__(
        self,
        work_dir: Path,
        exporter_address: Optional[str] = None,
        scrape_interval: Optional[str] = None,
        flink_targets: Optional[Sequence[str]] = None,
    ):
        self.work_dir = work_dir
        self.port = free_port()
        self.config = self._write_config(exporter_address, scrape_interval, flink_targets)
        self._process: Optional[_Process] = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _write_config(
        self,
        exporter_address: Optional[str],
        scrape_interval: Optional[str],
        flink_targets: Optional[Sequence[str]],
    ) -> Path:
        import yaml

        config = yaml.safe_load((MONITORING_DIR / "prometheus.yml").read_text())
        if scrape_interval:
            config["global"]["scrape_interval"] = scrape_interval
            config["global"]["scrape_timeout"] = scrape_interval
            config["global"]["evaluation_interval"] = scrape_interval
        targets: dict[str, list[str]] = {
            "postgres": [exporter_address] if exporter_address else [],
            "flink": list(flink_targets or []),
        }
        for job in config["scrape_configs"]:
            if targets.get(job["job_name"]):
                job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        for rule_file in config.get("rule_files", []):
            shutil.copy(MONITORING_DIR / rule_file, self.work_dir / rule_file)
        path = self.work_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 60.0) -> "LocalPrometheus":
        self._process = _Process(
            [
                binary("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address={HOST}:{self.port}",
            ],
            self.work_dir / "prometheus.log",
            child_process_environment(),
        )
        self._process.wait_until(lambda: _answers(f"{self.url}/-/ready"), timeout, "Prometheus")
        return self

    def stop(self) -> None:
        if self._process:
            self._process.stop()

    def log_tail(self, lines: int = 20) -> str:
        return self._process.tail(lines) if self._process else ""

    # -- HTTP API ------------------------------------------------------------------------------
    def api(self, path: str, timeout: float = 10.0, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            answer = json.loads(http_get(url, timeout=timeout))
        except urllib.error.HTTPError as error:  # a bad query: Prometheus says why in the body
            answer = json.loads(error.read() or b"{}")
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('error', answer)}")
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query: its samples, each {"metric": {labels}, "value": [time, "v"]}."""
        return list(self.api("query", query=expr)["result"])

    def value(self, expr: str) -> Optional[float]:
        """The value of a query that gives one sample (e.g. a sum), None if it gives none."""
        samples = self.query(expr)
        if len(samples) > 1:
            raise PrometheusError(f"{expr} gives {len(samples)} samples, not one")
        return float(samples[0]["value"][1]) if samples else None

    def range_values(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[tuple[float, float]]:
        """A range query of one series (e.g. a sum): its (Unix time, value) points, [] if none."""
        series = self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}"
        )["result"]
        if len(series) > 1:
            raise PrometheusError(f"{expr} gives {len(series)} series, not one")
        return [(float(t), float(v)) for t, v in series[0]["values"]] if series else []

    def wait_for(
        self, expr: str, condition: Callable[[float], bool], timeout: float, interval: float = 0.5
    ) -> float:
        """Polls `expr` (one sample) until `condition` holds for its value; returns it."""
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            seen = self.value(expr)
            if seen is not None and condition(seen):
                return seen
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expr} is {seen} after {timeout:.0f} s")
            time.sleep(interval)

    def targets(self) -> list[dict]:
        return list(self.api("targets", state="active")["activeTargets"])


@contextmanager
def monitoring(
    db: Optional[Database] = None,
    scrape_interval: Optional[str] = None,
    flink_targets: Optional[Sequence[str]] = None,
) -> Iterator[LocalPrometheus]:
    """Prometheus (and the exporter on `db`, if given) for the length of the block; both
    stopped and their directory removed on the way out, also on an error."""
    work_dir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=sub_dir("prometheus")))
    exporter = PostgresExporter(db, work_dir) if db is not None else None
    prometheus: Optional[LocalPrometheus] = None
    try:
        if exporter:
            exporter.start()
        prometheus = LocalPrometheus(
            work_dir, exporter.address if exporter else None, scrape_interval, flink_targets
        )
        yield prometheus.start()
    finally:
        try:
            if prometheus:
                prometheus.stop()
        finally:
            if exporter:
                exporter.stop()
            shutil.rmtree(work_dir, ignore_errors=True)
