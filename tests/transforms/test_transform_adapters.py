"""The PyFlink adapters run the same Beam DoFns/CombineFn on Flink's mini cluster.

One job (job start costs ~10 s) carries several checks: DoFn lifecycle, TaggedOutput to
side outputs, finish_bundle outputs, the payments parse DoFn on the corpus and the
balances CombineFn per key. Unsupported DoFns are refused while the job is built.
"""

import os
import uuid
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam import pvalue
from apache_beam.transforms.userstate import BagStateSpec
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from tests.corpus import load_corpus
from tests.harness.streams import source_lines_stream
from transforms import beam as pb
from transforms import flink_adapters as fa
from transforms.lines import SourceLine
from transforms.payments import Payment, Rejection, parse_line, rejected_row
from transforms.reference import process_lines

pytestmark = pytest.mark.minicluster


class LifecycleDoFn(beam.DoFn):
    """Logs its lifecycle to a file per instance; odd numbers go to the 'odd' tag."""

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self.path = None

    def _log(self, event):
        with open(self.path, "a") as f:
            f.write(event + "\n")

    def setup(self):
        self.path = os.path.join(self.log_dir, f"{uuid.uuid4().hex}.log")
        self._log("setup")

    def start_bundle(self):
        self._log("start_bundle")

    def process(self, element):
        self._log("process")
        if element % 2:
            yield pvalue.TaggedOutput("odd", element)
        else:
            yield element * 10

    def teardown(self):
        self._log("teardown")


class BufferingDoFn(beam.DoFn):
    """Emits everything from finish_bundle (as WindowedValues, as Beam requires)."""

    def start_bundle(self):
        self.buffer = []

    def process(self, element):
        self.buffer.append(element)

    def finish_bundle(self):
        for element in self.buffer:
            yield WindowedValue(element + 1000, MIN_TIMESTAMP, [GlobalWindow()])


class StatefulDoFn(beam.DoFn):
    SEEN = BagStateSpec("seen", beam.coders.StrUtf8Coder())

    def process(self, element, seen=beam.DoFn.StateParam(SEEN)):
        yield element


class WindowDoFn(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam):
        yield element


class SideInputDoFn(beam.DoFn):
    def process(self, element, lookup):
        yield element


def _tag(label):
    return lambda value: (label, value)


@pytest.fixture(scope="module")
def env():
    from localenv.flink import local_environment

    return local_environment(parallelism=2)


def test_unsupported_dofns_fail_when_the_job_is_built(env):
    numbers = env.from_collection([1, 2, 3])
    for dofn, words in [
        (StatefulDoFn(), "state"),
        (WindowDoFn(), "window"),
        (SideInputDoFn(), "side inputs"),
    ]:
        with pytest.raises(fa.UnsupportedDoFnError, match=words):
            fa.apply_dofn(numbers, dofn)


def test_dofns_and_combine_fn_run_in_pyflink(env, tmp_path):
    from pyflink.common import Types

    cases = load_corpus()
    lines = [SourceLine("corpus", case.line_number, case.line) for case in cases]
    numbers = env.from_collection(list(range(1, 101)), type_info=Types.INT())

    lifecycle = fa.apply_dofn(numbers, LifecycleDoFn(str(tmp_path)), side_outputs={"odd": None})
    buffered = fa.apply_dofn(numbers, BufferingDoFn())
    parsed = fa.apply_dofn(
        source_lines_stream(env, lines), pb.ParsePaymentFn(), side_outputs={pb.REJECTED: None}
    )
    reference = process_lines(lines)
    ledger = source_lines_stream(env, reference.ledger, name="ReferenceLedger")
    balances = fa.combine_per_key(
        ledger,
        pb.BalanceCombineFn(),
        key_selector=lambda row: (row.account_id, row.currency),
        value_selector=lambda row: row.amount_minor,
    )

    p = fa.PICKLED
    tagged = lifecycle.main.map(_tag("even"), output_type=p).union(
        lifecycle["odd"].map(_tag("odd"), output_type=p),
        buffered.main.map(_tag("buffered"), output_type=p),
        parsed.main.map(_tag("payment"), output_type=p),
        parsed.rejected.map(_tag("rejected"), output_type=p),
        balances.map(_tag("balance"), output_type=p),
    )
    with tagged.execute_and_collect() as results:
        got = list(results)
    by_label = {}
    for label, value in got:
        by_label.setdefault(label, []).append(value)

    # DoFn with TaggedOutput -> main and side output
    assert sorted(by_label["even"]) == [n * 10 for n in range(2, 101, 2)]
    assert sorted(by_label["odd"]) == list(range(1, 101, 2))
    # lifecycle per instance (one per subtask): setup, start_bundle, process..., teardown
    logs = [Path(path).read_text().split() for path in tmp_path.glob("*.log")]
    assert len(logs) == 2
    for log in logs:
        assert log[:2] == ["setup", "start_bundle"] and log[-1] == "teardown"
        assert set(log[2:-1]) == {"process"}
    assert sum(log.count("process") for log in logs) == 100
    # finish_bundle outputs are emitted (bundle_size defaults to 1 for such DoFns)
    assert sorted(by_label["buffered"]) == [n + 1000 for n in range(1, 101)]
    # the payments parse DoFn: same payments and rejected rows as the pure function
    expected = [
        parse_line(case.line, source="corpus", line_number=case.line_number) for case in cases
    ]
    assert sorted(by_label["payment"]) == sorted(r for r in expected if isinstance(r, Payment))
    assert sorted(by_label["rejected"], key=lambda r: r.line_number) == [
        rejected_row(r) for r in expected if isinstance(r, Rejection)
    ]
    assert Counter(r.reason for r in by_label["rejected"])["invalid_encoding"] == 5
    # CombineFn per key: latest value per key equals the reference balances
    final = {}
    for key, (balance, count) in by_label["balance"]:
        if count > final.get(key, (0, 0))[1]:
            final[key] = (balance, count)
    assert final == {
        (b.account_id, b.currency): (b.balance_minor, b.event_count) for b in reference.balances
    }


def test_another_jobs_rule_runs_through_the_generic_line_adapter(env):
    """Numbered lines -> typed rows + rejected rows for a job that is not payments: its rule is
    one validate function (tests/harness/orders.py), batched and unbatched, two calls in one
    job with names of their own."""
    from pyflink.common import Row, Types

    from sinks import add_sink_jars
    from tests.harness.orders import ORDER_REJECTS, ORDER_TYPE, order_line, validate_order

    add_sink_jars(env)  # the batches are JVM operators
    line_type = Types.ROW_NAMED(
        ["source", "line_number", "line"],
        [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())],
    )
    lines = [
        order_line("o1", 2),
        order_line("o2", 0),
        b"\xff\n",
        order_line("o3", 7, end=b""),
        order_line("o4", None),
    ]
    numbered = env.from_collection(
        [Row("orders.jsonl", n, line) for n, line in enumerate(lines, 1)], type_info=line_type
    )
    batched = fa.parse_lines(numbered, validate_order, ORDER_TYPE, ORDER_REJECTS, batch_lines=2)
    single = fa.parse_lines(
        numbered,
        validate_order,
        ORDER_TYPE,
        ORDER_REJECTS,
        batch_lines=None,
        name="parse-orders-one-by-one",
        rejected_name="rejected-orders-one-by-one",
    )
    p = fa.PICKLED
    tagged = batched.rows.map(lambda r: ("rows", tuple(r)), output_type=p).union(
        batched.rejected.map(lambda r: ("rejected", r.as_dict()), output_type=p),
        single.rows.map(lambda r: ("single rows", tuple(r)), output_type=p),
        single.rejected.map(lambda r: ("single rejected", r.as_dict()), output_type=p),
    )
    with tagged.execute_and_collect("orders") as results:
        got = list(results)
    by_label = {}
    for label, value in got:
        by_label.setdefault(label, []).append(value)

    rows = [
        ("o1", "sku-1", "wh-1", "sale", 2, -2, "orders.jsonl", 1),
        ("o3", "sku-1", "wh-1", "sale", 7, -7, "orders.jsonl", 4),
    ]
    rejected = [
        ("orders.jsonl", 2, "invalid_quantity", lines[1][:-1].decode(), "quantity"),
        ("orders.jsonl", 3, "invalid_encoding", "\\xff"),
        ("orders.jsonl", 5, "missing_field", lines[4][:-1].decode(), "quantity"),
    ]
    for prefix in ("", "single "):
        assert sorted(by_label[prefix + "rows"]) == rows
        got_rejected = sorted(by_label[prefix + "rejected"], key=lambda r: r["line_number"])
        assert [list(r) for r in got_rejected] == [list(ORDER_REJECTS.field_names)] * 3
        assert [tuple(r.values())[: len(e)] for r, e in zip(got_rejected, rejected)] == rejected
