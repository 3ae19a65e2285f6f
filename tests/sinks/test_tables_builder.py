"""The Python builder's part of commit scopes and several tables: what only Python can check
(a named row type per table, tables instead of the single table's settings, one stream per
table) fails at once; the rest is recorded and checked by the Java `SinkConfigBuilder`
(`java_config()`, no database), its errors naming the Python setters."""

import pytest
from pyflink.common import Types

from sinks import CommitScope, SinkConfigurationError, TwoPhaseCommitSink

pytestmark = [pytest.mark.minicluster]  # java_config() needs the JVM and the sink's jar

LEDGER = Types.ROW_NAMED(["event_id", "amount"], [Types.STRING(), Types.LONG()])
TOTALS = Types.ROW_NAMED(["k", "n"], [Types.STRING(), Types.LONG()])


@pytest.fixture(scope="module")
def flink_env():
    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(parallelism=1)
    add_sink_jars(env)
    return env


def books():
    return (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url("jdbc:postgresql://127.0.0.1:5432/db")
        .set_sink_id("books")
        .add_table("ledger", LEDGER, ["INSERT INTO ledger VALUES (:event_id, :amount)"])
        .add_table("totals", TOTALS, "INSERT INTO totals VALUES (:k, :n)")
        .set_commit_scope(CommitScope.CHECKPOINT)
    )


def test_tables_are_recorded_in_order_and_reach_the_java_config(flink_env):
    builder = books()
    assert builder._table_names() == ["ledger", "totals"]
    # With the fields' SQL types, for statements that read the batch as tpc_batch.
    totals = ("totals", ["k", "n"], ["INSERT INTO totals VALUES (:k, :n)"], ["text", "int8"])
    assert ("addTable", totals) in builder._calls
    config = builder.java_config()
    assert config.isMultiTable()
    assert [t.name() for t in config.tables()] == ["ledger", "totals"]
    assert config.tableIndex("totals") == 1
    assert str(config.commitScope()) == "CHECKPOINT"
    assert list(config.fieldNames()) == ["event_id", "amount"]  # the first table's


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda b: b.set_row_type(LEDGER), "add_table: .*drop set_row_type"),
        (lambda b: b.add_statement("SELECT 1"), "add_table: .*drop add_statement"),
        (lambda b: b.add_table("ledger", LEDGER, ["SELECT :amount"]), "'ledger' is added twice"),
        (lambda b: b.add_table("x", TOTALS, ["SELECT :amount"]), "add_table: table 'x': "),
        (lambda b: b.add_table("y", TOTALS, []), "add_table: table 'y': give at least one"),
        (lambda b: b.add_table("no-dash", TOTALS, ["SELECT :k"]), "add_table: table name"),
        (lambda b: b.set_commit_scope("job"), "set_commit_scope: unknown commit scope 'job'"),
        (lambda b: b.set_mode("prepared"), "set_commit_scope: .*needs commit mode 'staged'"),
    ],
)
def test_table_and_scope_mistakes_are_refused(flink_env, change, needle):
    builder = books()
    change(builder)
    with pytest.raises(SinkConfigurationError, match=needle):
        builder.java_config()


def test_a_table_needs_a_named_row_type():
    with pytest.raises(SinkConfigurationError, match="ROW_NAMED"):
        books().add_table("z", Types.LONG(), ["SELECT 1"])


def test_attach_wants_one_stream_per_table():
    sink = TwoPhaseCommitSink(None, tables=["ledger", "totals"])
    with pytest.raises(SinkConfigurationError, match=r"missing \['totals'\]"):
        sink.attach({"ledger": object()})
    with pytest.raises(SinkConfigurationError, match=r"unknown \['other'\]"):
        sink.attach({"ledger": object(), "totals": object(), "other": object()})
    with pytest.raises(SinkConfigurationError, match="use stream.sink_to"):
        TwoPhaseCommitSink(None).attach({"ledger": object()})
