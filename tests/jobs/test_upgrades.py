"""Change the code, keep the state: a `--watch` job stopped with a savepoint, upgraded to new
rules and started from that savepoint while files keep arriving; an incompatible upgrade and a
stale savepoint, both refused before a row moves.

Version A knows the default currencies; version B adds "ZZZ" (a currency file, as a user would
deploy it). Lines in ZZZ committed under A are `unsupported_currency`; under B they are ledger
rows. Lines of A repeated after the upgrade are still duplicates: the dedupe state crossed it."""

import dataclasses
import json
import os
import re
import threading
import time
from collections import defaultdict

import pytest

from jobs.kit.environment import create_environment
from jobs.kit.line_sources import file_source
from jobs.kit.refusals import explain_refusal
from jobs.payments import STATEFUL_UIDS, build_pipeline, build_sinks, prepare_database
from jobs.reconcile import reconcile
from localenv.job_control import stop_with_savepoint
from tests.jobs.support import (
    PASSWORD_ENV,
    database_outcome,
    expected_in_database_shape,
    payments_command,
    payments_config,
)
from tests.jobs.test_payments_faults import committed_lines
from tests.sinks.support import wait_for
from transforms import sample_data
from transforms.currencies import DEFAULT_CURRENCIES
from transforms.inputs import input_files
from transforms.reference import process_files

pytestmark = [pytest.mark.minicluster, pytest.mark.chaos]


def zzz_lines(prefix: str, count: int):
    return [
        json.dumps(
            {
                "event_id": f"{prefix}-{i}",
                "account_id": f"{prefix}-acct-{i % 3}",
                "type": "charge" if i % 4 else "refund",
                "amount": f"{i + 1}.25",
                "currency": "ZZZ",
                "occurred_at": "2026-11-27T10:00:00+00:00",
            }
        )
        + "\n"
        for i in range(count)
    ]


def write_lines(path, lines):
    tmp = path.with_name("." + path.name)  # hidden until complete: the source skips dot files
    tmp.write_text("".join(lines))
    tmp.rename(path)


def start_job(config, without_dedupe=False):
    prepare_database(config)
    env = create_environment(config)
    if without_dedupe:
        build_pipeline_without_dedupe(env, config)
    else:
        build_pipeline(env, file_source(config.input, config.watch), build_sinks(config), config)
    return env.execute_async("payments-upgrade")


def build_pipeline_without_dedupe(env, config):
    """Version "C": someone removed the dedupe operator (its state has nowhere to go)."""
    from jobs.payments import LEDGER_FIELDS, file_lines
    from transforms.jvm_operators import project
    from transforms.payments_flink import parse_payment_lines

    # Per-table sinks (subtask scope), so that this version can leave tables out.
    sinks = build_sinks(dataclasses.replace(config, commit_scope="subtask"))
    parsed = parse_payment_lines(file_lines(env, config))
    (
        project(parsed.payments, LEDGER_FIELDS)
        .name("ledger-rows")
        .uid("ledger-rows")
        .sink_to(sinks.ledger)
        .name("ledger-sink")
        .uid("ledger-sink")
    )
    parsed.rejected.sink_to(sinks.rejected).name("rejected-sink").uid("rejected-sink")


def expectation(input_dir, a_only_zzz_file, currencies_b):
    """The reference under B's rules, except the ZZZ lines A processed: rejected."""
    outcome = process_files(input_files(str(input_dir)), currencies=currencies_b)
    under_a = process_files([str(a_only_zzz_file)])
    moved = {json.loads(r.raw)["event_id"] for r in under_a.rejected}
    ledger = sorted(tuple(row) for row in outcome.ledger if row[0] not in moved)
    sums = defaultdict(lambda: [0, 0])
    for _, account, _, amount, currency, _ in ledger:
        sums[(account, currency)][0] += amount
        sums[(account, currency)][1] += 1
    balances = sorted((a, c, s, n) for (a, c), (s, n) in sums.items())
    _, _, rejected, duplicates = expected_in_database_shape(outcome)
    rejected = sorted(
        rejected + [(r.reason, r.raw, r.source or "", r.line_number or 0) for r in under_a.rejected]
    )
    return (ledger, balances, rejected, duplicates), len(moved)


def test_watch_job_upgraded_through_a_savepoint(database, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    savepoints = tmp_path / "savepoints"
    currencies_b = tmp_path / "currencies-b.json"
    currencies_b.write_text(json.dumps({**DEFAULT_CURRENCIES, "ZZZ": 2}))
    table_b = {**DEFAULT_CURRENCIES, "ZZZ": 2}

    first = sample_data.write_jsonl(str(input_dir / "1-a.jsonl"), 4_000, seed=31, id_prefix="a")
    write_lines(input_dir / "1-a-zzz.jsonl", zzz_lines("zzz-a", 30))
    version_a = payments_config(
        database,
        input_dir,
        tmp_path,
        watch="300 ms",
        checkpoint_dir=str(tmp_path / "checkpoints-a"),
    )
    client = start_job(version_a)
    before = len(first.lines) + 30
    wait_for(lambda: committed_lines(database) >= before, 180, "version A's first files")

    # Files keep arriving, through the stop and the restart.
    stop_writing = threading.Event()
    written = []

    def keep_writing():
        n = 0
        while not stop_writing.is_set() and n < 12:
            n += 1
            path = input_dir / f"2-stream-{n:03d}.jsonl"
            sample_data.write_jsonl(str(tmp_path / f".s{n}"), 600, seed=100 + n, id_prefix=f"s{n}")
            (tmp_path / f".s{n}").rename(path)
            written.append(path)
            time.sleep(0.7)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        wait_for(lambda: len(written) >= 3, 60, "files written while A runs")
        savepoint = stop_with_savepoint(client, str(savepoints), timeout=180)
        stopped_at = committed_lines(database)
        assert savepoints.exists() and any(savepoints.iterdir()), savepoint

        version_b = payments_config(
            database,
            input_dir,
            tmp_path,
            watch="300 ms",
            currencies=str(currencies_b),
            from_checkpoint=savepoint,
            checkpoint_dir=str(tmp_path / "checkpoints-b"),
        )
        client = start_job(version_b)
        # After the upgrade: new ZZZ events (ledger rows under B), and lines A already applied
        # (same event id, same content) which must still be recognised as duplicates.
        repeated = repeated_valid_lines(first.lines)
        write_lines(input_dir / "3-b.jsonl", zzz_lines("zzz-b", 25) + repeated)
        writer.join(timeout=60)
    finally:
        stop_writing.set()
        writer.join(timeout=30)
    expected, moved = expectation(input_dir, input_dir / "1-a-zzz.jsonl", table_b)
    assert moved == 30
    try:
        total = len(expected[0]) + len(expected[2]) + expected[3]
        wait_for(lambda: committed_lines(database) >= total, 240, "every line to commit")
        time.sleep(2)  # anything applied twice would show up now
    finally:
        stop_with_savepoint(client, str(savepoints), timeout=180)
    found = database_outcome(database)
    assert 0 < stopped_at < total, "not stopped mid-stream"
    assert found[3] == expected[3], "duplicates"
    assert found == expected
    assert {row[0] for row in found[0] if row[4] == "ZZZ"} == {f"zzz-b-{i}" for i in range(25)}
    assert dead_letters(database) == 0
    with database.connect() as conn:  # the books balance, whatever rules each line met
        books = reconcile(conn, str(input_dir))
    assert books.books_balance and books.lines_read == total, books.report()


def dead_letters(db):
    with db.connect() as conn:
        exists = conn.execute("SELECT to_regclass('tpc_dead_letters')").fetchone()[0]
        return conn.execute("SELECT count(*) FROM tpc_dead_letters").fetchone()[0] if exists else 0


def repeated_valid_lines(lines, count=40):
    """Distinct, well-formed lines of A (each event id once), to be sent again after B starts."""
    seen, out = set(), []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event_id") in seen:
            continue
        seen.add(event.get("event_id"))
        text = line.decode() if isinstance(line, bytes) else line
        out.append(text if text.endswith("\n") else text + "\n")
        if len(out) == count:
            break
    return out


def test_incompatible_upgrade_and_stale_savepoint_are_refused_before_a_row_moves(
    database, tmp_path
):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    savepoints = tmp_path / "savepoints"
    sample_data.write_jsonl(str(input_dir / "1.jsonl"), 2_000, seed=41, id_prefix="i")
    config = payments_config(database, input_dir, tmp_path, watch="300 ms")
    client = start_job(config)
    wait_for(lambda: committed_lines(database) >= 2_000, 180, "the first file")
    first_savepoint = stop_with_savepoint(client, str(savepoints), timeout=180)

    # The dedupe operator removed: its state has nowhere to go. Refused at start.
    sample_data.write_jsonl(str(input_dir / "2.jsonl"), 500, seed=42, id_prefix="j")
    before = database_outcome(database)
    restored = payments_config(
        database, input_dir, tmp_path, watch="300 ms", from_checkpoint=first_savepoint
    )
    with pytest.raises(Exception) as refused:
        start_and_wait_running(restored, without_dedupe=True)
    message = explain_refusal(refused.value, STATEFUL_UIDS)
    assert message and message.startswith("incompatible upgrade"), str(refused.value)[-3000:]
    # Flink names the first operator it cannot map: the dedupe, or a sink that went with it.
    assert re.search(r"operator '(dedupe-by-event-id|(Sink Committer: )?[a-z]+-sink)'", message)
    assert "Nothing was written" in message
    assert database_outcome(database) == before

    # The sink ids changed (another --sink-id-prefix): refused too.
    renamed = payments_config(
        database,
        input_dir,
        tmp_path,
        watch="300 ms",
        from_checkpoint=first_savepoint,
        sink_id_prefix="payments-v2",
    )
    with pytest.raises(Exception) as refused:
        start_and_wait_running(renamed)
    message = explain_refusal(refused.value, STATEFUL_UIDS)
    assert message and "sink id 'payments-" in message, str(refused.value)[-3000:]
    assert "Keep --sink-id-prefix" in message
    assert database_outcome(database) == before

    # The same version resumes from the savepoint, commits, and stops with a newer one ...
    client = start_job(restored)
    wait_for(lambda: committed_lines(database) >= 2_500, 180, "the second file")
    stop_with_savepoint(client, str(savepoints), timeout=180)
    before = database_outcome(database)
    # ... after which the first savepoint is stale: replaying it would apply 2.jsonl twice.
    with pytest.raises(Exception) as refused:
        start_and_wait_running(restored)
    message = explain_refusal(refused.value, STATEFUL_UIDS)
    assert message and "refuses to restore checkpoint" in message, str(refused.value)[-3000:]
    assert "savepoint" in message
    assert database_outcome(database) == before


def start_and_wait_running(config, without_dedupe=False, seconds=40):
    """Start the job and wait: an error (the refusal) is raised; a job still running after
    `seconds` is cancelled and reported as not refused."""
    client = start_job(config, without_dedupe=without_dedupe)
    result = client.get_job_execution_result()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not result.done():
        time.sleep(0.3)
    if not result.done():
        client.cancel().result()
        raise AssertionError("the job started although it should have been refused")
    result.result()


def run_cli(db, input_dir, tmp_path, *extra):
    """`python -m jobs.payments ... --watch --savepoint-dir DIR` in the background."""
    import subprocess

    from localenv.flink import child_process_environment
    from localenv.paths import PROJECT_ROOT

    env = child_process_environment({PASSWORD_ENV: db.password})
    log = open(tmp_path / f"cli-{time.monotonic_ns()}.log", "w+")
    process = subprocess.Popen(
        payments_command(
            db,
            input_dir,
            "--watch",
            "300 ms",
            "--checkpoint-interval",
            "500 ms",
            "--checkpoint-dir",
            str(tmp_path / "checkpoints"),
            "--savepoint-dir",
            str(tmp_path / "savepoints"),
            *extra,
        ),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    return process, log


def output_of(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


def test_the_command_stops_with_a_savepoint_on_sigterm_and_resumes_from_it(database, tmp_path):
    import signal

    from tests.jobs.support import expected_outcome

    input_dir = tmp_path / "input"
    input_dir.mkdir()
    sample_data.write_jsonl(str(input_dir / "1.jsonl"), 1_500, seed=61, id_prefix="c")
    prepare_database(payments_config(database, input_dir, tmp_path))  # tables to poll
    process, log = run_cli(database, input_dir, tmp_path)
    try:
        wait_for(lambda: committed_lines(database) >= 1_500, 180, "the first file")
        process.send_signal(signal.SIGTERM)
        assert process.wait(180) == 0, output_of(log)[-3000:]
    finally:
        process.kill() if process.poll() is None else None
    found = re.search(r"stopped with savepoint (\S+)", output_of(log))
    assert found, output_of(log)[-3000:]
    first_savepoint = found.group(1)
    assert f"--from-savepoint {first_savepoint}" in output_of(log)

    sample_data.write_jsonl(str(input_dir / "2.jsonl"), 500, seed=62, id_prefix="d")
    expected = expected_outcome(input_dir)
    process, log = run_cli(database, input_dir, tmp_path, "--from-savepoint", first_savepoint)
    try:
        wait_for(lambda: committed_lines(database) >= expected.lines, 180, "the second file")
        # Ctrl-C: a terminal sends SIGINT to every process of the job's group (its JVM, the
        # Python workers and their warm pool), not to the job's process alone.
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(180) == 0, output_of(log)[-3000:]
    finally:
        process.kill() if process.poll() is None else None
    assert "stopped with savepoint" in output_of(log)
    assert database_outcome(database) == expected_in_database_shape(expected)

    process, log = run_cli(database, input_dir, tmp_path, "--from-savepoint", first_savepoint)
    try:
        assert process.wait(180) == 1, output_of(log)[-3000:]
    finally:
        process.kill() if process.poll() is None else None
    assert re.search(
        r"error: sink 'payments-[a-z]+' refuses to restore checkpoint", output_of(log)
    ), output_of(log)[-3000:]
    assert database_outcome(database) == expected_in_database_shape(expected)
