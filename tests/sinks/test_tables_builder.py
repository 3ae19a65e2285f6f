"""The Python builder's checks of commit scopes and several tables, made before any JVM runs."""

import pytest
from pyflink.common import Types

from sinks import CommitScope, SinkConfigurationError, TwoPhaseCommitSink

LEDGER = Types.ROW_NAMED(["event_id", "amount"], [Types.STRING(), Types.LONG()])
TOTALS = Types.ROW_NAMED(["k", "n"], [Types.STRING(), Types.LONG()])


def books():
    return (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url("jdbc:postgresql://127.0.0.1:5432/db")
        .set_sink_id("books")
        .add_table("ledger", LEDGER, ["INSERT INTO ledger VALUES (:event_id, :amount)"])
        .add_table("totals", TOTALS, "INSERT INTO totals VALUES (:k, :n)")
        .set_commit_scope("checkpoint")
    )


def test_tables_validate_and_keep_their_order():
    builder = books()
    builder._validate()
    assert [name for name, _, _ in builder._tables] == ["ledger", "totals"]
    assert builder._tables[1][2] == ["INSERT INTO totals VALUES (:k, :n)"]
    assert builder._commit_scope is CommitScope.CHECKPOINT


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda b: b.set_row_type(LEDGER), "drop set_row_type/add_statement"),
        (lambda b: b.add_statement("SELECT 1"), "drop set_row_type/add_statement"),
        (lambda b: b.add_table("ledger", LEDGER, ["SELECT :amount"]), "added twice"),
        (lambda b: b.add_table("x", TOTALS, ["SELECT :amount"]), "table 'x': statement names"),
        (lambda b: b.add_table("y", TOTALS, []), "table 'y': give at least one statement"),
    ],
)
def test_table_mistakes_are_refused(change, needle):
    builder = books()
    change(builder)
    with pytest.raises(SinkConfigurationError, match=needle):
        builder._validate()


def test_a_table_needs_a_named_row_type():
    with pytest.raises(SinkConfigurationError, match="ROW_NAMED"):
        books().add_table("z", Types.LONG(), ["SELECT 1"])


def test_unknown_scope_is_refused():
    with pytest.raises(SinkConfigurationError, match="'subtask' or 'checkpoint'"):
        books().set_commit_scope("job")


def test_attach_wants_one_stream_per_table():
    sink = TwoPhaseCommitSink(None, tables=["ledger", "totals"])
    with pytest.raises(SinkConfigurationError, match=r"missing \['totals'\]"):
        sink.attach({"ledger": object()})
    with pytest.raises(SinkConfigurationError, match=r"unknown \['other'\]"):
        sink.attach({"ledger": object(), "totals": object(), "other": object()})
    with pytest.raises(SinkConfigurationError, match="use stream.sink_to"):
        TwoPhaseCommitSink(None).attach({"ledger": object()})
