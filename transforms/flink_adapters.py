"""Run Beam DoFns and CombineFns inside PyFlink DataStream jobs: the generic library, which
knows nothing of any one job (the payments job's parts are in `transforms.payments_flink`).

Beam's PTransform composition cannot be applied to a `DataStream`, but a DoFn's lifecycle
can be driven by a Flink function, so the same business code runs in both:

* `apply_dofn(stream, dofn, ...)` -> `DoFnOutputs` (``.main`` and one side-output stream per
  declared tag). Lifecycle: ``setup`` in ``open``, ``start_bundle`` before the first element
  of a bundle, ``process`` per element, ``finish_bundle`` after ``bundle_size`` elements
  (its outputs are emitted right there), ``finish_bundle``/``teardown`` in ``close``.
  ``TaggedOutput(tag, v)`` goes to the side output declared for ``tag``; a tag that was
  not declared fails the task (never dropped).
* `apply_dofn_to_batches(batches, dofn, outputs)`: the same over columnar batches of rows,
  one Beam bundle per batch, one trip across the Python boundary per batch.
* `combine_per_key(keyed_stream, combine_fn)` -> ``(key, extract_output(acc))`` after every
  element: the accumulator lives in keyed ``ValueState``, so the stream is a changelog
  whose latest value per key equals Beam's ``CombinePerKey`` result on the same input.
* `parse_lines(lines, rule, output_type, rejected_table=...)` -> `ParsedRows`: numbered lines
  in, a job's typed rows and its rejected rows out, the one Python step of a job. The rule is
  a DoFn, or one per-line validate function (`ValidateLineFn`) that returns a row or raises
  `transforms.lines.LineRejected`.

Checked when the job is *built* (`UnsupportedDoFnError`): state and timer parameters,
window/timestamp/pane/key/side-input/restriction/watermark/bundle-finalizer/context
parameters, splittable and batched DoFns, extra positional arguments to ``process``, and
DoFns that do not survive a cloudpickle round trip.

Bundles: PyFlink gives DataStream functions no "end of bundle" hook that may emit, and
nothing can be emitted from ``close``. So a DoFn that overrides ``finish_bundle`` runs with
``bundle_size=1`` by default (every element is a bundle; any bundle size is legal in Beam);
with a larger ``bundle_size`` the tail bundle's ``finish_bundle`` runs in ``close`` and,
if it emits anything, the task fails loudly instead of losing the output. DoFns that do not
override ``finish_bundle`` run one bundle per task lifetime.

Elements cross Flink operators as pickled Python objects unless ``output_type`` is given;
rows for Java sinks need ``Types.ROW_NAMED`` (see `row_type` and `to_flink_row`).
"""

import inspect
import operator
from collections.abc import Container, Iterable, Iterator, Mapping
from typing import Any, Callable, NamedTuple, Optional, Union

import apache_beam as beam
import cloudpickle
from apache_beam import pvalue
from apache_beam.runners.common import DoFnSignature
from apache_beam.transforms.core import _DoFnParam
from apache_beam.utils.windowed_value import WindowedValue
from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.state import ValueStateDescriptor

from transforms.beam_lines import ValidateLineFn
from transforms.lines import SourceLine
from transforms.tables import Table

__all__ = [
    "PICKLED",
    "row_type",
    "to_flink_row",
    "row_fields",
    "table_row_fields",
    "table_row",
    "UnsupportedDoFnError",
    "validate_dofn",
    "validate_combine_fn",
    "DoFnProcessFunction",
    "DoFnBundleFunction",
    "DoFnOutputs",
    "apply_dofn",
    "apply_dofn_to_batches",
    "CombinePerKeyFunction",
    "combine_per_key",
    "source_line",
    "ValidateLineFn",
    "ParsedRows",
    "parse_lines",
    "rule_dofn",
]

PICKLED = Types.PICKLED_BYTE_ARRAY()

#: transforms.tables.FLINK_TYPES -> the pyflink type.
_FLINK_TYPES: dict[str, Callable[[], Any]] = {
    "STRING": Types.STRING,
    "LONG": Types.LONG,
    "BIG_DEC": Types.BIG_DEC,
    "BYTES": lambda: Types.PRIMITIVE_ARRAY(Types.BYTE()),
}


def row_type(table: Table) -> Any:
    """The Flink row type (``Types.ROW_NAMED``) of the rows a sink writes into ``table``."""
    return Types.ROW_NAMED(
        table.field_names, [_FLINK_TYPES[column.flink]() for column in table.written]
    )


class UnsupportedDoFnError(ValueError):
    """The DoFn uses a Beam feature the PyFlink adapter cannot honour."""


def to_flink_row(row: NamedTuple) -> Row:
    """A NamedTuple row (a job's row shape) as a named Flink `Row`."""
    return Row(**row._asdict())


# --------------------------------------------------------------------------- validation


def _overrides(obj: object, base: object, name: str) -> bool:
    return getattr(type(obj), name, None) is not getattr(base, name, None)


def _is_beam_param(default: object) -> bool:
    """A Beam DoFn parameter marker (DoFn.WindowParam, StateParam(...), BundleFinalizerParam...)."""
    if isinstance(default, _DoFnParam):
        return True
    kind = default if isinstance(default, type) else type(default)
    return kind.__module__.startswith("apache_beam") and kind.__name__.endswith("Param")


def validate_dofn(dofn: beam.DoFn) -> None:
    """Raise `UnsupportedDoFnError` unless the adapter can run ``dofn`` faithfully."""
    if not isinstance(dofn, beam.DoFn):
        raise UnsupportedDoFnError(f"expected an apache_beam.DoFn instance, got {dofn!r}")
    name = type(dofn).__name__
    try:
        signature = DoFnSignature(dofn)
    except Exception as exc:  # Beam's own validation of the DoFn
        raise UnsupportedDoFnError(f"{name}: {exc}") from exc
    problems = []
    if signature.is_stateful_dofn():
        problems.append("state parameters (DoFn.StateParam)")
    if signature.has_timers():
        problems.append("timers (DoFn.TimerParam / on_timer)")
    if signature.is_splittable_dofn():
        problems.append("splittable DoFn (RestrictionParam)")
    if signature.has_bundle_finalization():
        problems.append("bundle finalization (DoFn.BundleFinalizerParam)")
    if _overrides(dofn, beam.DoFn, "process_batch"):
        problems.append("batched DoFn (process_batch)")
    params = list(inspect.signature(dofn.process).parameters.values())
    for index, param in enumerate(params):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            problems.append(f"process() takes *{param.name} (side inputs are not supported)")
        elif index == 0:
            if param.default is not param.empty and param.default is not beam.DoFn.ElementParam:
                problems.append(
                    f"first process() parameter {param.name!r} is {param.default}, not the element"
                )
        elif param.default is param.empty:
            problems.append(
                f"extra process() argument {param.name!r} (side inputs and "
                f"extra arguments are not supported)"
            )
        elif _is_beam_param(param.default):
            problems.append(
                f"process() parameter {param.name!r} = {param.default} "
                f"(window/timestamp/pane/key/side-input/state/timer parameters)"
            )
    for method in ("setup", "start_bundle", "finish_bundle", "teardown"):
        for param in inspect.signature(getattr(dofn, method)).parameters.values():
            if param.default is not param.empty and _is_beam_param(param.default):
                problems.append(f"{method}() parameter {param.name!r} = {param.default}")
    if problems:
        raise UnsupportedDoFnError(
            f"{name} cannot run in the PyFlink adapter: " + "; ".join(problems)
        )
    try:
        cloudpickle.loads(cloudpickle.dumps(dofn))
    except Exception as exc:
        raise UnsupportedDoFnError(f"{name} does not survive cloudpickle: {exc}") from exc


def validate_combine_fn(combine_fn: beam.CombineFn) -> None:
    if not isinstance(combine_fn, beam.CombineFn):
        raise UnsupportedDoFnError(f"expected an apache_beam.CombineFn, got {combine_fn!r}")
    for method in ("create_accumulator", "add_input", "extract_output"):
        params = [
            p
            for p in inspect.signature(getattr(combine_fn, method)).parameters.values()
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if params:
            raise UnsupportedDoFnError(
                f"{type(combine_fn).__name__}.{method} takes *args/**kwargs (side inputs are "
                f"not supported)"
            )
    try:
        cloudpickle.loads(cloudpickle.dumps(combine_fn))
    except Exception as exc:
        raise UnsupportedDoFnError(
            f"{type(combine_fn).__name__} does not survive cloudpickle: {exc}"
        ) from exc


# --------------------------------------------------------------------------- DoFn


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, WindowedValue) else value


def _routed(
    dofn: beam.DoFn,
    results: Optional[Iterable[Any]],
    declared: Container[Optional[str]],
    convert: Mapping[Optional[str], Callable[..., Any]],
    where: str,
) -> Iterator[tuple[Optional[str], Any]]:
    """``(tag, value)`` for each output of a DoFn call: ``None`` for the main output, the
    TaggedOutput's tag otherwise (which must be in ``declared``), the value unwrapped and
    converted by ``convert[tag]`` if given."""
    if results is None:
        return
    for result in results:
        if isinstance(result, pvalue.TaggedOutput):
            tag, value = result.tag, _unwrap(result.value)
            if tag not in declared:
                raise RuntimeError(
                    f"{type(dofn).__name__} emitted to undeclared tag {tag!r}; "
                    f"declare it in {where}"
                )
        else:
            tag, value = None, _unwrap(result)
        converter = convert.get(tag)
        yield tag, (converter(value) if converter is not None else value)


class DoFnProcessFunction(ProcessFunction):
    """A Flink `ProcessFunction` driving a Beam DoFn (build it with `apply_dofn`)."""

    def __init__(
        self,
        dofn: beam.DoFn,
        side_tags: Mapping[str, OutputTag],
        bundle_size: Optional[int],
        convert_input: Optional[Callable[..., Any]] = None,
        convert_output: Optional[Mapping[Optional[str], Callable[..., Any]]] = None,
    ):
        self.dofn = dofn
        self.side_tags = dict(side_tags)
        self.bundle_size = bundle_size
        self.convert_input = convert_input
        self.convert_output = dict(convert_output or {})
        self._in_bundle = False
        self._count = 0

    def open(self, runtime_context: Any) -> None:
        self.dofn.setup()
        self._in_bundle = False
        self._count = 0

    def _emit(self, results: Optional[Iterable[Any]]) -> Iterator[Any]:
        for tag, value in _routed(
            self.dofn, results, self.side_tags, self.convert_output, "apply_dofn(side_outputs=...)"
        ):
            yield value if tag is None else (self.side_tags[tag], value)

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        if self.convert_input is not None:
            value = self.convert_input(value)
        if not self._in_bundle:
            self.dofn.start_bundle()
            self._in_bundle = True
        yield from self._emit(self.dofn.process(value))
        self._count += 1
        if self.bundle_size and self._count >= self.bundle_size:
            self._in_bundle = False
            self._count = 0
            yield from self._emit(self.dofn.finish_bundle())

    def close(self) -> None:
        try:
            if self._in_bundle:
                self._in_bundle = False
                pending = list(self._emit(self.dofn.finish_bundle()))
                if pending:
                    raise RuntimeError(
                        f"{type(self.dofn).__name__}.finish_bundle emitted {len(pending)} "
                        f"element(s) at close, where PyFlink cannot emit; use bundle_size=1"
                    )
        finally:
            self.dofn.teardown()


class DoFnBundleFunction(ProcessFunction):
    """Runs a Beam DoFn over columnar batches (see `transforms.jvm_operators.batch`: one array
    per field) and emits each batch's outputs as one record: a Row with, per output in
    ``outputs`` order (``None`` is the main output), a Row of one array per field. Each record
    is a Beam bundle: ``start_bundle``, ``process`` per element, ``finish_bundle`` (whose outputs
    are kept). Build it with `apply_dofn_to_batches`.

    Columns, not Row objects, cross the boundary both ways: decoding a Row per line and
    building one per result cost PyFlink's coders 3.5 and 7 us a line here, the same data in
    columns 0.2 and 3.9 us (measured on the payments job's lines and payments)."""

    def __init__(
        self,
        dofn: beam.DoFn,
        outputs: Mapping[Optional[str], int],
        convert_input: Optional[Callable[..., Any]] = None,
        convert_output: Optional[Mapping[Optional[str], Callable[..., Any]]] = None,
    ):
        self.dofn = dofn
        self.outputs = dict(outputs)  # tag -> number of fields of its rows
        self.convert_input = convert_input
        self.convert_output = dict(convert_output or {})

    def open(self, runtime_context: Any) -> None:
        self.dofn.setup()

    def _collect(
        self, results: Optional[Iterable[Any]], collected: dict[Optional[str], list[Any]]
    ) -> None:
        for tag, value in _routed(
            self.dofn, results, collected, self.convert_output, "apply_dofn_to_batches(outputs=...)"
        ):
            collected[tag].append(value)

    def _columns(self, tag: Optional[str], rows: list[Any]) -> Row:
        width = self.outputs[tag]
        if not rows:
            return Row(*([] for _ in range(width)))
        columns = [list(column) for column in zip(*rows)]
        if len(columns) != width or any(len(row) != width for row in rows):
            raise ValueError(
                f"output {tag or 'main'!r}: rows of {width} fields expected, got "
                f"{sorted({len(row) for row in rows})}; convert_output must return "
                "one value per field of the output's row type, in order"
            )
        return Row(*columns)

    def process_element(self, value: Any, ctx: Any) -> Iterator[Row]:
        collected: dict[Optional[str], list[Any]] = {tag: [] for tag in self.outputs}
        convert_input = self.convert_input
        process: Callable[[Any], Optional[Iterable[Any]]] = self.dofn.process
        self.dofn.start_bundle()
        for element in zip(*value):
            self._collect(process(convert_input(element) if convert_input else element), collected)
        self._collect(self.dofn.finish_bundle(), collected)
        yield Row(*(self._columns(tag, rows) for tag, rows in collected.items()))

    def close(self) -> None:
        self.dofn.teardown()


def apply_dofn_to_batches(
    batches: DataStream,
    dofn: beam.DoFn,
    outputs: Mapping[Optional[str], Any],
    convert_input: Optional[Callable[..., Any]] = None,
    convert_output: Optional[Mapping[Optional[str], Callable[..., Any]]] = None,
    name: Optional[str] = None,
) -> DataStream:
    """Run ``dofn`` over columnar batches (from `transforms.jvm_operators.batch`), one Beam
    bundle per batch, in one Python operator that crosses the Python boundary once per batch.

    Each element is a tuple of one batch row's fields. ``outputs`` maps each output (``None``
    for the main output, else a TaggedOutput tag) to its row type; ``convert_output[tag]`` must
    turn the DoFn's value into a tuple of that type's fields, in order (`row_fields` does it for
    NamedTuples). The result's records have one field per output, named after the tag (``main``
    for ``None``), holding a columnar batch of its rows: take them out with
    `jvm_operators.unbatch`."""
    validate_dofn(dofn)
    names = ["main" if tag is None else tag for tag in outputs]
    from transforms.jvm_operators import columns_type

    output_type = Types.ROW_NAMED(names, [columns_type(t) for t in outputs.values()])
    widths = {tag: len(t.get_field_names()) for tag, t in outputs.items()}
    function = DoFnBundleFunction(dofn, widths, convert_input, convert_output)
    return batches.process(function, output_type=output_type).name(name or type(dofn).__name__)


def row_fields(row_type: Any) -> Callable[[Any], tuple[Any, ...]]:
    """A converter for `apply_dofn_to_batches`: an object with attributes named like
    ``row_type``'s fields (e.g. a NamedTuple) -> the tuple of those fields, in order."""
    return operator.attrgetter(*row_type.get_field_names())


def table_row_fields(table: Table) -> Callable[[Any], tuple[Any, ...]]:
    """As `row_fields(row_type(table))`, for a job's row shape (a NamedTuple): a nullable
    column the shape does not carry (yet) is None, so that declaring a column in
    transforms/tables.py is all it takes to add it."""
    names = table.field_names
    absent_as_null = {column.name for column in table.written if column.nullable}

    def fields(row: Any) -> tuple[Any, ...]:
        return tuple(
            getattr(row, name, None) if name in absent_as_null else getattr(row, name)
            for name in names
        )

    return fields


def table_row(table: Table) -> Callable[[Any], Row]:
    """A job's row shape (a NamedTuple) as a named Flink `Row` of `row_type(table)`."""
    fields = table_row_fields(table)
    names = table.field_names
    return lambda row: Row(**dict(zip(names, fields(row))))


class DoFnOutputs:
    """The streams of `apply_dofn`: ``.main`` and ``[tag]`` / ``.tag`` for side outputs."""

    def __init__(self, main: DataStream, side: dict[str, DataStream]):
        self.main = main
        self._side = side

    def __getitem__(self, tag: str) -> DataStream:
        return self._side[tag]

    def __getattr__(self, tag: str) -> DataStream:
        try:
            return self.__dict__["_side"][tag]
        except KeyError:
            raise AttributeError(tag) from None


def apply_dofn(
    stream: DataStream,
    dofn: beam.DoFn,
    output_type: Any = None,
    side_outputs: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None,
    bundle_size: Optional[int] = None,
    parallelism: Optional[int] = None,
    convert_input: Optional[Callable[..., Any]] = None,
    convert_output: Optional[Mapping[Optional[str], Callable[..., Any]]] = None,
) -> DoFnOutputs:
    """Run ``dofn`` on every element of ``stream``.

    ``side_outputs`` maps each TaggedOutput tag the DoFn may emit to its Flink type (``None``
    for pickled Python objects). ``output_type`` is the main output's type (default pickled).
    ``convert_input`` turns each Flink element into the DoFn's element, ``convert_output``
    (keyed by tag, ``None`` for the main output) turns the DoFn's outputs into Flink values,
    e.g. NamedTuples into `Row`s for a ``Types.ROW_NAMED`` output: done in the same Python
    operator, so no extra operator (and no extra trip across the boundary) is needed.
    ``bundle_size``: see the module docstring (default 1 if the DoFn overrides
    ``finish_bundle``, else unbounded). ``parallelism`` sets the operator's parallelism
    (equal to the upstream's, Flink forwards records and keeps their order). Raises
    `UnsupportedDoFnError` at build time.
    """
    validate_dofn(dofn)
    if bundle_size is None and _overrides(dofn, beam.DoFn, "finish_bundle"):
        bundle_size = 1
    if bundle_size is not None and bundle_size < 1:
        raise ValueError("bundle_size must be >= 1")
    label = name or type(dofn).__name__
    tags = {
        tag: OutputTag(f"{label}-{tag}", type_info if type_info is not None else PICKLED)
        for tag, type_info in (side_outputs or {}).items()
    }
    main = stream.process(
        DoFnProcessFunction(dofn, tags, bundle_size, convert_input, convert_output),
        output_type=output_type if output_type is not None else PICKLED,
    )
    main = main.name(label)
    if parallelism is not None:
        main = main.set_parallelism(parallelism)
    return DoFnOutputs(
        main, {tag: main.get_side_output(output_tag) for tag, output_tag in tags.items()}
    )


# --------------------------------------------------------------------------- CombineFn


class CombinePerKeyFunction(KeyedProcessFunction):
    """Keyed running combine over ``(key, value)`` pairs: the accumulator lives in
    ValueState; emits ``(key, extract_output(accumulator))`` per element."""

    def __init__(self, combine_fn: beam.CombineFn):
        self.combine_fn = combine_fn
        self._state: Any = None  # ValueState, from open()

    def open(self, runtime_context: Any) -> None:
        if hasattr(self.combine_fn, "setup"):
            self.combine_fn.setup()
        self._state = runtime_context.get_state(
            ValueStateDescriptor("combine-accumulator", PICKLED)
        )

    def process_element(self, value: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
        accumulator = self._state.value()
        if accumulator is None:
            accumulator = self.combine_fn.create_accumulator()
        accumulator = self.combine_fn.add_input(accumulator, value[1])
        self._state.update(accumulator)
        yield ctx.get_current_key(), self.combine_fn.extract_output(accumulator)

    def close(self) -> None:
        if hasattr(self.combine_fn, "teardown"):
            self.combine_fn.teardown()


def combine_per_key(
    stream: DataStream,
    combine_fn: beam.CombineFn,
    key_selector: Callable[[Any], Any],
    value_selector: Optional[Callable[[Any], Any]] = None,
    key_type: Any = None,
    output_type: Any = None,
    name: Optional[str] = None,
) -> DataStream:
    """Beam ``CombinePerKey`` on a DataStream, as a changelog of ``(key, output)``.

    ``key_selector``/``value_selector`` pick the key and the combined value from each
    element (``value_selector`` defaults to the element). The latest output per key is the
    combine of everything seen for that key.
    """
    validate_combine_fn(combine_fn)
    label = name or type(combine_fn).__name__
    select_value = value_selector if value_selector is not None else (lambda element: element)
    pairs = stream.map(
        lambda element: (key_selector(element), select_value(element)), output_type=PICKLED
    ).name(f"{label}-KeyValue")
    return (
        pairs.key_by(lambda kv: kv[0], key_type=key_type)
        .process(
            CombinePerKeyFunction(combine_fn),
            output_type=output_type if output_type is not None else PICKLED,
        )
        .name(label)
    )


# --------------------------------------------------------------------------- numbered lines


def source_line(row: Any) -> SourceLine:
    """A numbered line read by the job's file source (source, line_number, line bytes). Its
    source is the file's path as the job read it: together with the line number it names the
    line in every table, across directories and runs (files of one name in two directories
    are two sources; the reference and the Beam pipeline name a file by its base name)."""
    line = row[2]
    return SourceLine(row[0], row[1], line if isinstance(line, bytes) else bytes(line))


class ParsedRows(NamedTuple):
    rows: DataStream  # the rule's output_type
    rejected: DataStream  # row_type(rejected_table)


def _flink_row(fields: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], Row]:
    return lambda value: Row(*fields(value))


def rule_dofn(rule: Union[beam.DoFn, Callable[[SourceLine], Any]], rejected_tag: str) -> beam.DoFn:
    """The DoFn `parse_lines` runs for ``rule``: the DoFn itself, or a validate function as
    `ValidateLineFn`. Looked up at each `parse_lines` call, so a test harness can wrap every
    job's parse in one place (`tests.harness.faults.faults_in_parse`)."""
    return rule if isinstance(rule, beam.DoFn) else ValidateLineFn(rule, rejected_tag)


def parse_lines(
    lines: DataStream,
    rule: Union[beam.DoFn, Callable[[SourceLine], Any]],
    output_type: Any,
    rejected_table: Table,
    fields: Optional[Callable[[Any], tuple[Any, ...]]] = None,
    rejected_tag: str = "rejected",
    batch_lines: Optional[int] = 500,
    name: str = "parse-lines",
    rows_name: str = "rows",
    batches_name: str = "line-batches",
    rejected_name: str = "rejected-lines",
) -> ParsedRows:
    """A job's rule on numbered lines: its typed rows (``output_type``, a ``Types.ROW_NAMED``)
    and its rejected rows (`row_type(rejected_table)`), so that the JVM operators and sinks
    downstream read them without Python.

    ``lines`` are rows of (source, line_number, line bytes), as the jobs' line sources give
    them (see `source_line`). ``rule`` is a DoFn over `SourceLine`s that emits a row per valid
    line on its main output and each refused line on ``rejected_tag`` (an object with the
    rejected table's fields as attributes), or a validate function, run as `ValidateLineFn`.
    ``fields`` turns a main output into the tuple of ``output_type``'s fields, in order
    (default `row_fields(output_type)`: attributes of those names, e.g. a NamedTuple).

    The names are the operators' uids too (a savepoint's state is found by uid: once a job has
    run, its names are fixed): ``name`` the Python operator, ``batches_name`` the batching,
    ``rows_name`` and ``rejected_name`` the two outputs. Two calls in one job need names of
    their own.

    With ``batch_lines`` the lines cross into Python in batches of up to that many (one Beam
    bundle each) and the results come back as one record per batch: the Python boundary costs
    far more per record than the parse itself. Batches never span a checkpoint. They cross as
    columns (an array per field), which PyFlink's thread mode converts faithfully too (arrays
    of *rows* it handed to Java as one reused object, PyFlink 2.3). ``None``: one line per
    record (no ``batches_name`` and ``rows_name`` operators)."""
    from transforms import jvm_operators

    dofn = rule_dofn(rule, rejected_tag)
    row_fields_of = fields if fields is not None else row_fields(output_type)
    rejected_type = row_type(rejected_table)
    if batch_lines is None:
        # Typed side outputs mix up fields of consecutive rows in thread mode (PyFlink 2.3):
        # rejected rows leave pickled and are typed by a map of their own.
        parsed = apply_dofn(
            lines,
            dofn,
            output_type=output_type,
            side_outputs={rejected_tag: None},
            convert_input=source_line,
            convert_output={None: _flink_row(row_fields_of)},
            name=name,
        )
        parsed.main.uid(name)
        return ParsedRows(
            parsed.main,
            _counted_by_reason(
                parsed[rejected_tag]
                .map(table_row(rejected_table), output_type=rejected_type)
                .name(rejected_name)
                .uid(rejected_name),
                rejected_table,
                rejected_name,
            ),
        )
    batched = apply_dofn_to_batches(
        jvm_operators.batch(lines, batch_lines).name(batches_name).uid(batches_name),
        dofn,
        outputs={None: output_type, rejected_tag: rejected_type},
        convert_input=source_line,
        name=name,
        convert_output={None: row_fields_of, rejected_tag: table_row_fields(rejected_table)},
    )
    batched.uid(name)
    return ParsedRows(
        jvm_operators.unbatch(batched, "main").name(rows_name).uid(rows_name),
        _counted_by_reason(
            jvm_operators.unbatch(batched, rejected_tag).name(rejected_name).uid(rejected_name),
            rejected_table,
            rejected_name,
        ),
    )


#: The metric of a job's rejected lines, per reason (`parse_lines`): in Prometheus
#: flink_taskmanager_job_task_operator_reason_tpcLinesRejected{reason="..."}.
REJECTED_LINES_METRIC = "tpcLinesRejected"


def _counted_by_reason(rejected: DataStream, table: Table, name: str) -> DataStream:
    """The rejected rows, counted per reason in a Flink metric when the table has a ``reason``
    column (a stateless pass-through: adding it leaves savepoints usable)."""
    from transforms import jvm_operators

    if "reason" not in [column.name for column in table.columns]:
        return rejected
    counted = f"{name}-by-reason"
    return (
        jvm_operators.count_by(rejected, REJECTED_LINES_METRIC, "reason").name(counted).uid(counted)
    )
