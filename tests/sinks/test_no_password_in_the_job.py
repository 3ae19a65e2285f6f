"""No password in the job (issue 27, item 3): the sink reads it where it runs, so a job on the
standalone cluster leaves it nowhere Flink keeps or shows things.

A server whose password is a marker (`tpc-MARK-<random>`), the payments job submitted with
`--password-file` to a cluster of its own, run until checkpoints completed, then stopped with
a savepoint. The marker is searched for in: the REST API (the job, its config, plan, vertices,
checkpoints, exceptions, the JobManager's and TaskManagers' views), the daemons' and the
client's log and .out files, every file of the blob stores (JobManager and TaskManagers) and of
the cluster's whole directory (web uploads, io and Python dirs; no HA storage: the local
cluster runs without HA), the checkpoints and the savepoint, `ps -eww -o args` all along the
run, and the daemons' and their workers' /proc environ. Inside a file, zip entries and
zlib/gzip streams are searched decompressed too.

The cluster offloads every deployment's job and task information to the blob store
(`blob.offload.minsize: 0`): otherwise the job graph's serialized bytes only travel over RPC
and a search of files could not see them at all. The control: the password file's path, which
the job graph carries where it carried the password (a string of the sink's SinkConfig), must
be found in the blob store, and the client's log and command line: the same search finds what
the job carries, so it would have found the password (before this change, the value itself was
in that SinkConfig).
"""

import gzip
import hashlib
import io
import json
import os
import secrets
import subprocess
import threading
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import pytest

from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres, free_port
from localenv.processes import descendants
from tests.jobs.support import write_inputs
from tests.sinks.support import wait_for

# Two and a half minutes on a busy machine (a cluster of its own): a campaign, not CI, which
# keeps the cheap guards: SinkConfigBuilderTest (Java) and the serialized sink's bytes in
# tests/sinks/test_configuration_errors.py.
pytestmark = [pytest.mark.cluster, pytest.mark.campaign]


def occurrences(data: bytes, needle: bytes, depth: int = 0) -> int:
    """`needle` in `data`, in its zip entries and in a zlib or gzip stream it is."""
    found = data.count(needle)
    if depth > 2:
        return found
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for entry in archive.infolist():
                    found += occurrences(archive.read(entry), needle, depth + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError):
            pass
    elif data[:2] == b"\x1f\x8b":
        try:
            found += occurrences(gzip.decompress(data), needle, depth + 1)
        except (OSError, EOFError, zlib.error):
            pass
    elif data[:1] == b"\x78":
        try:
            found += occurrences(zlib.decompressobj().decompress(data), needle, depth + 1)
        except zlib.error:
            pass
    return found


def file_hits(root: Path, needles: dict[str, bytes], only=lambda path: True) -> Counter:
    """Occurrences of each needle in every file under `root` for which `only(path)` (files that
    vanish meanwhile, e.g. a finished job's blobs, are skipped), and the files read, "files"."""
    hits: Counter = Counter()
    for path in root.rglob("*"):
        if not only(path) or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits["files"] += 1
        # The same jars and blobs are in several places: search each content once.
        key = hashlib.sha1(data).digest()
        if key not in SEARCHED:
            SEARCHED[key] = {name: occurrences(data, needle) for name, needle in needles.items()}
        hits.update(SEARCHED[key])
    return hits


def in_blob_store(path: Path) -> bool:
    return "blobStorage" in path.parts


SEARCHED: dict[bytes, dict[str, int]] = {}


class ProcessWatch:
    """`ps -eww -o args` every 0.3 s while the job is submitted and runs, and the /proc
    environ of the cluster's processes and their workers."""

    def __init__(self, cluster: Cluster, needles: dict[str, bytes]):
        self.cluster, self.needles = cluster, needles
        self.ps: Counter = Counter()
        self.environ: Counter = Counter()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        seen: set[str] = set()
        while not self.stopped.is_set():
            listing = subprocess.run(
                ["ps", "-eww", "-o", "args"], capture_output=True, timeout=10
            ).stdout.decode(errors="replace")
            for line in set(listing.splitlines()) - seen:  # each distinct command line once
                seen.add(line)
                self.ps["lines"] += 1
                for name, needle in self.needles.items():
                    self.ps[name] += line.encode().count(needle)
            self.stopped.wait(0.3)

    def read_environs(self) -> None:
        daemons = self.cluster.processes()
        for pid in daemons | descendants(daemons):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            self.environ["processes"] += 1
            for name, needle in self.needles.items():
                self.environ[name] += environ.count(needle)

    def __enter__(self) -> "ProcessWatch":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=15)


def rest_views(cluster: Cluster, job: str) -> dict[str, str]:
    """Every REST view of the job and of the cluster's configuration, as text."""
    paths = [
        f"/jobs/{job}",
        f"/jobs/{job}/config",
        f"/jobs/{job}/plan",
        f"/jobs/{job}/checkpoints",
        f"/jobs/{job}/checkpoints/config",
        f"/jobs/{job}/exceptions",
        f"/jobs/{job}/accumulators",
        f"/jobs/{job}/jobmanager/config",
        f"/jobs/{job}/jobmanager/environment",
        "/jobmanager/config",
        "/jobmanager/environment",
        "/taskmanagers",
        "/overview",
        "/config",
    ]
    views = {path: json.dumps(cluster.rest(path, timeout=15)) for path in paths}
    for vertex in cluster.rest(f"/jobs/{job}")["vertices"]:
        for tail in ("", "/accumulators", "/subtasks/accumulators"):
            path = f"/jobs/{job}/vertices/{vertex['id']}{tail}"
            views[path] = json.dumps(cluster.rest(path, timeout=15))
    latest = cluster.rest(f"/jobs/{job}/checkpoints")["latest"]["completed"]
    path = f"/jobs/{job}/checkpoints/details/{latest['id']}"
    views[path] = json.dumps(cluster.rest(path, timeout=15))
    for taskmanager in cluster.rest("/taskmanagers")["taskmanagers"]:
        path = f"/taskmanagers/{taskmanager['id']}"
        views[path] = json.dumps(cluster.rest(path, timeout=15))
    return views


def completed_checkpoints(cluster: Cluster, job: str) -> int:
    return int(cluster.rest(f"/jobs/{job}/checkpoints")["counts"]["completed"])


def test_the_password_is_nowhere_in_the_job_on_a_standalone_cluster(tmp_path, record_property):
    marker = f"tpc-MARK-{secrets.token_hex(12)}"
    name = f"pytest-secret-{os.getpid()}"
    cluster = Cluster(
        name,
        free_port(),
        free_port(),
        # Every deployment's job and task information through the blob store: see above.
        settings={"blob.offload.minsize": "0"},
    )
    input_dir = write_inputs(tmp_path / "input", events=1_000)
    checkpoints, savepoints = tmp_path / "checkpoints", tmp_path / "savepoints"
    places: dict[str, Counter] = {}
    with LocalPostgres(max_prepared_transactions=8, password=marker) as server:
        db = server.create_database("payments")
        path = str(db.password_file)
        needles = {"marker": marker.encode(), "path": path.encode()}
        started = time.monotonic()
        cluster.start()
        timings = {"cluster up": time.monotonic() - started}
        try:
            with ProcessWatch(cluster, needles) as processes:
                job = cluster.submit_detached(
                    [
                        *("--input", str(input_dir), "--watch", "300 ms"),
                        *("--db-url", db.jdbc_url, "--db-user", db.user),
                        *("--password-file", path),
                        *("--checkpoint-interval", "500 ms"),
                        *("--checkpoint-dir", str(checkpoints)),
                    ],
                    "jobs.payments",
                )
                timings["submitted"] = time.monotonic() - started
                wait_for(lambda: completed_checkpoints(cluster, job) >= 2, 180, "2 checkpoints")
                timings["2 checkpoints"] = time.monotonic() - started
                processes.read_environs()
                places["checkpoints, job running"] = file_hits(checkpoints, needles)
                # While the job runs: its blobs (the offloaded job graph) are removed after,
                # and `flink stop` will start the client's log afresh.
                places["blob stores, job running"] = file_hits(cluster.home, needles, in_blob_store)
                places["cluster directory, job running"] = file_hits(cluster.home, needles)
                places["logs, job running"] = file_hits(cluster.log_dir, needles)
                timings["searched while running"] = time.monotonic() - started
                cluster.stop_job(job, str(savepoints))
                timings["stopped"] = time.monotonic() - started
            assert cluster.job_state(job) == "FINISHED"
            for path_name, text in rest_views(cluster, job).items():
                places[f"REST {path_name}"] = Counter(
                    {name: text.count(needle.decode()) for name, needle in needles.items()}
                )
            for log in sorted(cluster.log_dir.iterdir()):
                places[f"log {log.name}"] = Counter(
                    {
                        name: occurrences(log.read_bytes(), needle)
                        for name, needle in needles.items()
                    }
                )
            places["cluster directory, job finished"] = file_hits(cluster.home, needles)
            places["checkpoints, job finished"] = file_hits(checkpoints, needles)
            timings["searched"] = time.monotonic() - started
            places["savepoint"] = file_hits(savepoints, needles)
            places["ps -eww -o args, all along"] = processes.ps
            places["/proc/PID/environ of the daemons and workers"] = processes.environ
        finally:
            cluster.stop()

    report = "\n".join(
        f"{place}: marker {hits['marker']}, path {hits['path']}"
        + (f" ({hits['files']} files)" if "files" in hits else "")
        for place, hits in places.items()
    )
    print(report)
    print(", ".join(f"{what} at {seconds:.1f} s" for what, seconds in timings.items()))
    record_property("places searched", report)
    assert {place: hits["marker"] for place, hits in places.items() if hits["marker"]} == {}
    # Each search read something.
    for place in ("blob stores, job running", "checkpoints, job running", "savepoint"):
        assert places[place]["files"] > 0, place
    assert places["ps -eww -o args, all along"]["lines"] > 0
    assert places["/proc/PID/environ of the daemons and workers"]["processes"] >= 3
    # The control: what the job graph carries instead of the password is found.
    assert places["blob stores, job running"]["path"] > 0, report
    assert places["logs, job running"]["path"] > 0, report  # the flink run client's
    assert places["ps -eww -o args, all along"]["path"] > 0, report
