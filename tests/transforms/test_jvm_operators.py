"""The generic JVM operators (`transforms.jvm_operators`) on Flink's mini cluster: one job
carries every check (a job start costs ~10 s)."""

from collections import Counter

import pytest
from pyflink.common import Types

from localenv.flink import local_environment
from sinks import add_sink_jars
from transforms import jvm_operators as ops

pytestmark = pytest.mark.minicluster

ROW_TYPE = Types.ROW_NAMED(
    ["key", "fingerprint", "amount", "account"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING()],
)
BIG = 2**63 - 1
ROWS = [
    ("k1", "a", 5, "x"),
    ("k2", "b", 7, "y"),
    ("k1", "a", 5, "x"),
    ("k1", "c", 1, "x"),
    ("k3", "d", BIG, "big"),
    ("k4", "e", BIG, "big"),
    ("k2", "b", -7, "y"),
]


def test_dedupe_sums_projection_and_batches_on_the_jvm():
    from pyflink.common import Row

    env = local_environment(parallelism=1)
    add_sink_jars(env)
    rows = env.from_collection([Row(*r) for r in ROWS], type_info=ROW_TYPE)

    def tagged(stream, tag):
        return stream.map(
            lambda r, t=tag: f"{t}:" + ",".join(str(v) for v in r), output_type=Types.STRING()
        )

    deduped = ops.deduplicate(rows, "key", "fingerprint")
    sums = ops.sum_per_checkpoint(rows, ["account"], "amount", sum_as="total", count_as="n")
    renamed = ops.project(
        deduped.conflicts,
        {"id": "key", "was": "fingerprint", "note": None},
        Types.ROW_NAMED(["note"], [Types.STRING()]),
    )
    round_trip = ops.unbatch(ops.batch(rows, 3))
    out = tagged(deduped.first_seen, "first").union(
        tagged(deduped.duplicates, "duplicate"),
        tagged(renamed, "conflict"),
        tagged(sums, "sum"),
        tagged(round_trip, "batched"),
    )
    with out.execute_and_collect("jvm-operators") as results:
        lines = list(results)

    by_tag = Counter(line.split(":", 1)[0] for line in lines)
    assert sorted(x for x in lines if x.startswith("first:")) == [
        "first:k1,a,5,x",
        "first:k2,b,7,y",
        f"first:k3,d,{BIG},big",
        f"first:k4,e,{BIG},big",
    ]
    # same key, same fingerprint: duplicate (even with another amount: the fingerprint decides)
    assert sorted(x for x in lines if x.startswith("duplicate:")) == [
        "duplicate:k1,a,5,x",
        "duplicate:k2,b,-7,y",
    ]
    # renamed, and a field without a source: NULL
    assert [x for x in lines if x.startswith("conflict:")] == ["conflict:k1,c,None"]
    # exact beyond 64 bits; one row per account (a bounded job: one emit at end of input)
    assert sorted(x for x in lines if x.startswith("sum:")) == [
        f"sum:big,{2 * BIG},2",
        "sum:x,11,3",
        "sum:y,0,2",
    ]
    assert [x for x in lines if x.startswith("batched:")] == [
        "batched:" + ",".join(str(v) for v in r) for r in ROWS
    ]
    assert by_tag == {"first": 4, "duplicate": 2, "conflict": 1, "sum": 3, "batched": 7}
