"""The committer's housekeeping (`Housekeeping.java`): it trims the commit log to the sink's
retention, also in a short bounded job, but keeps the newest row of each lineage and subtask;
and it warns, in the log and the gauge `tpcOldestPreparedTransactionAgeSeconds`, about the
sink id's prepared transactions older than a threshold."""

import datetime as dt
import time
import uuid

import pytest
from pyflink.common import Row, Types

from localenv.flink import local_environment
from sinks import SinkConfigurationError, TwoPhaseCommitSink, add_sink_jars

pytestmark = pytest.mark.minicluster

ROW_TYPE = Types.ROW_NAMED(["id"], [Types.LONG()])


@pytest.fixture(scope="module")
def jvm():
    from pyflink.java_gateway import get_gateway

    add_sink_jars(local_environment(parallelism=1))
    return get_gateway().jvm


def builder(db, sink_id):
    return (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(db.jdbc_url)
        .set_user(db.user)
        .set_password(db.password)
        .set_row_type(ROW_TYPE)
        .add_statement("INSERT INTO hk_target (id) VALUES (:id)")
        .set_sink_id(sink_id)
        .set_mode("staged")
    )


def prepare(db, gid):
    with db.connect(autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT txid_current()")
        conn.execute(f"PREPARE TRANSACTION '{gid}'")


def roll_back_prepared(db):
    with db.connect(autocommit=True) as conn:
        for (gid,) in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall():
            conn.execute(f"ROLLBACK PREPARED '{gid}'")


def logged(text):
    """Whether the in-process JVM's log (FLINK_LOG_DIR, appended to) holds the text."""
    import os
    from pathlib import Path

    return any(
        text in path.read_text(errors="replace")
        for path in Path(os.environ["FLINK_LOG_DIR"]).glob("*.log*")
    )


def test_retention_and_warning_threshold_settings(jvm, database):
    config = builder(database, "hk").java_config()
    assert config.commitLogRetentionSeconds() == 7 * 24 * 3600  # defaults
    assert config.preparedTransactionWarningSeconds() == 15 * 60
    config = (
        builder(database, "hk")
        .set_commit_log_retention_hours(dt.timedelta(minutes=90))
        .set_prepared_transaction_warning_s(30)
        .java_config()
    )
    assert (config.commitLogRetentionSeconds(), config.preparedTransactionWarningSeconds()) == (
        5400,
        30,
    )
    assert (
        builder(database, "hk")
        .set_commit_log_retention_hours(1 / 3600)
        .java_config()
        .commitLogRetentionSeconds()
        == 1
    )
    for bad in (0, -1, 0.0001, float("nan"), "soon"):
        with pytest.raises(SinkConfigurationError):
            builder(database, "hk").set_commit_log_retention_hours(bad).java_config()
        with pytest.raises(SinkConfigurationError):
            builder(database, "hk").set_prepared_transaction_warning_s(bad).java_config()


def test_old_prepared_transactions_are_reported_by_age_for_this_sink_id_only(jvm, database):
    """You cannot back-date `prepared`: the threshold is 1 s, and the transactions age 2 s."""
    sink_id = f"hk_warn{uuid.uuid4().hex[:6]}"  # unique: the log is appended to
    config = builder(database, sink_id).set_prepared_transaction_warning_s(1).java_config()
    old_gid = f"tpc:{sink_id}:0:7:{uuid.uuid4().hex}.0"
    try:
        prepare(database, old_gid)
        prepare(database, f"tpc:hkXwarn:0:7:{uuid.uuid4().hex}.0")  # LIKE would match it
        time.sleep(2.2)
        young_gid = f"tpc:{sink_id}:1:8:{uuid.uuid4().hex}.0"
        prepare(database, young_gid)
        housekeeping = jvm.dev.tpc.sink.Housekeeping(config)
        assert housekeeping.oldestPreparedTransactionAgeSeconds() == 0
        connection = jvm.dev.tpc.sink.Connections.open(config, "tpc-housekeeping-test")
        try:
            assert list(housekeeping.checkPreparedTransactions(connection)) == [old_gid]
            assert 2 <= housekeeping.oldestPreparedTransactionAgeSeconds() < 30
            assert logged(
                f"sink '{sink_id}' has 1 prepared transaction(s) older than 1 s: {old_gid}"
            )
            roll_back_prepared(database)
            assert list(housekeeping.checkPreparedTransactions(connection)) == []
            assert housekeeping.oldestPreparedTransactionAgeSeconds() == 0
        finally:
            connection.close()
    finally:
        roll_back_prepared(database)


def test_a_short_bounded_job_trims_the_commit_log_and_warns(jvm, database):
    """A bounded job commits a handful of times; its committer trims at the first commit. Rows
    older than the retention go, except the newest of each lineage and subtask (the refusal to
    restore an older checkpoint reads them); other sink ids are never touched."""
    run = uuid.uuid4().hex[:6]  # unique: the log is appended to
    sink_id, other = f"hk_trim{run}", f"hkXtrim{run}"
    with database.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE hk_target (id bigint PRIMARY KEY)")
    env = local_environment(parallelism=1, settings={"execution.runtime-mode": "BATCH"})
    add_sink_jars(env)
    # The planted rows below are an earlier history of this sink id, so this start, which
    # restores no checkpoint, is only allowed because its statement is idempotent (a fresh
    # start on a sink id that committed is refused otherwise: tests/jobs/test_reruns.py).
    sink = (
        builder(database, sink_id)
        .set_statements(["INSERT INTO hk_target (id) VALUES (:id) ON CONFLICT (id) DO NOTHING"])
        .set_idempotent_statements()
        .set_commit_log_retention_hours(1)
        .set_prepared_transaction_warning_s(1)
        .build()
    )  # creates the control tables
    with database.connect(autocommit=True) as conn:
        for sid in (sink_id, other):
            for lineage, subtask, counter, age in (
                ("old", 0, 1, "30 days"),
                ("old", 0, 2, "30 days"),
                ("old", 0, 3, "29 days"),
                ("old", 1, 2, "30 days"),  # the only row of subtask 1: newest
                ("recent", 0, 1, "1 minute"),
                ("recent", 0, 2, "1 minute"),
            ):
                conn.execute(
                    "INSERT INTO tpc_commit_log (gid, sink_id, subtask, counter, "
                    "row_count, mode, lineage, written_at) VALUES (%s, %s, %s, %s, 1, "
                    "'STAGED', %s, now() - %s::interval)",
                    (
                        f"tpc:{sid}:{subtask}:{counter}:{lineage}.0",
                        sid,
                        subtask,
                        counter,
                        lineage,
                        age,
                    ),
                )
    # A prepared transaction of the sink id that its writers do not take for theirs (an id
    # they cannot parse), so it survives their clean-up at start and ages past 1 s.
    stray = f"tpc:{sink_id}:stray"
    try:
        prepare(database, stray)
        time.sleep(1.5)  # older than the 1 s threshold by the first commit, however fast
        env.from_collection([Row(k) for k in range(20)], type_info=ROW_TYPE).sink_to(sink)
        env.execute("housekeeping")
        with database.connect() as conn:

            def log_rows(sid, lineage):
                return [
                    tuple(r)
                    for r in conn.execute(
                        "SELECT subtask, counter FROM tpc_commit_log WHERE sink_id = %s AND "
                        "lineage = %s ORDER BY 1, 2",
                        (sid, lineage),
                    )
                ]

            assert log_rows(sink_id, "old") == [(0, 3), (1, 2)]
            assert log_rows(sink_id, "recent") == [(0, 1), (0, 2)]
            assert log_rows(other, "old") == [(0, 1), (0, 2), (0, 3), (1, 2)]
            assert (
                conn.execute(
                    "SELECT count(*) FROM tpc_commit_log WHERE sink_id = %s AND "
                    "lineage NOT IN ('old', 'recent')",
                    (sink_id,),
                ).fetchone()[0]
                >= 1
            )
            assert conn.execute("SELECT count(*) FROM hk_target").fetchone()[0] == 20
        assert logged(f"sink '{sink_id}': trimmed 2 commit-log rows older than 3600 s")
        assert logged(f"sink '{sink_id}' has 1 prepared transaction(s) older than 1 s: {stray}")
    finally:
        roll_back_prepared(database)
