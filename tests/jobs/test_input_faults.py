"""An input entry the job cannot read gets a verdict at once, naming it, through the whole job
(issue 24); a name that is valid UTF-8, however odd, is data, kept exactly.

- At the start the job's command checks its input (`transforms.inputs.input_faults`) and
  refuses, in seconds, before anything is built or written. Control: the same input without
  the entry runs through, audit-clean.
- What goes bad after the start (a watched directory, a file changed in the meantime) the
  job's file source finds (`dev.tpc.source.InputFileFault`) and the job fails at once: no retry
  can read such a file. Controls, with Flink's own listing on the same input: a bounded job
  feeds the same fault to its restart strategy; a watching job stalls silently, never reading a
  good file that arrives after the bad one.
"""

import gzip
import os
import shutil
import subprocess
import time

import pytest
from pyflink.common import Duration, WatermarkStrategy
from pyflink.datastream.connectors.file_system import FileSource

from jobs.audit import audit
from jobs.kit.environment import create_environment
from jobs.kit.line_sources import LINE_TYPE, file_source
from jobs.kit.refusals import explain_refusal
from jobs.payments import build_pipeline, build_sinks, prepare_database
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from sinks.sources import NumberedLinesFormat
from tests.jobs.support import PASSWORD_ENV, payments_command, payments_config
from transforms import sample_data
from transforms.inputs import FAULTS, shown

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]

DROP_READ_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
DROP_READ_OVERRIDE.append("--inh-caps=-dac_override,-dac_read_search")


def good_files(directory, events=300, seed=5):
    directory.mkdir(parents=True, exist_ok=True)
    sample_data.write_jsonl(str(directory / "good.jsonl"), events, seed=seed, id_prefix="g")
    return directory


def truncated_gzip(path, events=3000):
    data = gzip.compress(b"".join(sample_data.generate(events, seed=9, id_prefix="t").lines))
    path.write_bytes(data[: len(data) // 2])


def make_fault(kind: str, directory) -> str:
    """One entry of `kind` in `directory`; the path the job must name."""
    if kind == "name_not_utf8":
        path = os.fsencode(directory) + b"/bad-\xff-name.jsonl"
        with open(path, "wb") as f:
            f.write(b'{"x": 1}\n')
        return os.fsdecode(path)
    path = str(directory / {"not_regular_file": "pipe.jsonl"}.get(kind, f"{kind}.jsonl"))
    if kind == "not_regular_file":
        os.mkfifo(path)
    elif kind == "name_unsupported":
        path = str(directory / "back\\slash.jsonl")
        open(path, "wb").close()
    elif kind == "symlink_loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "dangling_symlink":
        os.symlink("missing.jsonl", path)
    elif kind == "not_compressed":
        path += ".gz"
        open(path, "wb").write(b'{"x": 1}\n')
    elif kind == "unreadable_file":
        open(path, "wb").write(b'{"x": 1}\n')
        os.chmod(path, 0)
    elif kind == "unreadable_directory":
        os.mkdir(path)
        os.chmod(path, 0)
    elif kind == "corrupt_compressed":
        path += ".gz"
        truncated_gzip(directory / os.path.basename(path))
    return path


def run_command(db, input_dir, tmp_path, *extra, privileged=True):
    """The job's command; without `privileged`, as root without its way past permissions."""
    args = payments_command(db, input_dir, "--checkpoint-dir", str(tmp_path / "chk"), *extra)
    if not privileged and os.geteuid() == 0:
        args = [*DROP_READ_OVERRIDE, *args]
    return subprocess.run(
        args,
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def job_tables_exist(db) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT to_regclass('ledger') IS NOT NULL").fetchone()[0]


START_FAULTS = [k for k in FAULTS if k not in ("vanished", "corrupt_compressed")]


@pytest.mark.parametrize("kind", START_FAULTS)
def test_the_command_refuses_an_input_it_cannot_read(database, tmp_path, kind):
    input_dir = good_files(tmp_path / "in")
    path = make_fault(kind, input_dir)
    privileged = not kind.startswith("unreadable")
    result = run_command(database, input_dir, tmp_path, privileged=privileged)
    assert result.returncode == 1, result.stderr[-2000:]
    verdict = result.stderr.strip().splitlines()
    assert verdict[0] == "error: 1 input entry cannot be read; nothing was started:"
    assert verdict[1].startswith(f"  {shown(path)}: {FAULTS[kind][0]}")
    assert not job_tables_exist(database)  # nothing was built or written


def test_control_the_same_input_without_the_entry_runs_through(database, tmp_path):
    input_dir = good_files(tmp_path / "in")
    (input_dir / "sub").mkdir()
    shutil.copy(input_dir / "good.jsonl", input_dir / "sub" / "copy.jsonl")
    (input_dir / ".staging").mkdir()  # hidden: never looked at
    os.mkfifo(input_dir / ".staging" / "pipe.jsonl")
    result = run_command(database, input_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with database.connect() as conn:
        report = audit(conn, str(input_dir))
    assert report.clean, report.render()


ODD_NAMES = [
    "with space.jsonl",
    'quote\'s "double".jsonl',
    "new\nline.jsonl",
    "tab\tand-percent%41-hash#-colon:-query?.jsonl",
    "emoji-\U0001f4b8.jsonl",
    "nfd-e\u0301-and-nfc-\u00e9.jsonl",
    "zero-width\u200b-and-rtl-\u202e.jsonl",
]


def test_an_odd_name_that_is_utf8_is_data(database, tmp_path):
    """Names reach the tables (positions, rejected rows) and the audit byte-exact."""
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    for index, name in enumerate(ODD_NAMES):
        sample_data.write_jsonl(str(input_dir / name), 60, seed=index, id_prefix=f"o{index}")
        with open(input_dir / name, "ab") as f:
            f.write(b"not json\n")  # one rejected row per file, which names it
    result = run_command(database, input_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {str(input_dir / name) for name in ODD_NAMES}
    with database.connect() as conn:
        positions = {s for (s,) in conn.execute("SELECT source FROM tpc_source_positions")}
        rejected = {s for (s,) in conn.execute("SELECT source FROM rejected")}
        report = audit(conn, str(input_dir))
    assert positions == expected
    assert rejected == expected
    assert report.clean, report.render()


# -- after the start: the job's file source ------------------------------------------------------
def plain_flink_source(input_dir, watch=None):
    """The file source with Flink's own listing: what the checked listing replaces."""
    builder = FileSource.for_bulk_file_format(NumberedLinesFormat(), os.path.abspath(input_dir))
    if watch:
        builder.monitor_continuously(Duration.of_millis(watch))
    return builder.build()


def start_job(config, make_source):
    """The job as `submit` builds it, without the command's check, reading `make_source()`."""
    start = prepare_database(config)
    env = create_environment(config)
    lines = env.from_source(
        make_source(), WatermarkStrategy.no_watermarks(), "payment-files", type_info=LINE_TYPE
    ).uid("payment-files")
    build_pipeline(env, lines, build_sinks(config), config, start)
    return env.execute_async("input-faults-test")


def committed_sources(db) -> set:
    with db.connect() as conn:
        if not conn.execute("SELECT to_regclass('tpc_source_positions')").fetchone()[0]:
            return set()
        return {
            os.path.basename(s) for (s,) in conn.execute("SELECT source FROM tpc_source_positions")
        }


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def cancel_quietly(client):
    try:
        client.cancel().result()
    except Exception:  # it ended already
        pass


def outcome(client, timeout):
    """'finished', 'running' (still, after `timeout` s), or the failure's text."""
    result = client.get_job_execution_result()
    if not wait_for(result.done, timeout):
        return "running"
    try:
        result.result()
        return "finished"
    except Exception as error:  # the failure is what is checked
        return str(error)


@pytest.mark.parametrize("kind", ["name_not_utf8", "not_regular_file", "corrupt_compressed"])
def test_a_watched_directory_gets_a_bad_entry_and_the_job_stops_at_once(database, tmp_path, kind):
    input_dir = good_files(tmp_path / "in")
    config = payments_config(database, input_dir, tmp_path, watch="1 s")
    client = start_job(config, lambda: file_source(str(input_dir), "1 s"))
    try:
        assert wait_for(lambda: "good.jsonl" in committed_sources(database))
        staging = tmp_path / "staging"
        staging.mkdir()
        path = make_fault(kind, staging)
        os.rename(path, os.path.join(str(input_dir), os.path.basename(path)))
        # Under flink-conf's 70 restarts, a fault that went to the restart strategy would keep
        # the job going for more than ten minutes.
        failure = outcome(client, timeout=120)
    finally:
        cancel_quietly(client)
    assert failure not in ("running", "finished")
    explained = explain_refusal(Exception(failure))
    assert explained and f"[{kind}]" in explained, failure[-3000:]


def test_control_flinks_own_listing_stalls_silently_on_the_same_entry(database, tmp_path):
    input_dir = good_files(tmp_path / "in")
    config = payments_config(database, input_dir, tmp_path, watch="1 s")
    client = start_job(config, lambda: plain_flink_source(input_dir, watch=1000))
    try:
        assert wait_for(lambda: "good.jsonl" in committed_sources(database))
        make_fault("name_not_utf8", input_dir)
        good_files(tmp_path / "later", seed=6)
        os.rename(tmp_path / "later" / "good.jsonl", input_dir / "after.jsonl")
        # A good file after the bad one: never read in 15 listings (one a second), and the job
        # goes on as if all were well.
        assert not wait_for(lambda: "after.jsonl" in committed_sources(database), timeout=15)
        assert outcome(client, timeout=1) == "running"
    finally:
        cancel_quietly(client)


def test_a_bounded_job_fails_at_once_and_flinks_own_listing_restarts(database, tmp_path):
    """The issue's case (a name that is not UTF-8), with the command's check skipped: the
    checked listing ends the job without a restart; Flink's own (the control) hands the same
    fault to the restart strategy, here 2 attempts, 70 in flink-conf/config.yaml."""
    input_dir = good_files(tmp_path / "in")
    make_fault("name_not_utf8", input_dir)
    restarts = {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "2",
        "restart-strategy.fixed-delay.delay": "200 ms",
    }
    config = payments_config(database, input_dir, tmp_path, extra_settings=restarts)
    checked = outcome(start_job(config, lambda: file_source(str(input_dir))), timeout=120)
    assert "[name_not_utf8]" in (explain_refusal(Exception(checked)) or ""), checked[-2000:]
    assert "FixedDelayRestartBackoffTimeStrategy" not in checked

    config = payments_config(database, input_dir, tmp_path / "control", extra_settings=restarts)
    control = outcome(start_job(config, lambda: plain_flink_source(input_dir)), timeout=120)
    assert "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy" in control, control[
        -2000:
    ]
    assert "does not exist" in control
