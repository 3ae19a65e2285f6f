"""A savepoint taken at one parallelism, restored at another (README, "What exactly-once covers":
"a restore at another parallelism, from a retained checkpoint or a savepoint").

The payments job (default commit scope, `--watch`) runs at parallelism 2 on the bad-input
corpus, a generated file and a stream of files that keeps arriving, and is stopped with a
savepoint while the stream goes on. Files arrive while it is down, and it is resumed from the
savepoint at parallelism 1 or 3: its file source's state (the files it has seen, a file it was
reading, if it was), the positions operator's state and the books sink's state are
redistributed over another number of subtasks.

Where in the stream the savepoint falls is a matter of timing (Flink stops at no chosen line):
the test prints whether a file was cut by it."""

import io
import threading
import time

import pytest

from jobs.audit import audit
from jobs.payments import PaymentsConfig, sink_ids, submit
from jobs.progress import JobMonitor, rest_fetcher
from localenv.job_control import rest_url, stop_with_savepoint
from sinks.positions import read_positions
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_config,
    write_inputs,
)
from tests.sinks.support import wait_for
from transforms import sample_data

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

STREAM_FILE_EVENTS = 3_000  # about 3,240 lines
STREAM_EVERY = 0.5  # seconds between two files of the stream
STREAM_FILES = 60  # at most


def write_lines(path, lines):
    hidden = path.with_name("." + path.name)  # the source skips dot files: whole or not at all
    hidden.write_bytes(b"".join(lines))
    hidden.rename(path)


class Stream:
    """Writes a file of generated payments every STREAM_EVERY seconds, until stopped."""

    def __init__(self, directory):
        self.directory = directory
        self.written: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        for n in range(1, STREAM_FILES + 1):
            if self.done.wait(STREAM_EVERY):
                return
            sample = sample_data.generate(STREAM_FILE_EVENTS, seed=100 + n, id_prefix=f"s{n}")
            write_lines(self.directory / f"2-stream-{n:03d}.jsonl", sample.lines)
            self.written.append(f"2-stream-{n:03d}.jsonl")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=30)


def applied(db, config: PaymentsConfig) -> dict[str, int]:
    """File name -> lines the books sink committed of it (its positions)."""
    with db.connect() as conn:
        positions = read_positions(conn, sink_ids(config)["ledger"])
    return {source.rsplit("/", 1)[-1]: p.lines for source, p in positions.items()}


def line_count(path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def committed(db) -> int:
    with db.connect() as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM ledger) + (SELECT count(*) FROM duplicates) "
            "+ (SELECT count(*) FROM rejected)"
        ).fetchone()[0]


def lines_read(monitor: JobMonitor) -> int:
    """What the job's file source has emitted so far (its `numRecordsOut`, as of at most a
    second ago: the mini cluster's metric fetcher)."""
    monitor.poll()
    return monitor.read or 0


@pytest.mark.parametrize("parallelism", [1, 3])
def test_a_savepoint_taken_at_parallelism_2_resumes_at_another(database, tmp_path, parallelism):
    """Fails if a line is lost or applied twice across the rescale (the tables against the
    pure reference, and the audit), if the second job did not start from the savepoint, or if
    its source read again a line the savepoint had already read (it then emits more lines than
    the positions moved on: a job that restored nothing of the source would read every file
    from its start, and only the database's positions would keep it exact)."""
    input_dir = write_inputs(tmp_path / "input", events=4_000, seed=70 + parallelism)
    initial = expected_outcome(input_dir).lines
    first = payments_config(
        database, input_dir, tmp_path, watch="300 ms", checkpoint_dir=str(tmp_path / "chk-2")
    )
    with Stream(input_dir) as stream:
        client = submit(first, wait=False)
        try:
            wait_for(
                lambda: committed(database) >= initial and len(stream.written) >= 3,
                120,
                "the first files committed at parallelism 2",
            )
            savepoint = stop_with_savepoint(client, str(tmp_path / "savepoints"), timeout=120)
        except BaseException:
            client.cancel().result()
            raise
        at_savepoint = applied(database, first)
        present = {path.name: line_count(path) for path in input_dir.glob("[!.]*")}
        cut = {f: (n, present[f]) for f, n in at_savepoint.items() if n < present[f]}
        unseen = sorted(set(present) - set(at_savepoint))
        print(f"savepoint: {sum(at_savepoint.values())} lines; files cut: {cut}; unread: {unseen}")

        resumed = payments_config(
            database,
            input_dir,
            tmp_path,
            watch="300 ms",
            parallelism=parallelism,
            from_checkpoint=savepoint,
            checkpoint_dir=str(tmp_path / f"chk-{parallelism}"),
        )
        client = submit(resumed, wait=False)
        try:
            monitor = JobMonitor(out=io.StringIO()).start(client, background=False)
            base = rest_url(client)
            assert base, "no REST address for the restored job"
            during = len(stream.written)
            wait_for(lambda: len(stream.written) >= during + 2, 60, "files after the restore")
            stream.done.set()
            stream.thread.join(timeout=30)
            # Copies of lines applied before the savepoint: duplicates, conflicts, bad lines.
            with open(input_dir / "generated.jsonl", "rb") as f:
                again = [line for _, line in zip(range(300), f)]
            later = sample_data.generate(1_000, seed=81, id_prefix="after")
            write_lines(input_dir / "3-after.jsonl", again + list(later.lines))
            expected = expected_outcome(input_dir)
            wait_for(lambda: committed(database) >= expected.lines, 120, "every line to commit")
            checkpoints = rest_fetcher(base)(f"/jobs/{client.get_job_id()}/checkpoints")
            restored = checkpoints["latest"]["restored"]
            # Every line the savepoint had not read, read once: the metric may lag a second.
            unread = expected.lines - sum(at_savepoint.values())
            deadline = time.monotonic() + 20
            while lines_read(monitor) < unread and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # four checkpoints: anything read twice would be committed now
            read = lines_read(monitor)
            restarts = monitor.metric_restarts
            found = database_outcome(database)
        finally:
            client.cancel().result()

    assert 0 < sum(at_savepoint.values()) < expected.lines
    assert restored and restored["is_savepoint"], restored
    assert restored["external_path"].rstrip("/").endswith(savepoint.rstrip("/")), restored
    # (A restart would reset the metric to what the new attempt read: none is expected.)
    assert (read, restarts) == (unread, 0), f"the restored job read {read} lines, {unread} unread"
    assert sum(applied(database, resumed).values()) == expected.lines
    assert found == expected_in_database_shape(expected)
    with database.connect() as conn:
        report = audit(conn, str(input_dir))
    assert report.clean, report.render()
