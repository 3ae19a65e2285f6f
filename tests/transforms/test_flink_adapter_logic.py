"""The PyFlink adapter's DoFn driving and build-time checks, without a JVM.

`DoFnProcessFunction` is called directly (as PyFlink's worker would); nothing here starts
Flink. The same adapters run on the mini cluster in test_transform_adapters.py.
"""

import apache_beam as beam
import pytest
from apache_beam import pvalue
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from pyflink.common import Row
from pyflink.datastream import OutputTag

from transforms import beam as pb
from transforms import flink_adapters as fa
from transforms import payments_flink as pf
from transforms import tables


class Recorder(beam.DoFn):
    def __init__(self):
        super().__init__()
        self.events = []

    def setup(self):
        self.events.append("setup")

    def start_bundle(self):
        self.events.append("start_bundle")

    def process(self, element):
        self.events.append(f"process {element}")
        yield element if element % 2 == 0 else pvalue.TaggedOutput("odd", element)

    def finish_bundle(self):
        self.events.append("finish_bundle")
        yield WindowedValue("flushed", MIN_TIMESTAMP, [GlobalWindow()])

    def teardown(self):
        self.events.append("teardown")


def drive(function, elements):
    function.open(None)
    out = []
    for element in elements:
        out.extend(function.process_element(element, None))
    function.close()
    return out


def test_lifecycle_and_tagged_outputs_with_bundles_of_one():
    odd = OutputTag("odd", fa.PICKLED)
    dofn = Recorder()
    out = drive(fa.DoFnProcessFunction(dofn, {"odd": odd}, bundle_size=1), [2, 3])
    assert out == [2, "flushed", (odd, 3), "flushed"]
    assert dofn.events == [
        "setup",
        "start_bundle",
        "process 2",
        "finish_bundle",
        "start_bundle",
        "process 3",
        "finish_bundle",
        "teardown",
    ]


def test_bundle_size_groups_elements():
    dofn = Recorder()
    out = drive(fa.DoFnProcessFunction(dofn, {"odd": OutputTag("odd", fa.PICKLED)}, 2), [2, 4])
    assert out == [2, 4, "flushed"]
    assert dofn.events.count("start_bundle") == 1 and dofn.events[-1] == "teardown"


def test_output_of_finish_bundle_at_close_fails_loudly_not_silently():
    dofn = Recorder()
    function = fa.DoFnProcessFunction(dofn, {"odd": OutputTag("odd", fa.PICKLED)}, 10)
    function.open(None)
    list(function.process_element(2, None))
    with pytest.raises(RuntimeError, match="finish_bundle emitted 1 element"):
        function.close()
    assert dofn.events[-1] == "teardown"


def test_undeclared_tag_fails():
    function = fa.DoFnProcessFunction(Recorder(), {}, 1)
    function.open(None)
    with pytest.raises(RuntimeError, match="undeclared tag 'odd'"):
        list(function.process_element(3, None))


def test_payments_dofns_are_accepted():
    fa.validate_dofn(pb.ParsePaymentFn())
    fa.validate_dofn(pb.DeduplicateFn())
    fa.validate_combine_fn(pb.BalanceCombineFn())


class WithState(beam.DoFn):
    BAG = BagStateSpec("bag", beam.coders.StrUtf8Coder())

    def process(self, element, bag=beam.DoFn.StateParam(BAG)):
        yield element


class WithTimer(beam.DoFn):
    TIMER = TimerSpec("t", TimeDomain.WATERMARK)

    def process(self, element, timer=beam.DoFn.TimerParam(TIMER)):
        yield element

    @on_timer(TIMER)
    def fire(self):
        yield 1


class WithTimestamp(beam.DoFn):
    def process(self, element, ts=beam.DoFn.TimestampParam):
        yield element


class WithWindow(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam):
        yield element


class WithSideInput(beam.DoFn):
    def process(self, element, table):
        yield element


class WithVarArgs(beam.DoFn):
    def process(self, element, *side_inputs):
        yield element


class WithFinalizer(beam.DoFn):
    def process(self, element, finalizer=beam.DoFn.BundleFinalizerParam):
        yield element


class Unpicklable(beam.DoFn):
    def __init__(self):
        super().__init__()
        import threading

        self.lock = threading.Lock()

    def process(self, element):
        yield element


@pytest.mark.parametrize(
    "dofn,words",
    [
        (WithState(), "state"),
        (WithTimer(), "timer"),
        (WithTimestamp(), "TimestampParam"),
        (WithWindow(), "WindowParam"),
        (WithSideInput(), "side inputs"),
        (WithVarArgs(), "side inputs"),
        (WithFinalizer(), "finaliz"),
        (Unpicklable(), "cloudpickle"),
        (object(), "DoFn instance"),
    ],
)
def test_unsupported_dofns_are_refused_at_build_time(dofn, words):
    with pytest.raises(fa.UnsupportedDoFnError, match=words):
        fa.validate_dofn(dofn)


class _FakeState:
    def __init__(self):
        self._value = None

    def value(self):
        return self._value

    def update(self, value):
        self._value = value


class _FakeRuntimeContext:
    def __init__(self):
        self.states = {}

    def get_state(self, descriptor):
        return self.states.setdefault(descriptor.name, _FakeState())


def test_deduplicate_function_keeps_the_fingerprint_in_value_state():
    from transforms.payments import fingerprint, parse_line

    dup_tag, rej_tag = OutputTag("dup", fa.PICKLED), OutputTag("rej", fa.PICKLED)
    function = pf.DeduplicateFunction(dup_tag, rej_tag, ttl_days=7)
    context = _FakeRuntimeContext()
    function.open(context)
    base = (
        b'{"event_id": "e", "account_id": "a", "type": "charge", "amount": "%s", '
        b'"currency": "USD", "occurred_at": "2024-01-01T00:00:00Z"}'
    )
    first, same, other = (
        parse_line(base % amount, line_number=n)
        for n, amount in enumerate((b"1.00", b"1.0", b"2.00"), start=1)
    )
    out = [list(function.process_element(p, None)) for p in (first, same, other)]
    assert out[0] == [first] and out[1] == [(dup_tag, same)]
    [(tag, row)] = out[2]
    assert tag is rej_tag and (row.reason, row.line_number) == ("conflicting_duplicate", 3)
    assert context.states["payment-fingerprint"].value() == fingerprint(first)


def test_bundle_function_runs_one_beam_bundle_per_batch_and_emits_one_row():
    """`DoFnBundleFunction` (used by the payments job): each columnar batch record is a Beam
    bundle; the outputs come back as one Row holding, per output, a Row of columns."""
    from transforms.beam import REJECTED, ParsePaymentFn
    from transforms.payments import fingerprint, parse_line

    good = (
        b'{"event_id": "e1", "account_id": "a", "type": "refund", "amount": "1.50", '
        b'"currency": "USD", "occurred_at": "2024-01-01T00:00:00+02:00"}\n'
    )
    batch = Row(["/in/day.jsonl", "/in/day.jsonl"], [1, 2], [good, b"not json\n"])
    function = fa.DoFnBundleFunction(
        ParsePaymentFn(),
        {
            None: len(pf.PAYMENT_ROW_TYPE.get_field_names()),
            REJECTED: len(pf.REJECTED_ROW_TYPE.get_field_names()),
        },
        convert_input=fa.source_line,
        convert_output={None: pf.payment_fields, REJECTED: fa.table_row_fields(tables.REJECTED)},
    )
    function.open(None)
    [out] = list(function.process_element(batch, None))
    payments, rejected = out[0], out[1]
    expected = parse_line(good, None, "/in/day.jsonl", 1)  # the source: the file's path
    assert [list(column) for column in payments] == [
        [v]
        for v in [
            "e1",
            fingerprint(expected),
            "a",
            "refund",
            -150,
            "USD",
            "2023-12-31T22:00:00.000000+00:00",
            "/in/day.jsonl",
            1,
            expected.raw,
            "conflicting_duplicate",
            "event_id already accepted with other content",
            None,
        ]
    ]
    names = pf.REJECTED_ROW_TYPE.get_field_names()
    [row] = [dict(zip(names, values)) for values in zip(*rejected)]
    assert (row["reason"], row["source"], row["line_number"]) == (
        "malformed_json",
        "/in/day.jsonl",
        2,
    )
    function.close()


def test_bundle_function_refuses_rows_of_the_wrong_width():
    """A converter that returns too few fields would shift every column: fail, never guess."""
    from transforms.beam import ParsePaymentFn

    good = (
        b'{"event_id": "e1", "account_id": "a", "type": "refund", "amount": "1.50", '
        b'"currency": "USD", "occurred_at": "2024-01-01T00:00:00Z"}\n'
    )
    function = fa.DoFnBundleFunction(
        ParsePaymentFn(),
        {None: len(pf.PAYMENT_ROW_TYPE.get_field_names())},
        convert_input=fa.source_line,
        convert_output={None: lambda p: (p.event_id,)},
    )
    function.open(None)
    with pytest.raises(ValueError, match="rows of 13 fields expected"):
        list(function.process_element(Row(["day.jsonl"], [1], [good]), None))


# --------------------------------------------------------------------------- another job's rule


def test_the_generic_adapters_import_nothing_of_payments():
    """transforms/flink_adapters.py is the library any job runs on: its project imports are the
    generic modules only (the payments job's parts are in transforms/payments_flink.py)."""
    import ast
    from pathlib import Path

    import transforms.flink_adapters

    tree = ast.parse(Path(transforms.flink_adapters.__file__).read_text())
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            if node.module == "transforms":  # `from transforms import x`: the module x
                modules = [f"transforms.{alias.name}" for alias in node.names]
            for module in modules:
                imported.setdefault(module, set()).update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported.setdefault(alias.name, set())
    project = {m: names for m, names in imported.items() if m.split(".")[0] == "transforms"}
    generic = {"transforms.lines", "transforms.tables", "transforms.jvm_operators"}
    assert set(project) <= generic | {"transforms.beam_lines"}
    assert project.get("transforms.tables", set()) <= {"Table", "Column"}


def test_a_validate_function_sends_each_line_to_its_row_or_the_rejected_output():
    from tests.harness.orders import Order, order_line, validate_order
    from transforms.lines import RejectedLine, SourceLine

    function = fa.ValidateLineFn(validate_order, rejected_tag="refused")
    fa.validate_dofn(function)
    good, bad = order_line("o1", 2, end=b"\r\n"), order_line("o2", 0)
    lines = [
        SourceLine("orders.jsonl", n, line) for n, line in enumerate([good, bad, b"\xff\n"], 1)
    ]
    out = [output for line in lines for output in function.process(line)]
    # the line without its terminator
    assert out[0] == Order("o1", "sku-1", "wh-1", "sale", 2, -2, "orders.jsonl", 1)
    assert [(output.tag, output.value) for output in out[1:]] == [
        (
            "refused",
            RejectedLine("invalid_quantity", bad[:-1].decode(), "orders.jsonl", 2, "quantity"),
        ),
        (
            "refused",
            RejectedLine(
                "invalid_encoding", "\\xff", "orders.jsonl", 3, out[2].value.detail, b"\xff"
            ),
        ),
    ]


def test_any_other_error_of_a_rule_fails_the_task():
    from transforms.lines import SourceLine

    def broken(item):
        raise KeyError("quantity")

    with pytest.raises(KeyError):
        list(fa.ValidateLineFn(broken).process(SourceLine("orders.jsonl", 1, b"{}")))
