"""The replicated pair of `localenv.postgres.replication`: what its failover keeps.

A synchronous standby has every commit, PREPARE TRANSACTION and COMMIT PREPARED that the
primary acknowledged, so a prepared transaction survives the primary's crash and can be
committed on the promoted standby. Control: an asynchronous standby that fell behind (stopped
while the primary went on) comes up without what the primary committed meanwhile.
"""

from localenv.postgres.replication import ReplicatedPostgres, primary_of


def write_then_prepare(db) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (i int)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("PREPARE TRANSACTION 'committed'")
        conn.execute("COMMIT PREPARED 'committed'")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (2)")
        conn.execute("PREPARE TRANSACTION 'still-prepared'")


def test_a_synchronous_standby_keeps_what_the_primary_acknowledged(adopt_process):
    with ReplicatedPostgres(synchronous=True) as pair:
        db = pair.create_database("sync")
        assert primary_of(db) == (pair.primary.host, pair.primary.port)
        with db.connect() as conn:  # prepared transactions need it on both servers
            assert conn.execute("SHOW max_prepared_transactions").fetchone()[0] == "64"
        write_then_prepare(db)
        pair.kill_primary()
        pair.promote()
        assert primary_of(db) == (pair.standby.host, pair.standby.port)
        with db.connect(autocommit=True) as conn:
            assert conn.execute("SELECT gid FROM pg_prepared_xacts").fetchall() == [
                ("still-prepared",)
            ]
            assert conn.execute("SELECT i FROM t").fetchall() == [(1,)]
            conn.execute("COMMIT PREPARED 'still-prepared'")
            assert sorted(conn.execute("SELECT i FROM t").fetchall()) == [(1,), (2,)]
            # A promoted standby waits for no standby of its own: commits go through.
            assert conn.execute("SHOW synchronous_standby_names").fetchone()[0] == ""


def test_control_a_lagging_asynchronous_standby_loses_what_it_did_not_receive(
    adopt_process, control_seen
):
    with ReplicatedPostgres(synchronous=False) as pair:
        db = pair.create_database("async")
        with db.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE t (i int)")
            conn.execute("INSERT INTO t VALUES (0)")
        pair.wait_caught_up()
        pair.stop_standby_replication()
        write_then_prepare(db)  # acknowledged by the primary alone
        pair.kill_primary()
        pair.start_standby_alone()
        pair.promote()
        with db.connect(autocommit=True) as conn:
            prepared = conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone()[0]
            rows = sorted(i for (i,) in conn.execute("SELECT i FROM t"))
    lost = 2 - (rows.count(1) + prepared)
    control_seen(lost, 2, "acknowledged transactions the asynchronous standby lost")
    assert rows == [0] and prepared == 0
