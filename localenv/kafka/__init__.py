"""A throwaway single-node Kafka broker for tests and the demo, managed like `LocalPostgres`.

Kafka 4 in KRaft mode (one JVM that is broker and controller), from Kafka's own jars on Maven
Central: `pom.xml` beside this file names them, Maven copies them into `var/kafka/lib` (once;
`python -m localenv.kafka resolve`, which `.ci/setup` runs). No tarball, no Docker. The broker
listens on 127.0.0.1 only, on a free port, keeps its log segments in a fresh temp dir (formatted
with Kafka's StorageTool before the first start), runs with a small heap, and `stop()` kills it
and removes the directory, also when the test that started it failed.

    with LocalKafka() as kafka:
        print(kafka.bootstrap_servers)       # 127.0.0.1:PORT: give it to a Kafka client

Topics are the clients' business (`jobs.produce` creates the one it fills), not the broker's.

`stop_broker()`/`start_broker()` take the broker down and up again on the same port and data, to
test what a job does through a broker outage.
"""

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Optional

from localenv.paths import sub_dir

POM = Path(__file__).resolve().parent / "pom.xml"
HOST = "127.0.0.1"
NODE_ID = 1
READY_LINE = "Kafka Server started"


class KafkaSetupError(RuntimeError):
    """The local broker could not be resolved or started; the message says why."""


def broker_classpath() -> list[Path]:
    """Kafka's broker jars in var/kafka/lib, resolved by Maven on first use."""
    from localenv.maven import MavenError, copy_dependencies

    try:
        return copy_dependencies(POM, sub_dir("kafka") / "lib", "the Kafka broker")
    except MavenError as error:
        raise KafkaSetupError(str(error)) from error


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return str(Path(java_home, "bin", "java"))
    found = shutil.which("java")
    if not found:
        raise KafkaSetupError(
            "Java not found: the Kafka broker runs on a Java 17 runtime. "
            "Install one (Debian: `apt-get install openjdk-17-jdk-headless`)."
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def new_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64), never starting with '-': the
    storage tool would read such an id as an option and fail, one start in 64. Kafka's own
    `Uuid.randomUuid()` draws again for the same reason."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    def __init__(self, heap: str = "256m", start_timeout: float = 90.0):
        self.heap = heap
        self.start_timeout = start_timeout
        self.port: Optional[int] = None
        self.controller_port: Optional[int] = None
        self._base: Optional[Path] = None
        self._process: Optional[subprocess.Popen] = None
        self._log: Optional[BinaryIO] = None

    @property
    def base(self) -> Path:
        """The server's directory (data, logs); only while it runs."""
        if self._base is None:
            raise RuntimeError("not started")
        return self._base

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise KafkaSetupError("broker not started")
        return f"{HOST}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LocalKafka":
        classpath = broker_classpath()
        self._base = Path(tempfile.mkdtemp(prefix="tpc-kafka-"))
        try:
            self.port, self.controller_port = free_port(), free_port()
            self._write_config()
            # KRaft needs its storage formatted with a cluster id before the first start.
            cluster_id = new_cluster_id()
            self._java(
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(self.config_file),
                "--ignore-formatted",
            )
            self.start_broker()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def config_file(self) -> Path:
        return self.base / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.base / "broker.log"

    def _write_config(self) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.base / "data"),
            # One node: every internal topic with one replica, and no waiting for more.
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 2,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "num.partitions": 1,
            "auto.create.topics.enable": "false",  # a typo in a topic name fails loudly
            # A small machine: few threads, small segments.
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "background.threads": 2,
            "log.segment.bytes": 16 * 1024 * 1024,
            # The bad-input corpus holds a 1 MiB line: above the 1 MB default record limit.
            "message.max.bytes": 8 * 1024 * 1024,
        }
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _jvm(self, classpath: list[Path], main_class: str, *args: str) -> list[str]:
        tmp = self.base / "tmp"
        tmp.mkdir(exist_ok=True)
        return [
            java_executable(),
            f"-Xmx{self.heap}",
            f"-Xms{min_heap(self.heap)}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xss512k",
            f"-Djava.io.tmpdir={tmp}",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp",
            os.pathsep.join(str(p) for p in classpath),
            main_class,
            *args,
        ]

    def _java(self, classpath: list[Path], main_class: str, *args: str) -> None:
        result = subprocess.run(
            self._jvm(classpath, main_class, *args),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self._base,
        )
        if result.returncode != 0:
            raise KafkaSetupError(
                f"{main_class} {args[0]} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )

    def start_broker(self) -> None:
        """Start the broker JVM (on the same port and data after `stop_broker`) and wait until
        it serves requests."""
        if self.running():
            return
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._log = open(self.log_file, "ab")
        process = self._process = subprocess.Popen(
            self._jvm(broker_classpath(), "kafka.Kafka", str(self.config_file)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._base,
            start_new_session=True,
        )  # Ctrl-C in a terminal reaches the owner, which stops it
        self._wait_until_ready(process, offset)

    def _wait_until_ready(self, process: subprocess.Popen, log_offset: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KafkaSetupError(
                    f"the Kafka broker exited ({process.returncode}) "
                    f"during start-up:\n{self.log_tail()}"
                )
            with open(self.log_file, "rb") as log:
                log.seek(log_offset)
                started = READY_LINE.encode() in log.read()
            if started and self._answers():
                return
            time.sleep(0.25)
        raise KafkaSetupError(
            f"the Kafka broker did not start within {self.start_timeout:.0f} s:\n{self.log_tail()}"
        )

    def _answers(self) -> bool:
        """The broker answers a metadata request on its client port."""
        try:
            from kafka import KafkaAdminClient
        except ImportError:  # the kafka extra is missing: the log line has to do
            return True
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                request_timeout_ms=5000,
                bootstrap_timeout_ms=5000,
                client_id="tpc-localenv",
            )
        except Exception:  # not yet
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def broker_pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None and self.running() else None

    def stop_broker(self, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the broker JVM (SIGTERM: a controlled shutdown; `kill`: SIGKILL, a crash) and
        keep its port and data for `start_broker`."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None
        if self._log:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        # A throwaway broker: nothing to shut down gracefully for.
        self.stop_broker(kill=True)
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None

    def __enter__(self) -> "LocalKafka":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        if self._base is None or not self.log_file.exists():
            return "(no broker log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def min_heap(heap: str) -> str:
    """A quarter of the maximum heap (at least 32m): the broker grows into it if it must."""
    units = {"k": 1, "m": 1024, "g": 1024 * 1024}
    kib = int(heap[:-1]) * units[heap[-1].lower()]
    return f"{max(32 * 1024, kib // 4) // 1024}m"


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m localenv.kafka", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "command", choices=["resolve"], help="resolve: copy the broker's jars into var/kafka/lib"
    )
    parser.parse_args(argv)
    try:
        jars = broker_classpath()
    except KafkaSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Kafka broker: {len(jars)} jars in {jars[0].parent}")
    return 0
