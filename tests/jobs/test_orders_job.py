"""The orders job (`python -m jobs.orders`) on the mini cluster, parallelism 2, against the pure
reference (`transforms.orders.process_lines`) on the same files: generated orders with
duplicates and bad lines, and every hostile line of `transforms.order_samples.BAD_LINES`.

* the command's tables equal the reference exactly, and the same command again applies
  nothing twice; `jobs.audit --job orders` and `jobs.reconcile --job orders` find it clean,
  and name the row when one stock quantity is off by one;
* `kill -9` of the whole job while its sink is paused right after a checkpoint's rows became
  durable (the sink's fault seam), then the same command again: exact, although the keyed
  dedupe's state is gone (the database records a late duplicate as one);
* a failure of the sink at the same seam, with a restore from the last checkpoint: exact; its
  control, the same failure with the stock summed by an at-least-once sink row by row (the
  naive job the kit's statements replace), counts the replayed moves twice.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from jobs import audit, orders, reconcile
from jobs.kit.sinks import connected_builder
from jobs.orders import JOB, MOVE_ROW_TYPE, OrdersConfig, build_sink, sink_id
from localenv.paths import PROJECT_ROOT
from tests.jobs.drills import (
    FAILOVER_SETTINGS,
    checkpoint_flags,
    kill_9_mid_stream,
    run_with_a_sink_failure,
)
from tests.jobs.support import PASSWORD_ENV, job_command
from tests.sinks.support import job_environment
from transforms.inputs import input_files
from transforms.order_samples import BAD_LINES, write_jsonl
from transforms.orders import DuplicateOrder, Order, StockRow, process_files

pytestmark = [pytest.mark.minicluster]


def write_inputs(directory: Path, parts: int = 1, orders: int = 4_000, seed: int = 41) -> Path:
    """`parts` generated files (order ids of their own) and the hostile lines."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bad.jsonl").write_bytes(b"".join(line + b"\n" for line in BAD_LINES))
    for part in range(parts):
        write_jsonl(
            str(directory / f"orders-{part}.jsonl"), orders, seed + part, id_prefix=f"p{part}"
        )
    return directory


def expected_tables(input_dir: Path):
    outcome = process_files(input_files(str(input_dir)))
    return (
        sorted(outcome.moves),
        outcome.stock,
        sorted(outcome.duplicates),
        sorted(tuple(r) for r in outcome.rejected),
    )


def database_tables(db):
    """What the job's tables hold, in the reference's shapes (a file named by its base name)."""
    name = os.path.basename
    with db.connect() as conn:
        moves = sorted(
            Order(*row[:6], name(row[6]), row[7])
            for row in conn.execute(
                "SELECT order_id, sku, warehouse, kind, quantity, change, source, line_number "
                "FROM stock_moves"
            )
        )
        stock = sorted(
            StockRow(*row)
            for row in conn.execute("SELECT sku, warehouse, quantity, moves FROM stock")
        )
        duplicates = sorted(
            DuplicateOrder(order_id, name(source), number)
            for order_id, source, number in conn.execute(
                "SELECT order_id, source, line_number FROM order_duplicates"
            )
        )
        rejects = sorted(
            (reason, raw, name(source), number, detail, raw_bytes)
            for reason, raw, source, number, detail, raw_bytes in conn.execute(
                "SELECT reason, raw, source, line_number, detail, raw_bytes FROM order_rejects"
            )
        )
    return moves, stock, duplicates, rejects


def run_command(db, input_dir, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        job_command("jobs.orders", db, input_dir, *checkpoint_flags(tmp_path / "checkpoints")),
        cwd=PROJECT_ROOT,
        env=job_environment(db, {PASSWORD_ENV: db.password}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_equals_the_reference_and_twice_applies_nothing_twice(
    database, tmp_path, capsys, monkeypatch
):
    input_dir = write_inputs(tmp_path / "input")
    expected = expected_tables(input_dir)
    assert expected[2] and expected[3], "the input must hold duplicates and bad lines"

    first = run_command(database, input_dir, tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert database_tables(database) == expected

    again = run_command(database, input_dir, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert re.match(r"nothing new: [\d,]+ lines of 2 files already applied", again.stdout)
    assert database_tables(database) == expected

    check_audit_and_reconcile(database, input_dir, capsys, monkeypatch)


def check_audit_and_reconcile(db, input_dir: Path, capsys, monkeypatch) -> None:
    """The audit and the reconciliation of the run: clean; then one stock quantity +1 by SQL
    (the control: the tools must see one unit), each names that row and exits 1."""
    monkeypatch.setenv(PASSWORD_ENV, db.password)
    command = ["--job", "orders", "--input", str(input_dir), "--db-url", db.jdbc_url]
    command += ["--db-user", db.user, "--password-env", PASSWORD_ENV]

    def run(tool) -> tuple[int, str]:
        capsys.readouterr()
        status = tool.main(command)
        return status, capsys.readouterr().out

    status, out = run(audit)
    assert status == 0, out
    assert out.rstrip().endswith("audit: clean") and "stock_moves" in out
    status, out = run(reconcile)
    assert status == 0 and "stock = sum of the moves" in out and "books balance: yes" in out, out

    with db.connect() as conn:
        sku, warehouse, quantity = conn.execute(
            "UPDATE stock SET quantity = quantity + 1 WHERE (sku, warehouse) = "
            "(SELECT sku, warehouse FROM stock ORDER BY sku, warehouse LIMIT 1) "
            "RETURNING sku, warehouse, quantity"
        ).fetchone()
    status, out = run(audit)
    assert status == 1, out
    assert "stock: 1 altered" in out and "audit: 1 DIFFERENCES" in out
    assert (
        f"altered{' ' * 7}sku={sku!r}  warehouse={warehouse!r}  quantity: expected "
        f"{quantity - 1!r}, found {quantity!r}" in out
    )
    status, out = run(reconcile)
    assert status == 1 and "books balance: NO" in out, out
    assert f"{sku!r}, {warehouse!r}: moves ({quantity - 1}, " in out, out
    assert f", stock ({quantity}, " in out, out


@pytest.mark.chaos
def test_kill_9_mid_stream_then_the_same_command_is_exact(database, tmp_path):
    """Files arrive while a --watch job runs; its sink pauses after the 3rd non-empty
    checkpoint's rows became durable, and the whole job is killed there. The same command,
    without its checkpoint or state, applies the rest and nothing twice."""
    input_dir = tmp_path / "input"
    incoming = write_inputs(tmp_path / "incoming", parts=6, orders=1_500)
    checkpoints = checkpoint_flags(tmp_path / "checkpoints")
    part = kill_9_mid_stream(
        "jobs.orders", JOB, database, input_dir, incoming, tmp_path, *checkpoints
    )
    expected = expected_tables(input_dir)
    lines = len(expected[0]) + len(expected[2]) + len(expected[3])
    assert 0 < part < lines, "the kill must come mid-stream"

    again = run_command(database, input_dir, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert database_tables(database) == expected


def config_for(db, input_dir, tmp_path) -> OrdersConfig:
    return OrdersConfig(  # run in this process's JVM: the password from a file (tests/jobs/support)
        input=str(input_dir),
        db_url=db.jdbc_url,
        db_user=db.user,
        password_file=str(db.password_file),
        checkpoint_interval="300 ms",
        checkpoint_dir=str(tmp_path / "checkpoints"),
        extra_settings=FAILOVER_SETTINGS,
    )


class NaiveStock:
    """The control's sink: each move adds its change to the stock at once, at least once, as
    a job without the kit's statements and positions would."""

    def __init__(self, config: OrdersConfig):
        self.sink = (
            connected_builder(config)
            .set_row_type(MOVE_ROW_TYPE)
            .add_statement(
                "INSERT INTO stock (sku, warehouse, quantity, moves) "
                "VALUES (:sku, :warehouse, :change, 1) ON CONFLICT (sku, warehouse) DO UPDATE "
                "SET quantity = stock.quantity + :change, moves = stock.moves + 1"
            )
            .set_sink_id("orders-naive")
            .set_mode("at_least_once")
            .build()
        )

    def attach(self, streams):
        return streams["stock_moves"].sink_to(self.sink)


@pytest.mark.chaos
def test_a_sink_failure_then_restore_is_exact(database, tmp_path):
    input_dir = write_inputs(tmp_path / "input")
    config = config_for(database, input_dir, tmp_path)
    run_with_a_sink_failure(orders, config, tmp_path, build_sink, sink_id(config))
    assert database_tables(database) == expected_tables(input_dir)


@pytest.mark.chaos
def test_control_a_naive_at_least_once_stock_counts_replayed_moves_twice(
    database, control_seen, tmp_path
):
    input_dir = write_inputs(tmp_path / "input")
    config = config_for(database, input_dir, tmp_path)
    replayed = run_with_a_sink_failure(orders, config, tmp_path, NaiveStock, "orders-naive")
    expected_moves = len(expected_tables(input_dir)[0])
    with database.connect() as conn:
        counted = conn.execute("SELECT coalesce(sum(moves), 0) FROM stock").fetchone()[0]
    control_seen(counted - expected_moves, replayed, "moves counted twice")
    assert counted >= expected_moves + replayed > expected_moves
