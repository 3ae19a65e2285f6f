"""Set-based apply: the sink runs a single-row `INSERT ... VALUES` as one statement per batch
(`SetBasedInsert`), and must store exactly what the row-by-row form stores, for every type it
carries, hostile strings and NULLs included; a batch an upsert cannot take in one statement (one
key twice) falls back to row by row."""

import datetime as dt
import math
from decimal import Decimal

import pytest
from pyflink.common import Instant, Row, Types

from localenv.flink import local_environment
from sinks import TwoPhaseCommitSink, add_sink_jars

pytestmark = pytest.mark.minicluster

FIELDS = ["id", "s", "l", "i", "d", "f", "b", "n", "ts", "tstz", "day", "tod"]
ROW_TYPE = Types.ROW_NAMED(
    FIELDS,
    [
        Types.LONG(),
        Types.STRING(),
        Types.LONG(),
        Types.INT(),
        Types.DOUBLE(),
        Types.FLOAT(),
        Types.BOOLEAN(),
        Types.BIG_DEC(),
        Types.SQL_TIMESTAMP(),
        Types.INSTANT(),
        Types.SQL_DATE(),
        Types.SQL_TIME(),
    ],
)
COLUMNS = (
    "id bigint PRIMARY KEY, s text, l bigint, i int, d double precision, f real, "
    "b boolean, n numeric, ts timestamp, tstz timestamptz, day date, tod time"
)
HOSTILE = [
    "",
    " ",
    "NULL",
    "null",
    '"',
    "'",
    "\\",
    "\\N",
    "{a,b}",
    "{",
    "}",
    ",",
    "a\tb",
    "line\nbreak",
    "\r",
    "é ü ß",
    "日本語",
    "🙂 emoji",
    "\u200b",
    "\uffff",
    "x" * 10_000,
    '{"json": [1, 2]}',
    "$$",
    "E'\\x41'",
    "::int",
    ":id",
]


def typed_rows():
    rows = []
    for k, text in enumerate(HOSTILE):
        rows.append(
            Row(
                k,
                text,
                -(2**63) + k if k % 2 else 2**63 - 1 - k,
                k - 5,
                [0.1, -1e308, math.inf, -math.inf, 5e-324][k % 5],
                1.5 * k,
                k % 3 == 0,
                Decimal("-12345678901234567890.000000001") + k,
                dt.datetime(1999, 12, 31, 23, 59, 59, 999_999),
                Instant.of_epoch_milli(1_709_208_000_000 + 1001 * k),
                dt.date(2000 + k, 1, 1),
                dt.time(k % 24, 30),
            )
        )
    # a whole batch (batch size 4) with the fields NULL: passed as untyped NULLs (PyFlink cannot
    # pass a None INSTANT)
    for k in range(5):
        rows.append(
            Row(
                100 + k,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Instant.of_epoch_milli(0),
                None,
                None,
            )
        )
    return rows


INSERT = (
    f"INSERT INTO {{table}} ({', '.join(FIELDS)}) VALUES ({', '.join(':' + f for f in FIELDS)})"
)
# The same effect in a form the rewrite leaves alone, so it runs row by row.
INSERT_PER_ROW = (
    f"INSERT INTO {{table}} ({', '.join(FIELDS)}) SELECT {', '.join(':' + f for f in FIELDS)}"
)
HOT_TYPE = Types.ROW_NAMED(["k", "amount"], [Types.STRING(), Types.LONG()])
UPSERT = (
    "INSERT INTO {table} (k, total, events) VALUES (:k, :amount, 1) ON CONFLICT (k) "
    "DO UPDATE SET total = {table}.total + EXCLUDED.total, events = {table}.events + 1"
)


def sink(db, sink_id, row_type, sql, mode):
    return (
        TwoPhaseCommitSink.builder()
        .set_jdbc_url(db.jdbc_url)
        .set_user(db.user)
        .set_password(db.password)
        .set_row_type(row_type)
        .add_statement(sql)
        .set_sink_id(sink_id)
        .set_mode(mode)
        .set_batch_size(4)
        .build()
    )


def fetch(db, sql):
    with db.connect() as conn:
        return conn.execute(sql).fetchall()


def test_set_based_insert_stores_what_row_by_row_stores(database):
    with database.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE statements (tbl text)")
        conn.execute(
            "CREATE FUNCTION count_statement() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN INSERT INTO statements VALUES (TG_TABLE_NAME); RETURN NULL; END$$"
        )
        for table in ("set_prepared", "set_staged", "set_alo", "per_row"):
            conn.execute(f"CREATE TABLE {table} ({COLUMNS})")
            # fires once per INSERT statement: shows which form ran
            conn.execute(
                f"CREATE TRIGGER count AFTER INSERT ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION count_statement()"
            )
        for table in ("hot_prepared", "hot_staged", "hot_alo"):
            conn.execute(f"CREATE TABLE {table} (k text PRIMARY KEY, total bigint, events int)")
    env = local_environment(parallelism=1, settings={"execution.checkpointing.interval": "1 s"})
    add_sink_jars(env)
    rows = env.from_collection(typed_rows(), type_info=ROW_TYPE)
    for table, mode in (
        ("set_prepared", "prepared"),
        ("set_staged", "staged"),
        ("set_alo", "at_least_once"),
    ):
        rows.sink_to(
            sink(database, table.replace("_", "-"), ROW_TYPE, INSERT.format(table=table), mode)
        )
    rows.sink_to(
        sink(database, "per-row", ROW_TYPE, INSERT_PER_ROW.format(table="per_row"), "prepared")
    )
    # "a" three times in one batch of 4: one statement cannot update it twice
    hot = env.from_collection(
        [Row("a", 1), Row("a", 2), Row("b", 5), Row("a", 4), Row("b", 10), Row("c", 0)],
        type_info=HOT_TYPE,
    )
    for table, mode in (
        ("hot_prepared", "prepared"),
        ("hot_staged", "staged"),
        ("hot_alo", "at_least_once"),
    ):
        hot.sink_to(
            sink(database, table.replace("_", "-"), HOT_TYPE, UPSERT.format(table=table), mode)
        )
    env.execute("set-based-apply")

    expected = fetch(database, "SELECT * FROM per_row ORDER BY id")
    assert len(expected) == len(typed_rows())
    assert [r[1] for r in expected[: len(HOSTILE)]] == HOSTILE
    for table in ("set_prepared", "set_staged", "set_alo"):
        assert fetch(database, f"SELECT * FROM {table} ORDER BY id") == expected, table
    statements = dict(fetch(database, "SELECT tbl, count(*) FROM statements GROUP BY tbl"))
    assert statements["per_row"] == len(expected)
    batches = -(-len(expected) // 4)
    for table in ("set_prepared", "set_staged", "set_alo"):
        # one statement per batch (checkpoints may cut batches short)
        assert batches <= statements[table] < len(expected) / 2, table
    for table in ("hot_prepared", "hot_staged", "hot_alo"):
        assert fetch(database, f"SELECT * FROM {table} ORDER BY k") == [
            ("a", 7, 3),
            ("b", 15, 2),
            ("c", 0, 1),
        ], table


def test_untyped_strings_still_reach_uuid_and_enum_columns(database):
    """With stringtype=unspecified PostgreSQL casts a string to the column's type; a text array
    would not be cast, so such batches run row by row."""
    with database.connect(autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('ok', 'bad')")
        conn.execute("CREATE TABLE typed_ids (id uuid PRIMARY KEY, m mood, n bigint)")
    row_type = Types.ROW_NAMED(["id", "m", "n"], [Types.STRING(), Types.STRING(), Types.LONG()])
    env = local_environment(parallelism=1, settings={"execution.runtime-mode": "BATCH"})
    add_sink_jars(env)
    rows = [
        Row(f"00000000-0000-0000-0000-{k:012d}", "ok" if k % 2 else "bad", k) for k in range(10)
    ]
    (
        env.from_collection(rows, type_info=row_type).sink_to(
            TwoPhaseCommitSink.builder()
            .set_jdbc_url(database.jdbc_url)
            .set_user(database.user)
            .set_password(database.password)
            .set_row_type(row_type)
            .add_statement("INSERT INTO typed_ids (id, m, n) VALUES (:id, :m, :n)")
            .set_connection_property("stringtype", "unspecified")
            .set_sink_id("typed-ids")
            .set_mode("staged")
            .set_batch_size(4)
            .build()
        )
    )
    env.execute("untyped-strings")
    assert fetch(database, "SELECT id::text, m::text, n FROM typed_ids ORDER BY n") == [
        tuple(r) for r in rows
    ]


@pytest.mark.parametrize(
    "sql, set_based",
    [
        ("INSERT INTO t (a, b) VALUES (:a, CAST(:b AS timestamptz))", True),
        ("insert into t values (:a, :b) on conflict (a) do update set b = excluded.b", True),
        ("INSERT INTO t (a) VALUES (:a) RETURNING id", True),
        ("INSERT INTO t (a) VALUES (':a', :a) -- VALUES (:b), (:c)", True),
        ('INSERT INTO "values" (a) VALUES (:a);', True),
        ("INSERT INTO t (a) VALUES (:a), (:b)", False),  # several rows
        ("INSERT INTO t (a, b) VALUES (:a, DEFAULT)", False),
        ("INSERT INTO t (a) VALUES ((SELECT max(a) + :a FROM t))", False),  # sees earlier rows
        ("INSERT INTO t (a) SELECT :a WHERE NOT EXISTS (SELECT 1 FROM t)", False),
        ("INSERT INTO t (a) VALUES (:a) ON CONFLICT (a) DO UPDATE SET b = :b", False),
        ("UPDATE t SET a = :a WHERE id = :id", False),
        ("INSERT INTO t (a) VALUES (1)", False),  # no field
    ],
)
def test_which_statements_are_applied_set_based(sql, set_based):
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    from sinks import add_sink_jars  # noqa: F401 (the class must be loadable)
    from sinks.build import sink_jar

    add_jars_to_context_class_loader([sink_jar().resolve().as_uri()])
    jvm = get_gateway().jvm
    rewrite = jvm.dev.tpc.sink.SetBasedInsert.of(sql)
    assert rewrite.isPresent() == set_based


def test_the_set_based_form_of_an_upsert():
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    from sinks.build import sink_jar

    add_jars_to_context_class_loader([sink_jar().resolve().as_uri()])
    gateway = get_gateway()
    rewrite = gateway.jvm.dev.tpc.sink.SetBasedInsert.of(
        "INSERT INTO b (k, n, note) VALUES (:k, :n::numeric, ':k') ON CONFLICT (k) DO UPDATE "
        "SET n = b.n + EXCLUDED.n"
    ).get()
    types = gateway.new_array(gateway.jvm.java.lang.String, 2)
    types[0] = "text"  # n is NULL in the whole batch: passed as an untyped NULL
    assert rewrite.sql(types) == (
        "INSERT INTO b (k, n, note) SELECT tpc_batch.\"k\", NULL::numeric, ':k' FROM "
        'unnest(CAST(? AS text[]), CAST(? AS text[])) AS tpc_batch("k", "n") ON CONFLICT (k) '
        "DO UPDATE SET n = b.n + EXCLUDED.n"
    )
