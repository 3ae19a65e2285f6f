"""`jobs.audit` judges what the job guarantees, no more (issue 23, item 7).

The job reads files (or Kafka partitions) side by side: which copy of an event id found in two
files reaches the dedupe first is not defined. The audit accepts every outcome some order of
the sources gives (the first valid line of the id in any one source applied, the others
duplicates or conflicting duplicates of it), and still names a row that no order gives.

The other-order books are written by the single-process script (`bench.baseline`) reading the
files in reverse; then by the Flink job itself at parallelism 2, through a failover, watching
its directory while the second file arrives before the first.
"""

import json

import pytest

import bench.baseline as baseline
from jobs.audit import audit
from transforms import sample_data
from transforms.inputs import input_files

KINDS = ("same", "conflict", "account", "twice")


def payment(event_id: str, account: str = "acct-1", amount: str = "10.00") -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "account_id": account,
            "type": "charge",
            "amount": amount,
            "currency": "USD",
            "occurred_at": "2026-12-01T10:00:00+00:00",
        }
    )


def contested_lines(count: int) -> tuple[list[str], list[str]]:
    """(lines of file a, lines of file b) for `count` event ids of each kind: the same payment
    in both files; other amounts; other accounts (the balance moves); twice in a, otherwise in
    b."""
    in_a, in_b = [], []
    for i in range(count):
        in_a.append(payment(f"x-same-{i}"))
        in_b.append(payment(f"x-same-{i}"))
        in_a.append(payment(f"x-conflict-{i}", amount="10.00"))
        in_b.append(payment(f"x-conflict-{i}", amount="20.00"))
        in_a.append(payment(f"x-account-{i}", account="acct-a"))
        in_b.append(payment(f"x-account-{i}", account="acct-b"))
        in_a += [payment(f"x-twice-{i}", amount="1.00")] * 2
        in_b.append(payment(f"x-twice-{i}", amount="2.00"))
    return in_a, in_b


def write_two_files(directory, contested: int, events: int):
    """a.jsonl: generated payments, then its copies of the contested ids; b.jsonl: its copies
    first, then generated payments. Read side by side, b's copies come first."""
    directory.mkdir(parents=True, exist_ok=True)
    in_a, in_b = contested_lines(contested)
    sample_data.write_jsonl(str(directory / "a.jsonl"), events, seed=71, id_prefix="a")
    with open(directory / "a.jsonl", "ab") as f:  # generated lines hold invalid UTF-8 too
        f.writelines(line.encode() + b"\n" for line in in_a)
    sample_data.write_jsonl(str(directory / "b-tail.jsonl"), events, seed=72, id_prefix="b")
    tail = (directory / "b-tail.jsonl").read_bytes()
    (directory / "b-tail.jsonl").unlink()
    (directory / "b.jsonl").write_bytes(b"".join(line.encode() + b"\n" for line in in_b) + tail)
    return directory


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_two_files(tmp_path_factory.mktemp("source-order") / "input", 5, 300)


def books(db, inputs, reverse: bool, monkeypatch):
    """The script's books, reading the files in order or in reverse."""
    if reverse:
        monkeypatch.setattr(baseline, "input_files", lambda d: input_files(d)[::-1])
    with db.connect() as conn:
        baseline.run(conn, str(inputs))


def run_audit(db, inputs):
    with db.connect() as conn:
        report = audit(conn, str(inputs))
    print(report.render())
    return report


def execute(db, statement, params=None):
    with db.connect(autocommit=True) as conn:
        conn.execute(statement, params)


def test_the_files_read_in_order_give_the_references_books(database, inputs, monkeypatch):
    books(database, inputs, reverse=False, monkeypatch=monkeypatch)
    report = run_audit(database, inputs)
    assert report.clean
    assert (report.contested, report.reordered) == (4 * 5, 0)


def test_the_files_read_in_reverse_give_other_books_that_are_accepted(
    database, inputs, monkeypatch
):
    books(database, inputs, reverse=True, monkeypatch=monkeypatch)
    with database.connect() as conn:
        # The books differ from the reference's: b's copies were applied, a's set aside.
        assert conn.execute(
            "SELECT amount_minor FROM ledger WHERE event_id = 'x-conflict-0'"
        ).fetchone() == (2000,)
        assert conn.execute(
            "SELECT count(*) FROM rejected WHERE source LIKE '%/a.jsonl' "
            "AND reason = 'conflicting_duplicate' AND raw LIKE '%\"x-%'"
        ).fetchone() == (4 * 5,)  # a's conflict, account and twice (two) lines
        assert conn.execute(
            "SELECT balance_minor FROM balances WHERE account_id = 'acct-b'"
        ).fetchone() == (5 * 1000,)
    report = run_audit(database, inputs)
    assert report.clean, report.render()
    assert (report.contested, report.reordered) == (4 * 5, 4 * 5)
    assert "20 applied in another source order (accepted)" in report.render()


@pytest.mark.parametrize(
    "damage, table",
    [
        # a duplicate row moved to a line that holds no copy of its event id
        (
            "UPDATE duplicates SET line_number = line_number + 1 WHERE event_id = 'x-same-1'",
            "duplicates",
        ),
        # a conflicting duplicate recorded as a duplicate
        (
            "WITH gone AS (DELETE FROM rejected WHERE source LIKE '%/a.jsonl' AND raw LIKE "
            "'%x-conflict-2\"%' RETURNING source, line_number) INSERT INTO duplicates "
            "(event_id, source, line_number) SELECT 'x-conflict-2', source, line_number "
            "FROM gone",
            "duplicates",
        ),
        # the applied copy's amount changed: no line of the input gives it
        ("UPDATE ledger SET amount_minor = 1500 WHERE event_id = 'x-conflict-3'", "ledger"),
        # a balance off by one copy
        (
            "UPDATE balances SET balance_minor = balance_minor + 1000 WHERE account_id = 'acct-b'",
            "balances",
        ),
    ],
)
def test_damage_to_other_order_books_is_still_named(database, inputs, monkeypatch, damage, table):
    books(database, inputs, reverse=True, monkeypatch=monkeypatch)
    execute(database, damage)
    report = run_audit(database, inputs)
    assert not report.clean
    assert report.tables[table].differences > 0, report.render()


@pytest.mark.minicluster
@pytest.mark.chaos
def test_the_job_at_parallelism_2_through_a_failover_is_accepted(database, tmp_path):
    """A watching job at parallelism 2 reads b.jsonl first, and fails once (a Python exception)
    on the way; a.jsonl arrives once b's lines are committed. So the job applied b's copies of
    the contested ids, while the reference, reading the files in path order, applies a's: an
    audit that compared the books with the reference's alone reported every one of them."""
    from jobs.kit.environment import create_environment
    from jobs.kit.line_sources import file_source
    from jobs.payments import build_pipeline, build_sinks, prepare_database
    from tests.harness.faults import FailOnce, faults_in_parse
    from tests.jobs.support import payments_config
    from tests.jobs.test_payments_faults import committed_lines
    from tests.sinks.support import wait_for
    from transforms.reference import read_lines

    staging = write_two_files(tmp_path / "staging", 100, 4_000)
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (staging / "b.jsonl").rename(input_dir / "b.jsonl")
    lines_b = sum(1 for _ in read_lines(input_dir / "b.jsonl"))
    lines_a = sum(1 for _ in read_lines(staging / "a.jsonl"))
    marker = tmp_path / "failed-once"
    config = payments_config(database, input_dir, tmp_path, watch="300 ms")
    prepare_database(config)
    with faults_in_parse(FailOnce(str(marker), after_seconds=0, after_records=3)):
        env = create_environment(config)
        build_pipeline(env, file_source(config.input, config.watch), build_sinks(config), config)
        client = env.execute_async("payments-source-order-test")
    try:
        wait_for(lambda: committed_lines(database) >= lines_b, 180, "b.jsonl committed")
        (staging / "a.jsonl").rename(input_dir / "a.jsonl")  # one file system: atomic
        wait_for(lambda: committed_lines(database) >= lines_a + lines_b, 180, "a.jsonl committed")
    finally:
        client.cancel().result()
    assert marker.exists(), "the injected failure never happened"
    report = run_audit(database, input_dir)
    assert report.clean, report.render()
    assert (report.contested, report.reordered) == (4 * 100, 4 * 100)
