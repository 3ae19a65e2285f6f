"""The payments job on the local mini cluster (parallelism 2) against the pure transforms on
the same input: the bad-input corpus plus 20,000 generated events with duplicates."""

import pytest

from jobs.kit.environment import create_environment
from jobs.kit.line_sources import file_source
from jobs.payments import build_pipeline, build_sinks, prepare_database
from jobs.reconcile import reconcile
from tests.jobs.support import (
    database_outcome,
    expected_in_database_shape,
    expected_outcome,
    payments_config,
    write_inputs,
)

pytestmark = [pytest.mark.minicluster]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = write_inputs(tmp_path_factory.mktemp("payments") / "input")
    return directory, expected_outcome(directory)


def run_job(config):
    prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_source(config.input), build_sinks(config), config)
    env.execute("payments-test")


def test_job_matches_the_pure_transforms_and_accounts_for_every_line(database, inputs, tmp_path):
    input_dir, expected = inputs
    run_job(payments_config(database, input_dir, tmp_path))

    ledger, balances, rejected, duplicates = database_outcome(database)
    want_ledger, want_balances, want_rejected, want_duplicates = expected_in_database_shape(
        expected
    )
    assert len(ledger) == len(want_ledger) and ledger == want_ledger
    assert balances == want_balances
    assert len(rejected) == len(want_rejected) and rejected == want_rejected
    assert duplicates == want_duplicates
    with database.connect() as conn:
        books = reconcile(conn, str(input_dir))
    assert books.lines_read == expected.lines
    assert books.every_line_accounted and books.books_balance, books.report()


def test_thread_mode_with_rocksdb_state_gives_the_same_tables(database, tmp_path):
    """The other execution mode and state backend the job offers: same result."""
    input_dir = write_inputs(tmp_path / "input", events=3_000, seed=5)
    run_job(
        payments_config(
            database, input_dir, tmp_path, execution_mode="thread", state_backend="rocksdb"
        )
    )
    assert database_outcome(database) == expected_in_database_shape(expected_outcome(input_dir))


@pytest.mark.parametrize("scope, sinks_built", [("checkpoint", 1), ("subtask", 4)])
def test_commit_log_retention_reaches_every_sink_the_job_builds(
    database, tmp_path, scope, sinks_built
):
    """`--commit-log-retention` bounds the commit log of a long run (the soak's "2 min"). The
    checkpoint scope builds one sink for all tables (the kit's `tables_sink`), the subtask
    scope one per table: each must carry it, or its commit log keeps the default 7 days."""

    def retention_seconds(**settings) -> list[int]:
        config = payments_config(database, tmp_path, tmp_path, commit_scope=scope, **settings)
        prepare_database(config)
        create_environment(config)  # the sink's jars, for the builders' checks
        sinks = build_sinks(config)
        return [
            sink.get_java_function().config().commitLogRetentionSeconds()
            for sink in sinks
            if sink is not None
        ]

    assert retention_seconds(commit_log_retention="2 min") == [120] * sinks_built
    assert retention_seconds() == [7 * 24 * 3600] * sinks_built  # without the flag: the default
